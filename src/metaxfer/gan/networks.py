"""Generators and discriminators: DCGAN style and a small ResNet style, unconditional or class-conditional.

Every generator maps noise ``z`` (and, when conditional, class labels) to images in [-1, 1]; every discriminator
has the same face: :meth:`Discriminator.forward_features` (image → feature vector) and
:meth:`Discriminator.forward_head` (features → scores, and class logits for an auxiliary classifier). Class
conditioning of a discriminator is by *projection* (the score gains ``⟨embed(y), φ(x)⟩``) or by an *auxiliary
classifier* (a second head predicts the class). Build them by name with
:func:`metaxfer.gan.registries.create_generator` / :func:`~metaxfer.gan.registries.create_discriminator`, or
directly::

    g = DCGANGenerator(image_size=28, channels=1, num_classes=10)
    d = ResNetDiscriminator(image_size=28, channels=1, num_classes=10, conditioning="projection", spectral_norm=True)

Sizes: the side must be even and at least 8. It is halved while even and above 4 (28 → 14 → 7, 32 → 16 → 8 → 4);
the generator starts from the smallest of these sides and upsamples the same number of times.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.gan.utils import apply_spectral_norm, init_weights, randint, randn

__all__ = [
    "Conditioning",
    "Generator",
    "Discriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ResNetGenerator",
    "ResNetDiscriminator",
    "resolution_plan",
    "norm_layer",
]

Conditioning = Literal["none", "projection", "auxiliary"]
_CONDITIONINGS = ("none", "projection", "auxiliary")
NormName = Literal["batch", "instance", "layer", "none"]
_NORMS = ("batch", "instance", "layer", "none")


# ---------------------------------------------------------------------------------------------------- shared pieces
def resolution_plan(image_size: int) -> tuple[int, int]:
    """The smallest side and the number of ×2 steps between it and ``image_size``.

    Args:
        image_size: Image side in pixels: even, at least 8.

    Returns:
        ``(base, steps)`` with ``base * 2**steps == image_size`` and ``base`` odd or 4.

    Raises:
        ValueError: ``image_size`` is odd or below 8.
    """
    if not isinstance(image_size, int) or image_size < 8 or image_size % 2:
        raise ValueError(f"image_size must be an even int >= 8 (e.g. 16, 28, 32, 64), got {image_size!r}")
    base, steps = image_size, 0
    while base % 2 == 0 and base > 4:
        base //= 2
        steps += 1
    return base, steps


def norm_layer(kind: NormName, channels: int, *, affine: bool = True) -> nn.Module:
    """A 2-D normalisation layer by name.

    Args:
        kind: ``batch``, ``instance``, ``layer`` (one group over C×H×W) or ``none`` (identity).
        channels: Number of channels.
        affine: Whether the layer learns a per-channel scale and shift.

    Returns:
        The layer.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=affine)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine)
    if kind == "layer":
        return nn.GroupNorm(1, channels, affine=affine)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(_NORMS)}")


def _check_classes(num_classes: int, who: str) -> None:
    if not isinstance(num_classes, int) or num_classes < 0 or num_classes == 1:
        raise ValueError(f"{who}: num_classes must be 0 (unconditional) or >= 2, got {num_classes!r}")


def _check_channels(channels: int, who: str) -> None:
    if channels not in (1, 3):
        raise ValueError(f"{who}: channels must be 1 (grey) or 3 (RGB), got {channels!r}")


class Generator(nn.Module):
    """Base class of noise → image generators.

    Attributes:
        latent_dim: Size of ``z``.
        num_classes: 0 for an unconditional generator, else the number of classes it is conditioned on.
        image_shape: (C, H, W) of its outputs.
    """

    latent_dim: int
    num_classes: int
    image_shape: tuple[int, int, int]

    def sample_latent(
        self, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Standard normal noise for ``n`` samples.

        Args:
            n: Number of samples.
            generator: Source of randomness.
            device: Where the noise lives (default: the generator's device, or CPU).

        Returns:
            float32 tensor (n, latent_dim).
        """
        return randn(n, self.latent_dim, generator=generator, device=device)

    def sample_labels(
        self, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor | None:
        """Uniform random classes for ``n`` samples, or ``None`` for an unconditional generator."""
        return randint(self.num_classes, n, generator=generator, device=device) if self.num_classes else None

    def _check_labels(self, z: torch.Tensor, labels: torch.Tensor | None) -> None:
        if self.num_classes and labels is None:
            raise ValueError(
                f"{type(self).__name__} is conditioned on {self.num_classes} classes: pass labels (N,) int64 "
                "with the noise, e.g. g(z, labels)"
            )
        if not self.num_classes and labels is not None:
            raise ValueError(f"{type(self).__name__} is unconditional (num_classes=0): call it without labels")
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__} expects noise shaped (N, {self.latent_dim}), got {tuple(z.shape)}; "
                "draw it with g.sample_latent(n)"
            )


class Discriminator(nn.Module):
    """Base class of discriminators (critics): image → score, optionally class-conditional.

    Subclasses build ``self.head`` (features → 1), and for conditioning ``self.embed`` (projection) or
    ``self.classifier`` (auxiliary), then implement :meth:`forward_features`.

    Attributes:
        num_classes: Number of classes (0: unconditional).
        conditioning: ``none``, ``projection`` or ``auxiliary``.
    """

    num_classes: int
    conditioning: Conditioning
    head: nn.Module
    embed: nn.Embedding | None
    classifier: nn.Module | None

    def _setup_conditioning(self, features: int, *, num_classes: int, conditioning: Conditioning | None) -> None:
        who = type(self).__name__
        _check_classes(num_classes, who)
        if conditioning is None:
            conditioning = "projection" if num_classes else "none"
        if conditioning not in _CONDITIONINGS:
            raise ValueError(f"{who}: conditioning must be one of {', '.join(_CONDITIONINGS)}, got {conditioning!r}")
        if (conditioning == "none") != (num_classes == 0):
            raise ValueError(
                f"{who}: conditioning={conditioning!r} with num_classes={num_classes}; use conditioning='none' with "
                "num_classes=0, or 'projection'/'auxiliary' with num_classes >= 2"
            )
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.head = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if conditioning == "projection" else None
        if self.embed is not None:  # N(0, 1) would make the projection term dwarf the unconditional score
            nn.init.xavier_uniform_(self.embed.weight)
        self.classifier = nn.Linear(features, num_classes) if conditioning == "auxiliary" else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image → features. Shape: (N, C, H, W) → (N, F)."""
        raise NotImplementedError

    def forward_head(
        self, features: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features → (scores, class logits or ``None``).

        Args:
            features: Output of :meth:`forward_features`.
            labels: Classes (needed by projection conditioning only).

        Returns:
            Scores (N,) and, for an auxiliary classifier, class logits (N, num_classes).
        """
        scores = self.head(features).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError(
                    f"{type(self).__name__} uses projection conditioning: pass the images' labels, e.g. d(x, labels)"
                )
            scores = scores + (self.embed(labels) * features).sum(dim=1)
        logits = self.classifier(features) if self.classifier is not None else None
        return scores, logits

    def scores_and_classes(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores (N,) and auxiliary class logits (N, K) or ``None``, in one pass."""
        return self.forward_head(self.forward_features(x), labels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of images.

        Args:
            x: Images in [-1, 1].
            labels: Their classes (projection conditioning only; ignored otherwise).

        Returns:
            Scores (logits or critic values).

        Shape:
            (N, C, H, W) → (N,).
        """
        return self.forward_head(self.forward_features(x), labels)[0]


# ---------------------------------------------------------------------------------------------------- DCGAN
class DCGANGenerator(Generator):
    """DCGAN generator: a linear projection of ``z`` to a small feature map, then stride-2 transposed convolutions
    with batch norm and ReLU, and ``tanh`` at the end.

    Class conditioning concatenates a learned class embedding to ``z``.

    Args:
        latent_dim: Size of ``z``.
        image_size: Output side (even, >= 8).
        channels: Output channels (1 or 3).
        width: Channels of the last hidden layer; they double at each lower resolution.
        num_classes: 0 (unconditional) or the number of classes.
        class_embedding: Size of the class embedding concatenated to ``z``. Keep it well below ``latent_dim``:
            with 32 dimensions next to a 32-d ``z``, a tiny conditional GAN ignored the noise (one image per
            class) and learnt the classes far less reliably than with 8.

    Shape:
        ``z`` (N, latent_dim), ``labels`` (N,) → (N, channels, image_size, image_size).

    References:
        A. Radford, L. Metz, S. Chintala. Unsupervised Representation Learning with Deep Convolutional Generative
        Adversarial Networks. ICLR 2016; M. Mirza, S. Osindero. Conditional Generative Adversarial Nets. 2014.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        *,
        image_size: int = 28,
        channels: int = 1,
        width: int = 64,
        num_classes: int = 0,
        class_embedding: int = 8,
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "DCGANGenerator")
        _check_channels(channels, "DCGANGenerator")
        base, steps = resolution_plan(image_size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = (channels, image_size, image_size)
        self.base = base
        widths = [width * 2 ** (steps - 1 - i) for i in range(steps)]
        self.embed = nn.Embedding(num_classes, class_embedding) if num_classes else None
        in_dim = latent_dim + (class_embedding if num_classes else 0)
        self.project = nn.Linear(in_dim, widths[0] * base * base, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        init_weights(self, scheme="dcgan")

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images in [-1, 1] (see the class docstring for shapes)."""
        self._check_labels(z, labels)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        h = self.project(z).view(z.shape[0], -1, self.base, self.base)
        return self.body(h)


class DCGANDiscriminator(Discriminator):
    """DCGAN discriminator: stride-2 4×4 convolutions with leaky ReLU (no norm on the first), then a linear head.

    Args:
        image_size: Input side (even, >= 8).
        channels: Input channels (1 or 3; DAGAN's pair discriminator passes 2 or 6).
        width: Channels of the first layer; they double at each lower resolution.
        num_classes: 0 (unconditional) or the number of classes.
        conditioning: ``none``, ``projection`` or ``auxiliary`` (default: ``projection`` when ``num_classes``).
        norm: ``batch`` (as in DCGAN), ``instance``, ``layer`` or ``none``; use ``layer`` or ``none`` with a
            gradient penalty.
        spectral_norm: Spectrally normalise every layer.

    Shape:
        (N, channels, image_size, image_size) → (N,).

    References:
        A. Radford et al. ICLR 2016; T. Miyato, M. Koyama. cGANs with Projection Discriminator. ICLR 2018;
        A. Odena et al. Conditional Image Synthesis with Auxiliary Classifier GANs. ICML 2017.
    """

    def __init__(
        self,
        *,
        image_size: int = 28,
        channels: int = 1,
        width: int = 64,
        num_classes: int = 0,
        conditioning: Conditioning | None = None,
        norm: NormName = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"DCGANDiscriminator: channels must be >= 1, got {channels}")
        base, steps = resolution_plan(image_size)
        widths = [width * 2**i for i in range(steps)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"),
                norm_layer(norm, c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self._setup_conditioning(widths[-1] * base * base, num_classes=num_classes, conditioning=conditioning)
        init_weights(self, scheme="dcgan")
        if spectral_norm:
            apply_spectral_norm(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image → flattened last feature map. Shape: (N, C, H, W) → (N, F)."""
        return self.body(x).flatten(1)


# ---------------------------------------------------------------------------------------------------- ResNet
class _ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift are looked up per class (plain affine batch norm when unconditional)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)
        else:
            self.gain = self.bias = None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.bn(x)
        if self.gain is None or labels is None:
            return h
        return h * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class _UpBlock(nn.Module):
    """Residual block: CBN → ReLU → ×2 upsample → conv3 → CBN → ReLU → conv3, plus upsample → conv1."""

    def __init__(self, c_in: int, c_out: int, num_classes: int) -> None:
        super().__init__()
        self.bn1 = _ConditionalBatchNorm(c_in, num_classes)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2 = _ConditionalBatchNorm(c_out, num_classes)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, labels)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), labels)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _DownBlock(nn.Module):
    """Residual block: (ReLU →) conv3 → ReLU → conv3 (→ 2×2 average pool), plus conv1 (→ pool) shortcut."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, first: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or down) else nn.Identity()
        self.down, self.first = down, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
            # The first block pools before its shortcut conv (cheaper, the same function up to the conv order).
            return h + (self.skip(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.skip(x), 2))
        return h + self.skip(x)


class ResNetGenerator(Generator):
    """Small ResNet generator (SNGAN style): linear projection, residual upsampling blocks with (class-conditional)
    batch norm, then batch norm, ReLU, a 3×3 convolution and ``tanh``.

    Args:
        latent_dim: Size of ``z``.
        image_size: Output side (even, >= 8).
        channels: Output channels (1 or 3).
        width: Channels of every block.
        num_classes: 0 (unconditional) or the number of classes (conditional batch norm).

    Shape:
        ``z`` (N, latent_dim), ``labels`` (N,) → (N, channels, image_size, image_size).

    References:
        T. Miyato et al. Spectral Normalization for GANs. ICLR 2018 (appendix B); V. Dumoulin, J. Shlens,
        M. Kudlur. A Learned Representation for Artistic Style. ICLR 2017 (conditional batch norm).
    """

    def __init__(
        self, latent_dim: int = 128, *, image_size: int = 32, channels: int = 3, width: int = 64, num_classes: int = 0
    ) -> None:
        super().__init__()
        _check_classes(num_classes, "ResNetGenerator")
        _check_channels(channels, "ResNetGenerator")
        base, steps = resolution_plan(image_size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.image_shape = (channels, image_size, image_size)
        self.base, self.width = base, width
        self.project = nn.Linear(latent_dim, width * base * base)
        self.blocks = nn.ModuleList([_UpBlock(width, width, num_classes) for _ in range(steps)])
        self.out_bn = nn.BatchNorm2d(width)
        self.out_conv = nn.Conv2d(width, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images in [-1, 1] (see the class docstring for shapes)."""
        self._check_labels(z, labels)
        h = self.project(z).view(z.shape[0], self.width, self.base, self.base)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class ResNetDiscriminator(Discriminator):
    """Small ResNet discriminator (SNGAN style): residual downsampling blocks, one block at the lowest resolution,
    ReLU and global sum pooling, then the linear head. No normalisation layers: use ``spectral_norm=True`` (as
    designed) or a gradient penalty.

    Args:
        image_size: Input side (even, >= 8).
        channels: Input channels.
        width: Channels of every block.
        num_classes: 0 (unconditional) or the number of classes.
        conditioning: ``none``, ``projection`` or ``auxiliary`` (default: ``projection`` when ``num_classes``).
        spectral_norm: Spectrally normalise every layer.

    Shape:
        (N, channels, image_size, image_size) → (N,).

    References:
        T. Miyato et al. Spectral Normalization for GANs. ICLR 2018; T. Miyato, M. Koyama. cGANs with Projection
        Discriminator. ICLR 2018.
    """

    def __init__(
        self,
        *,
        image_size: int = 32,
        channels: int = 3,
        width: int = 64,
        num_classes: int = 0,
        conditioning: Conditioning | None = None,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"ResNetDiscriminator: channels must be >= 1, got {channels}")
        _, steps = resolution_plan(image_size)
        blocks = [_DownBlock(channels, width, down=True, first=True)]
        blocks += [_DownBlock(width, width, down=True, first=False) for _ in range(steps - 1)]
        blocks += [_DownBlock(width, width, down=False, first=False)]
        self.blocks = nn.Sequential(*blocks)
        self._setup_conditioning(width, num_classes=num_classes, conditioning=conditioning)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image → globally sum-pooled features. Shape: (N, C, H, W) → (N, width)."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

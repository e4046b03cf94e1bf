"""DAGAN: a data-augmentation GAN that turns one real image into other plausible examples of its class.

The generator is a U-Net conditioned on one image ``x`` and noise ``z``; the discriminator judges *pairs*: a real
pair is two different images of one class ``(x, x')``, a fake pair is ``(x, G(z, x))``. Trained on the source
classes only, the generator is then applied to images of new (target) classes it never saw, e.g. to enlarge the
support set of a few-shot episode.

Training uses the generic step functions with the source image as the *condition*::

    anchor, partner = sample_pairs(labels, 32, generator=rng)
    x, x_other = uint8_to_gan(images[anchor]), uint8_to_gan(images[partner])
    gan_step(g, d, x_other, x, g_optimizer=opt_g, d_optimizer=opt_d, objective=create_objective("wgan-gp"))

References:
    A. Antoniou, A. Storkey, H. Edwards. Data Augmentation Generative Adversarial Networks. 2017 (arXiv:1711.04340).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.errors import MetaxferError
from metaxfer.gan.networks import DCGANDiscriminator, Generator, NormName, norm_layer, resolution_plan
from metaxfer.gan.utils import gan_to_uint8, init_weights, uint8_to_gan

__all__ = ["DAGANGenerator", "PairDiscriminator", "sample_pairs", "augment"]


class DAGANGenerator(Generator):
    """U-Net generator conditioned on one image: an encoder down to the lowest resolution, a decoder back up with
    skip connections, and the noise (projected to a small map) concatenated at every decoder level.

    Args:
        latent_dim: Size of ``z``.
        image_size: Side of the images (even, >= 8).
        channels: Image channels (1 or 3).
        width: Channels at full resolution (doubling at each downsampling).
        noise_channels: Channels of the noise map added at each decoder level.
        norm: Normalisation of the hidden layers (``batch``, ``instance``, ``layer`` or ``none``).

    Shape:
        ``z`` (N, latent_dim), ``condition`` (N, channels, H, W) in [-1, 1] → (N, channels, H, W) in [-1, 1].

    References:
        A. Antoniou, A. Storkey, H. Edwards. Data Augmentation Generative Adversarial Networks. 2017;
        O. Ronneberger, P. Fischer, T. Brox. U-Net. MICCAI 2015.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        *,
        image_size: int = 28,
        channels: int = 1,
        width: int = 32,
        noise_channels: int = 8,
        norm: NormName = "batch",
    ) -> None:
        super().__init__()
        base, steps = resolution_plan(image_size)
        self.latent_dim, self.num_classes = latent_dim, 0
        self.image_shape = (channels, image_size, image_size)
        self.base, self.noise_channels = base, noise_channels
        widths = [width * 2**i for i in range(steps + 1)]

        def block(c_in: int, c_out: int, *, stride: int = 1) -> nn.Sequential:
            kernel = 4 if stride == 2 else 3
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=norm == "none"),
                norm_layer(norm, c_out),
                nn.LeakyReLU(0.2, inplace=True),
            )

        self.stem = block(channels, widths[0])
        self.down = nn.ModuleList([block(widths[i], widths[i + 1], stride=2) for i in range(steps)])
        self.noise = nn.Linear(latent_dim, noise_channels * base * base)
        self.bottleneck = block(widths[-1] + noise_channels, widths[-1])
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 4, 2, 1) for i in reversed(range(steps))]
        )
        self.merge = nn.ModuleList(
            [block(2 * widths[i] + noise_channels, widths[i]) for i in reversed(range(steps))]
        )
        self.out = nn.Conv2d(widths[0], channels, 3, 1, 1)
        init_weights(self, scheme="dcgan")

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Generate one new image per condition image (see the class docstring for shapes)."""
        if condition is None or condition.dim() != 4 or tuple(condition.shape[1:]) != self.image_shape:
            got = None if condition is None else tuple(condition.shape)
            raise ValueError(
                f"DAGANGenerator needs condition images shaped (N, {', '.join(map(str, self.image_shape))}) in "
                f"[-1, 1], got {got}; call g(z, images)"
            )
        if z.dim() != 2 or z.shape[1] != self.latent_dim or z.shape[0] != condition.shape[0]:
            raise ValueError(
                f"DAGANGenerator expects noise shaped ({condition.shape[0]}, {self.latent_dim}), got {tuple(z.shape)}"
            )
        skips = [self.stem(condition)]
        for down in self.down:
            skips.append(down(skips[-1]))
        noise = self.noise(z).view(z.shape[0], self.noise_channels, self.base, self.base)
        h = self.bottleneck(torch.cat([skips.pop(), noise], dim=1))
        for up, merge in zip(self.up, self.merge, strict=True):
            h = up(h)
            level_noise = F.interpolate(noise, size=h.shape[-2:], mode="nearest")
            h = merge(torch.cat([h, skips.pop(), level_noise], dim=1))
        return torch.tanh(self.out(h))


class PairDiscriminator(nn.Module):
    """DAGAN's discriminator: a DCGAN discriminator on the channel-wise concatenation ``(condition, x)``.

    Args:
        image_size: Side of the images.
        channels: Channels of one image (the network sees twice as many).
        width: First-layer channels.
        norm: ``layer`` by default (DAGAN trains with a gradient penalty; batch norm is not allowed there).
        spectral_norm: Spectrally normalise every layer.

    Shape:
        ``x`` and ``condition``: (N, channels, H, W) → scores (N,).
    """

    def __init__(
        self,
        *,
        image_size: int = 28,
        channels: int = 1,
        width: int = 64,
        norm: NormName = "layer",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.net = DCGANDiscriminator(
            image_size=image_size, channels=2 * channels, width=width, norm=norm, spectral_norm=spectral_norm
        )

    def scores_and_classes(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Scores of the pairs ``(condition, x)`` and no class logits."""
        return self.net(torch.cat([condition, x], dim=1)), None

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Scores of the pairs ``(condition, x)`` (see the class docstring for shapes)."""
        return self.net(torch.cat([condition, x], dim=1))


def sample_pairs(
    labels: torch.Tensor, batch_size: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` training pairs: random anchors and, for each, another example of the same class.

    Args:
        labels: Class of every example of the training set (the source classes).
        batch_size: Number of pairs.
        generator: Source of randomness.

    Returns:
        ``(anchor, partner)`` index tensors (batch_size,) int64 into ``labels``; ``anchor[i] != partner[i]`` and
        ``labels[anchor[i]] == labels[partner[i]]``.

    Raises:
        MetaxferError: A class has exactly one example (no pair can be made from it); the message names it.
    """
    labels = labels.cpu()
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"sample_pairs needs a non-empty 1-D label tensor, got shape {tuple(labels.shape)}")
    counts = torch.bincount(labels)
    single = torch.nonzero(counts == 1).flatten().tolist()
    if single:
        raise MetaxferError(
            f"DAGAN pairs need at least two examples per class; classes {single[:10]} have one. Drop them with "
            "domain.select_classes(...) before training"
        )
    order = torch.argsort(labels, stable=True)
    offsets = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(labels.numel()) - offsets[labels[order]]
    anchor = torch.randint(labels.numel(), (batch_size,), generator=generator)
    cls = labels[anchor]
    n = counts[cls]
    shift = 1 + torch.minimum((torch.rand(batch_size, generator=generator) * (n - 1)).long(), n - 2)
    partner = order[offsets[cls] + (rank[anchor] + shift) % n]
    return anchor, partner


@torch.no_grad()
def augment(
    generator: DAGANGenerator,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    per_image: int,
    include_originals: bool = True,
    rng: torch.Generator | None = None,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Make ``per_image`` new examples of every image (e.g. of unseen target classes) with a trained generator.

    The generator runs in eval mode (batch norm uses its running statistics); its mode is restored afterwards.

    Args:
        generator: A trained DAGAN generator.
        images: uint8 images of any classes.
        labels: Their labels (copied to the generated examples).
        per_image: New examples per image.
        include_originals: Put the real images first in the result.
        rng: Source of noise.
        batch_size: Images generated at a time.

    Returns:
        ``(images, labels)``: uint8 images and int64 labels; the generated ones are ordered image by image.

    Shape:
        ``images`` (N, C, H, W), ``labels`` (N,) → (N·per_image [+ N], C, H, W), (N·per_image [+ N],).
    """
    if per_image < 0:
        raise ValueError(f"per_image must be >= 0, got {per_image}")
    device = next(generator.parameters()).device
    condition = images.repeat_interleave(per_image, dim=0)
    out_labels = labels.repeat_interleave(per_image)
    was_training = generator.training
    generator.eval()
    try:
        parts = []
        for start in range(0, condition.shape[0], batch_size):
            chunk = uint8_to_gan(condition[start : start + batch_size]).to(device)
            z = generator.sample_latent(chunk.shape[0], generator=rng, device=device)
            parts.append(gan_to_uint8(generator(z, chunk)).cpu())
    finally:
        generator.train(was_training)
    made = torch.cat(parts) if parts else images[:0]
    if include_originals:
        return torch.cat([images, made]), torch.cat([labels, out_labels])
    return made, out_labels

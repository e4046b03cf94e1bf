"""The text-conditional GAN's networks: a generator of (noise, description embedding) and a matching-aware
discriminator of (image, description embedding).

Both wrap the unconditional networks of :mod:`metaxfer.gan` (DCGAN or ResNet, built by name), so the image layers
exist once:

- :class:`TextConditionalGenerator` compresses the description embedding (linear + leaky ReLU, as GAN-INT-CLS does)
  and feeds ``[z, compressed]`` to an unconditional generator;
- :class:`MatchingDiscriminator` computes the image features of an unconditional discriminator and scores them
  *with* a description: by projection (``⟨W t, φ(x)⟩`` added to the unconditional score, Miyato & Koyama's projection
  with a continuous condition) or by concatenation (compressed description concatenated to the image features, then
  a small MLP, as in GAN-INT-CLS). One call can score the same images with two descriptions (the right one and a
  wrong one) from one feature pass, which the matching-aware loss needs.

Example:
    >>> g = TextConditionalGenerator(text_dim=16, image_size=16, width=8)
    >>> d = MatchingDiscriminator(text_dim=16, image_size=16, width=8)
    >>> t = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    >>> x = g(g.sample_latent(4), t)
    >>> right, wrong = d(x, t, t.roll(1, 0))
    >>> x.shape, right.shape
    (torch.Size([4, 3, 16, 16]), torch.Size([4]))

References:
    S. Reed, Z. Akata, X. Yan, L. Logeswaran, B. Schiele, H. Lee. Generative Adversarial Text to Image Synthesis.
    ICML 2016; T. Miyato, M. Koyama. cGANs with Projection Discriminator. ICLR 2018.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metaxfer.gan.registries import create_discriminator, create_generator
from metaxfer.gan.utils import apply_spectral_norm, randn

__all__ = ["TextConditionalGenerator", "MatchingDiscriminator", "MATCHINGS"]

MATCHINGS = ("projection", "concat")


class TextConditionalGenerator(nn.Module):
    """Noise and a description embedding → image in [-1, 1].

    Args:
        text_dim: Size of the description embeddings.
        latent_dim: Size of the noise ``z``.
        condition_dim: Size of the compressed description (GAN-INT-CLS uses 128 next to a 100-d ``z``).
        image_size: Output side (even, >= 8).
        channels: Output channels (1 or 3).
        width: Width of the image network.
        architecture: ``dcgan`` or ``resnet`` (:data:`metaxfer.gan.GENERATORS`).

    Attributes:
        latent_dim: Size of ``z``.
        num_classes: Always 0 (conditioned on text, not on class labels), so the helpers of :mod:`metaxfer.gan`
            treat the condition as opaque.

    Shape:
        ``z`` (N, latent_dim), ``text`` (N, text_dim) → (N, channels, image_size, image_size).
    """

    num_classes = 0

    def __init__(
        self,
        *,
        text_dim: int,
        latent_dim: int = 64,
        condition_dim: int = 64,
        image_size: int = 32,
        channels: int = 3,
        width: int = 32,
        architecture: str = "dcgan",
    ) -> None:
        super().__init__()
        self.text_dim, self.latent_dim, self.condition_dim = text_dim, latent_dim, condition_dim
        self.architecture, self.width = architecture, width
        self.image_shape = (channels, image_size, image_size)
        self.compress = nn.Sequential(nn.Linear(text_dim, condition_dim), nn.LeakyReLU(0.2))
        self.body = create_generator(architecture, image_size=image_size, channels=channels, num_classes=0,
                                     latent_dim=latent_dim + condition_dim, width=width)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain data."""
        c, s, _ = self.image_shape
        return {"text_dim": self.text_dim, "latent_dim": self.latent_dim, "condition_dim": self.condition_dim,
                "image_size": s, "channels": c, "width": self.width, "architecture": self.architecture}

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """Standard normal noise (n, latent_dim)."""
        return randn(n, self.latent_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Generate images for descriptions (see the class docstring for shapes)."""
        if text is None or text.dim() != 2 or text.shape[1] != self.text_dim or text.shape[0] != z.shape[0]:
            got = None if text is None else tuple(text.shape)
            raise ValueError(f"TextConditionalGenerator needs description embeddings shaped ({z.shape[0]}, "
                             f"{self.text_dim}) with the noise, got {got}")
        return self.body(torch.cat([z, self.compress(text)], dim=1))


class MatchingDiscriminator(nn.Module):
    """(Image, description embedding) → score: high for a real image with its own description.

    Args:
        text_dim: Size of the description embeddings.
        image_size: Input side.
        channels: Input channels.
        width: Width of the image network.
        architecture: ``dcgan`` or ``resnet`` (:data:`metaxfer.gan.DISCRIMINATORS`).
        norm: Normalisation of a ``dcgan`` body (``batch``, ``instance``, ``layer``, ``none``).
        matching: ``projection`` or ``concat`` (see the module docstring).
        condition_dim: Size of the compressed description (``concat``).
        hidden: Hidden units of the ``concat`` MLP.
        spectral_norm: Spectrally normalise every layer.

    Shape:
        ``x`` (N, C, H, W), ``text`` (N, text_dim) → (N,); with ``wrong`` (N, text_dim) → two (N,) tensors.
    """

    def __init__(
        self,
        *,
        text_dim: int,
        image_size: int = 32,
        channels: int = 3,
        width: int = 32,
        architecture: str = "dcgan",
        norm: str = "batch",
        matching: str = "projection",
        condition_dim: int = 64,
        hidden: int = 128,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if matching not in MATCHINGS:
            raise ValueError(f"MatchingDiscriminator: matching must be one of {', '.join(MATCHINGS)}, got {matching!r}")
        options: dict[str, Any] = {"width": width}
        if architecture == "dcgan":
            options["norm"] = norm
        self.body = create_discriminator(architecture, image_size=image_size, channels=channels, num_classes=0,
                                         **options)
        features = int(self.body.head.in_features)
        self.matching = matching
        self._config = {"text_dim": text_dim, "image_size": image_size, "channels": channels, "width": width,
                        "architecture": architecture, "norm": norm, "matching": matching,
                        "condition_dim": condition_dim, "hidden": hidden, "spectral_norm": spectral_norm}
        if matching == "projection":
            self.project = nn.Linear(text_dim, features, bias=False)
            nn.init.xavier_uniform_(self.project.weight)
        else:
            self.compress = nn.Sequential(nn.Linear(text_dim, condition_dim), nn.LeakyReLU(0.2))
            self.joint = nn.Sequential(nn.Linear(features + condition_dim, hidden), nn.LeakyReLU(0.2),
                                       nn.Linear(hidden, 1))
        if spectral_norm:
            apply_spectral_norm(self)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain data."""
        return dict(self._config)

    def score(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Scores of image features with descriptions. Shape: (N, F), (N, text_dim) → (N,)."""
        if self.matching == "projection":
            return self.body.head(features).squeeze(1) + (self.project(text) * features).sum(dim=1)
        return self.joint(torch.cat([features, self.compress(text)], dim=1)).squeeze(1)

    def forward(self, x: torch.Tensor, text: torch.Tensor,
                wrong: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Score images with their descriptions (and, when given, with wrong ones, sharing one feature pass)."""
        features = self.body.forward_features(x)
        scores = self.score(features, text)
        if wrong is None:
            return scores
        return scores, self.score(features, wrong)

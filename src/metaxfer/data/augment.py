"""Classic image augmentation for classes that have one or a few images: small shifts, zooms and rotations,
contrast and brightness changes, blur and noise, drawn from a seeded generator.

Its users: the text-to-image measuring networks, which see each emoji once per style and would otherwise learn its
exact pixels (:mod:`metaxfer.crossmodal.measures`); and the baselines that generated images must beat, classic
variants of few-shot support sets (:class:`metaxfer.gan.support.ClassicAugmenter`,
:func:`metaxfer.methods.gan_pipeline.classic_variants`). No flips: a flipped arrow or letter is another class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment_images"]


def augment_images(
    x: torch.Tensor,
    *,
    generator: torch.Generator,
    shift: float = 0.08,
    scale: tuple[float, float] = (0.85, 1.1),
    rotate: float = 10.0,
    jitter: float = 0.15,
    blur_prob: float = 0.3,
    noise: float = 0.05,
) -> torch.Tensor:
    """Randomly transform a batch of float images in [-1, 1].

    Args:
        x: Images.
        generator: Source of every random draw (a CPU generator).
        shift: Largest translation, as a fraction of the side.
        scale: Range of the zoom factor.
        rotate: Largest rotation in degrees.
        jitter: Largest brightness shift and relative contrast change.
        blur_prob: Probability of a 3×3 box blur per image.
        noise: Standard deviation of added Gaussian noise.

    Returns:
        Transformed images, clamped to [-1, 1].

    Shape:
        (N, C, H, W) → (N, C, H, W).
    """
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(n, generator=generator)).to(x.device)

    angle = uniform(-rotate, rotate) * math.pi / 180
    zoom = 1.0 / uniform(*scale)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin, uniform(-2 * shift, 2 * shift)], 1),
                         torch.stack([sin, cos, uniform(-2 * shift, 2 * shift)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = uniform(1 - jitter, 1 + jitter).view(n, 1, 1, 1)
    bright = uniform(-jitter, jitter).view(n, 1, 1, 1)
    out = out * contrast + bright
    blurred = F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    use_blur = (torch.rand(n, generator=generator) < blur_prob).to(x.device).view(n, 1, 1, 1)
    out = torch.where(use_blur, blurred, out)
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator).to(x.device)
    return out.clamp(-1.0, 1.0)

"""Image augmentation for classes that have a single image: small shifts, scalings and rotations, contrast and
brightness changes, blur and noise, drawn from a seeded generator.

The measuring classifiers and encoders (:mod:`metaxfer.crossmodal.measures`) see each emoji once per style; without
augmentation they would learn the exact pixels and reject any generated image. No flips: a flipped arrow or letter
is another class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment_images", "diff_augment"]


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


def diff_augment(x: torch.Tensor, *, generator: torch.Generator, shift: float = 0.125, cutout: float = 0.5) -> torch.Tensor:
    """Differentiable augmentation of the images a discriminator sees (real and generated alike): random brightness,
    saturation and contrast, a translation by up to ``shift`` of the side (zero padded) and a cut-out square of
    ``cutout`` of the side. Gradients flow through it to the generator.

    With few real images (one per class here) the discriminator otherwise memorises them and stops teaching the
    generator; augmenting both kinds of image the same way keeps it from doing so without the generator learning the
    augmentations (they are applied to its images *after* generation).

    Args:
        x: Images in [-1, 1].
        generator: Source of the random draws (a CPU generator).
        shift: Largest translation, as a fraction of the side.
        cutout: Side of the cut-out square, as a fraction of the image side (0: none).

    Returns:
        Augmented images (not clamped).

    Shape:
        (N, C, H, W) → (N, C, H, W).

    References:
        S. Zhao, Z. Liu, J. Lin, J.-Y. Zhu, S. Han. Differentiable Augmentation for Data-Efficient GAN Training.
        NeurIPS 2020.
    """
    n, c, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator).to(dev)

    x = x + (rand(n, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand(n, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean  # contrast
    sy, sx = int(h * shift + 0.5), int(w * shift + 0.5)
    if sy or sx:
        dy = (rand(n) * (2 * sy + 1)).long() - sy
        dx = (rand(n) * (2 * sx + 1)).long() - sx
        rows = (torch.arange(h, device=dev).view(1, h) - dy.view(n, 1)).clamp(-1, h)  # -1 and h index the padding
        cols = (torch.arange(w, device=dev).view(1, w) - dx.view(n, 1)).clamp(-1, w)
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
        x = padded[torch.arange(n, device=dev).view(n, 1, 1), :, (rows + 1).view(n, h, 1), (cols + 1).view(n, 1, w)]
        x = x.permute(0, 3, 1, 2)
    if cutout > 0:
        ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
        cy = (rand(n) * (h + 1 - ch % 2)).long()
        cx = (rand(n) * (w + 1 - cw % 2)).long()
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        inside = ((ys - cy.view(n, 1, 1)).abs() <= ch // 2) & ((xs - cx.view(n, 1, 1)).abs() <= cw // 2)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x

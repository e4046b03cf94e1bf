"""The differentiable augmentation of the images a text-to-image discriminator sees (:func:`diff_augment`); the
classic augmentation of single images is :func:`metaxfer.data.augment.augment_images`.
"""

from __future__ import annotations

import torch

__all__ = ["diff_augment"]


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

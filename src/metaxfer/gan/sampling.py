"""Drawing images from trained generators, and the picture grids that show them.

Sampling runs without gradients in eval mode (batch norm uses running statistics; an :class:`~metaxfer.gan.utils.EMA`
copy is already in eval mode); the network's mode is restored afterwards. Results are uint8 images like a
:class:`~metaxfer.data.domain.Domain`'s, ready for :mod:`metaxfer.metrics` and :func:`metaxfer.data.grid.image_grid`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from PIL import Image
from torch import nn

from metaxfer.data.grid import image_grid
from metaxfer.gan.utils import gan_to_uint8, randn, uint8_to_gan

__all__ = ["sample_images", "class_sample_grid", "translation_grid"]


def _in_eval(module: nn.Module, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return fn()
    finally:
        module.train(was_training)


def sample_images(
    generator: nn.Module,
    n: int,
    *,
    labels: torch.Tensor | None = None,
    rng: torch.Generator | None = None,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draw ``n`` images from a noise → image generator.

    Args:
        generator: Has ``latent_dim`` and ``num_classes``; called as ``g(z, labels)``.
        n: Number of images.
        labels: Classes to draw (N,), for a class-conditional generator; ``None`` draws them uniformly.
        rng: Source of noise and labels (a CPU generator; results do not depend on the device).
        batch_size: Images generated at a time.

    Returns:
        ``(images, labels)``: uint8 (n, C, H, W) on the CPU, and the int64 labels used (``None`` when
        unconditional).

    Raises:
        ValueError: ``labels`` given to an unconditional generator, or of the wrong length.
    """
    num_classes = int(getattr(generator, "num_classes", 0))
    if labels is not None and not num_classes:
        raise ValueError("labels were given but the generator is unconditional (num_classes=0)")
    if num_classes and labels is None:
        labels = torch.randint(num_classes, (n,), generator=rng)
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    device = next(generator.parameters()).device
    z = randn(n, generator.latent_dim, generator=rng)  # type: ignore[arg-type]

    def run() -> torch.Tensor:
        parts = []
        for start in range(0, n, batch_size):
            y = None if labels is None else labels[start : start + batch_size].to(device)
            parts.append(gan_to_uint8(generator(z[start : start + batch_size].to(device), y)).cpu())
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.uint8)

    return _in_eval(generator, run), labels


def class_sample_grid(
    generator: nn.Module,
    *,
    per_class: int = 8,
    class_names: Sequence[str] | None = None,
    rng: torch.Generator | None = None,
    title: str | None = None,
    scale: int = 2,
) -> Image.Image:
    """A grid with one row per class of a class-conditional generator, ``per_class`` samples per row.

    Args:
        generator: A class-conditional generator.
        per_class: Samples per class (the columns).
        class_names: Caption of each class (default: its index).
        rng: Source of noise.
        title: Line of text above the grid.
        scale: Integer upscaling of each image.

    Returns:
        An RGB ``PIL.Image`` (save it with :func:`metaxfer.data.grid.save_image`).

    Raises:
        ValueError: The generator is unconditional, or ``class_names`` has the wrong length.
    """
    num_classes = int(getattr(generator, "num_classes", 0))
    if not num_classes:
        raise ValueError("class_sample_grid needs a class-conditional generator; use sample_images + image_grid")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"got {len(class_names)} class names for a generator of {num_classes} classes")
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images, _ = sample_images(generator, len(labels), labels=labels, rng=rng)
    captions = [names[k] if i % per_class == 0 else "" for i, k in enumerate(labels.tolist())]
    return image_grid(images, columns=per_class, captions=captions, title=title, scale=scale)


def translation_grid(
    translator: nn.Module,
    images: torch.Tensor,
    *,
    back: nn.Module | None = None,
    title: str | None = None,
    scale: int = 2,
    direction: Literal["ab", "ba"] = "ab",
) -> Image.Image:
    """Real images over their translations (and, with ``back``, over the round trip), one column per image.

    Args:
        translator: Image → image network (e.g. ``model.g_ab``).
        images: uint8 images of the translator's input domain (N, C, H, W).
        back: The reverse translator (e.g. ``model.g_ba``) for a third row of reconstructions.
        title: Line of text above the grid.
        scale: Integer upscaling of each image.
        direction: Only used in the row captions (``A → B`` or ``B → A``).

    Returns:
        An RGB ``PIL.Image``. Rows of different channel counts are shown in RGB.
    """
    device = next(translator.parameters()).device
    src, dst = ("A", "B") if direction == "ab" else ("B", "A")
    x = uint8_to_gan(images).to(device)
    fake = _in_eval(translator, lambda: translator(x))
    rows = [images.cpu(), gan_to_uint8(fake).cpu()]
    captions = [f"real {src}", f"{src}→{dst}"]
    if back is not None:
        rows.append(gan_to_uint8(_in_eval(back, lambda: back(fake))).cpu())
        captions.append(f"{src}→{dst}→{src}")
    if len({r.shape[1] for r in rows}) > 1:
        rows = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
    n = images.shape[0]
    return image_grid(
        torch.cat(rows),
        columns=n,
        captions=[c if i == 0 else "" for c in captions for i in range(n)],
        title=title,
        scale=scale,
    )

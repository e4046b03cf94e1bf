"""Picture grids of images with captions (Pillow), for ``metaxfer data show``, run folders and reports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from metaxfer.data.domain import Domain
from metaxfer.errors import DataFormatError

__all__ = ["image_grid", "domain_grid", "save_image"]


def _to_pil(img: torch.Tensor, scale: int) -> Image.Image:
    arr = img.detach().cpu()
    if arr.dtype != torch.uint8:
        raise TypeError(f"image_grid expects uint8 images, got {arr.dtype}; convert with metaxfer.data.transforms.to_uint8")
    np_img = arr.permute(1, 2, 0).numpy()
    pil = Image.fromarray(np_img[:, :, 0], "L") if np_img.shape[2] == 1 else Image.fromarray(np_img, "RGB")
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST) if scale != 1 else pil


def image_grid(
    images: torch.Tensor,
    *,
    columns: int = 10,
    captions: Sequence[str] | None = None,
    scale: int = 2,
    title: str | None = None,
    pad: int = 2,
) -> Image.Image:
    """Lay out uint8 images (N, C, H, W) in a grid, with an optional caption under each and a title on top.

    Args:
        images: uint8 tensor (N, C, H, W), C = 1 or 3.
        columns: Images per row.
        captions: One short string per image (cut to fit the cell).
        scale: Integer upscaling (nearest neighbour) of each image, so small images stay legible.
        title: A line of text above the grid.
        pad: Pixels between cells.

    Returns:
        An RGB ``PIL.Image``.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects (N, C, H, W) with C in {{1, 3}}, got shape {tuple(images.shape)}")
    n = int(images.shape[0])
    if captions is not None and len(captions) != n:
        raise ValueError(f"got {len(captions)} captions for {n} images")
    h, w = int(images.shape[2]) * scale, int(images.shape[3]) * scale
    font = ImageFont.load_default(size=11)
    cap_h = 14 if captions is not None else 0
    title_h = 18 if title else 0
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    cell_w = max(w, 40 if captions is not None else w)
    canvas = Image.new("RGB", (cols * (cell_w + pad) + pad, title_h + rows * (h + cap_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), title, fill="black", font=font)
    for i in range(n):
        r, c = divmod(i, cols)
        x = pad + c * (cell_w + pad)
        y = title_h + pad + r * (h + cap_h + pad)
        canvas.paste(_to_pil(images[i], scale).convert("RGB"), (x + (cell_w - w) // 2, y))
        if captions is not None:
            text = captions[i]
            while text and draw.textlength(text, font=font) > cell_w:
                text = text[:-1]
            draw.text((x, y + h + 1), text, fill="black", font=font)
    return canvas


def domain_grid(domain: Domain, *, classes: int = 20, per_class: int = 5, scale: int | None = None, seed: int = 0) -> Image.Image:
    """A labelled grid of a domain: up to ``classes`` classes (evenly spread), ``per_class`` examples each, one row
    per class, captioned with the class name (and its group when the domain has one)."""
    g = torch.Generator().manual_seed(seed)
    counts = domain.class_counts()
    present = torch.nonzero(counts > 0).flatten()
    pick = present[torch.linspace(0, len(present) - 1, min(classes, len(present))).round().long()] if len(present) else present
    chosen, captions = [], []
    group_key = next(iter(domain.groups), None)
    for c in pick.tolist():
        idx = torch.nonzero(domain.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        chosen.extend(idx.tolist())
        name = _ascii_label(domain.class_names[c], domain.class_keys[c])
        if group_key is not None:
            name = f"{domain.groups[group_key][c]}: {name}"
        captions.extend([name] + [""] * (len(idx) - 1))
    if not chosen:
        raise DataFormatError(f"domain {domain.name!r} has no images to draw")
    images = domain.images[torch.tensor(chosen, dtype=torch.int64)]
    side = max(domain.image_shape[1:])
    return _rows_with_labels(images, captions, per_class=per_class, scale=scale or max(1, 56 // side), title=domain.describe().replace("×", "x"))


def _ascii_label(name: str, key: str) -> str:
    """A caption Pillow's built-in font can draw: the name if it is ASCII, else the class key (e.g. ``U+0E01``),
    else the name with its code points escaped."""
    if name.isascii():
        return name
    if key.isascii():
        return key
    return name.encode("ascii", "backslashreplace").decode()


def _rows_with_labels(images: torch.Tensor, captions: list[str], *, per_class: int, scale: int, title: str) -> Image.Image:
    """One row per class with the class name written to the left of the row."""
    font = ImageFont.load_default(size=12)
    labels = [c for c in captions if c]
    label_w = int(max((ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font=font) for t in labels), default=0)) + 8
    label_w = min(label_w, 260)
    h, w = int(images.shape[2]) * scale, int(images.shape[3]) * scale
    rows = len(labels)
    pad = 2
    title_w = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=font)) + 2 * pad
    width = max(label_w + per_class * (w + pad) + pad, title_w)
    canvas = Image.new("RGB", (width, 20 + rows * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 3), title, fill="black", font=font)
    row = -1
    col = 0
    for img, cap in zip(images, captions):
        if cap:
            row += 1
            col = 0
            text = cap
            while text and draw.textlength(text, font=font) > label_w - 6:
                text = text[:-1]
            draw.text((pad, 20 + row * (h + pad) + max(0, (h - 12) // 2)), text, fill="black", font=font)
        canvas.paste(_to_pil(img, scale).convert("RGB"), (label_w + col * (w + pad), 20 + row * (h + pad)))
        col += 1
    return canvas


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Save a PIL image atomically (temporary file in the same folder, then rename); the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=path.suffix or ".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path



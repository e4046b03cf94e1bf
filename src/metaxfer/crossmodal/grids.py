"""Picture grids with each image's prompt printed under it, in a font that has the prompt's characters.

:func:`metaxfer.data.grid.image_grid` writes captions with Pillow's built-in font, which draws only Latin letters;
prompts here come in 14 languages (Arabic, Persian, Russian, Japanese, Korean, Chinese, ...). :class:`CaptionFonts`
picks, per caption, the first installed font whose character map covers every character of it (common families
first: DejaVu Sans, Noto Sans and its script fonts, WenQuanYi Micro Hei, Nanum Gothic, IPA Gothic, then any other
installed font), and draws it with raqm layout so that Arabic is joined and laid out right to left. A caption no
installed font covers falls back to its code points (``U+0644 ...``), and the grid says so in its log line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, features

from metaxfer.data.sources import fonts

__all__ = ["CaptionFonts", "captioned_grid", "PREFERRED_FONTS"]

log = logging.getLogger(__name__)

#: File names tried first, in order (any folder under the font roots).
PREFERRED_FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf", "NotoSans-Regular.ttf", "NotoSansArabic-Regular.ttf", "NotoSansDevanagari-Regular.ttf",
    "NotoSansHebrew-Regular.ttf", "NotoSansThai-Regular.ttf", "wqy-microhei.ttc", "NanumGothic.ttf",
    "fonts-japanese-gothic.ttf", "ipag.ttf", "FreeSans.ttf",
)


class CaptionFonts:
    """Finds an installed font for each caption (see the module docstring); font files are read lazily, once.

    Args:
        size: Pixel size of the captions.
        roots: Font folders (default: :data:`metaxfer.data.sources.fonts.FONT_ROOTS`).
    """

    def __init__(self, *, size: int = 11, roots: Sequence[str] | None = None) -> None:
        self.size = size
        files = fonts.font_files(roots)
        by_name = {Path(f).name: f for f in files}
        preferred = [by_name[n] for n in PREFERRED_FONTS if n in by_name]
        self._order = preferred + [f for f in files if f not in set(preferred)]
        self._faces: list[fonts.FontFace] = []
        self._read = 0
        self._loaded: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
        self._engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC

    def _face_for(self, text: str) -> fonts.FontFace | None:
        needed = {ord(ch) for ch in text if not ch.isspace()}
        for face in self._faces:
            if needed <= face.codepoints:
                return face
        while self._read < len(self._order):  # read further files only when the ones read so far fall short
            path = self._order[self._read]
            self._read += 1
            new = fonts.discover_fonts(files=[path])
            self._faces.extend(new)
            for face in new:
                if needed <= face.codepoints:
                    return face
        return None

    def font_for(self, text: str) -> ImageFont.FreeTypeFont | None:
        """A font that draws every character of ``text`` at :attr:`size`, or None if no installed font does."""
        face = self._face_for(text)
        if face is None:
            return None
        key = (face.path, face.index)
        if key not in self._loaded:
            self._loaded[key] = ImageFont.truetype(face.path, self.size, index=face.index, layout_engine=self._engine)
        return self._loaded[key]


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int,
         lines: int) -> list[str]:
    """Break ``text`` into at most ``lines`` lines no wider than ``width`` (between words where possible)."""
    out: list[str] = []
    rest = text
    while rest and len(out) < lines:
        cut = len(rest)
        while cut > 1 and draw.textlength(rest[:cut], font=font) > width:
            cut -= 1
        if cut < len(rest):
            space = rest.rfind(" ", 0, cut)
            if space > 0:
                cut = space
        if len(out) == lines - 1 and cut < len(rest):  # last line: shorten and mark the cut
            cut = len(rest[:cut])
            while cut > 1 and draw.textlength(rest[:cut] + "…", font=font) > width:
                cut -= 1
            out.append(rest[:cut].rstrip() + "…")
            return out
        out.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return out


def captioned_grid(
    images: torch.Tensor,
    captions: Sequence[str],
    *,
    columns: int = 8,
    scale: int = 2,
    title: str | None = None,
    lines: int = 2,
    caption_fonts: CaptionFonts | None = None,
    pad: int = 4,
) -> Image.Image:
    """Lay out uint8 images with a (multi-script) caption under each.

    Args:
        images: uint8 (N, C, H, W), C = 1 or 3.
        captions: One caption per image (any script; empty for none).
        columns: Images per row.
        scale: Integer nearest-neighbour upscaling of each image.
        title: A line above the grid (any script).
        lines: Most caption lines per image.
        caption_fonts: Font finder to reuse across grids (default: a new one).
        pad: Pixels between cells.

    Returns:
        An RGB ``PIL.Image``.

    Shape:
        ``images`` (N, C, H, W).
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.dtype != torch.uint8:
        raise ValueError(f"captioned_grid expects uint8 (N, C, H, W) images with C in {{1, 3}}, got "
                         f"{images.dtype} {tuple(images.shape)}")
    if len(captions) != len(images):
        raise ValueError(f"got {len(captions)} captions for {len(images)} images")
    finder = caption_fonts or CaptionFonts()
    fallback = ImageFont.load_default(size=finder.size)
    n = len(images)
    h, w = int(images.shape[2]) * scale, int(images.shape[3]) * scale
    cell_w = max(w, 8 * finder.size)
    line_h = finder.size + 4
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    title_h = line_h + 4 if title else 0
    canvas = Image.new("RGB", (pad + cols * (cell_w + pad), title_h + pad + rows * (h + lines * line_h + pad)),
                       "white")
    draw = ImageDraw.Draw(canvas)
    missing = 0

    def text_and_font(text: str) -> tuple[str, ImageFont.ImageFont | ImageFont.FreeTypeFont]:
        nonlocal missing
        font = finder.font_for(text) if text else fallback
        if font is None:
            missing += 1
            return " ".join(f"U+{ord(ch):04X}" for ch in text if not ch.isspace()), fallback
        return text, font

    if title:
        text, font = text_and_font(title)
        draw.text((pad, 3), text, fill="black", font=font)
    for i in range(n):
        r, c = divmod(i, cols)
        x, y = pad + c * (cell_w + pad), title_h + pad + r * (h + lines * line_h + pad)
        arr = images[i].detach().cpu().permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")
        canvas.paste(pil.resize((w, h), Image.Resampling.NEAREST).convert("RGB"), (x + (cell_w - w) // 2, y))
        if captions[i]:
            text, font = text_and_font(captions[i])
            for k, line in enumerate(_fit(draw, text, font, cell_w, lines)):
                draw.text((x + cell_w / 2, y + h + 2 + k * line_h), line, fill="black", font=font, anchor="ma")
    if missing:
        log.warning("captioned_grid: no installed font draws %d caption(s); wrote their code points instead", missing)
    return canvas

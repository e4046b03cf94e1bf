"""Installed fonts: finding them, reading what they cover, and rendering one character as a centred glyph image.

Every font-rendered domain (``font-glyphs``, ``digits-printed``, ``digits-handwriting``) goes through this module:

- :func:`font_files` lists the font files under the font folders (cheap: no file is opened), which is what the
  domains' cache fingerprints hash;
- :func:`discover_fonts` opens each file with fontTools and returns one :class:`FontFace` per face, with its family
  and style from the ``name`` table and the code points its ``cmap`` maps to real glyphs;
- :func:`load_font`, :func:`render_ink` and :func:`place_ink` turn a character into a uint8 array: the glyph is
  drawn large (with Pillow's raqm layout where available, so scripts that need shaping get their isolated forms),
  cropped to its ink, scaled to fit a fixed box keeping its aspect ratio, and placed with its centre of mass at the
  image centre, as MNIST digits were;
- :func:`notdef_ink` renders a code point no font maps, so callers can reject a glyph that is the font's
  "missing glyph" box.

Images follow the domain convention: bright ink (255) on a black (0) background.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

__all__ = [
    "FONT_ROOTS",
    "FONT_INSTALL_HINT",
    "NON_TEXT_FAMILIES",
    "FontFace",
    "font_files",
    "discover_fonts",
    "group_families",
    "regular_face",
    "style_rank",
    "debian_package_font_files",
    "char_key",
    "default_box",
    "load_font",
    "render_ink",
    "transform_ink",
    "place_ink",
    "render_glyph",
    "notdef_ink",
]

log = logging.getLogger(__name__)

#: Folders searched for fonts (Debian and most Linux distributions install them here).
FONT_ROOTS: tuple[str, ...] = ("/usr/share/fonts",)

#: How to get what the font domains read: fontTools, and the fonts (the project's ``make`` set-up installs both).
FONT_INSTALL_HINT = (
    "`pip install fonttools` and install the Debian font packages of scripts/debian-packages.txt (`make setup` "
    "run as root does both), or at "
    "least `sudo apt-get install fonts-noto-core fonts-noto-ui-core fonts-dejavu-core fonts-freefont-ttf "
    "fonts-liberation fonts-urw-base35 fonts-paratype fonts-ipafont fonts-nanum fonts-unfonts-core fonts-khmeros "
    "fonts-smc fonts-indic fonts-sil-padauk fonts-lklug-sinhala fonts-arabeyes fonts-kacst fonts-ukij-uyghur "
    "fonts-tlwg-garuda-ttf fonts-tlwg-loma-ttf fonts-tlwg-waree-ttf`"
)

#: Families whose cmap maps letters to pictures, ornaments or another script's letters (found by looking at every
#: family's renderings): their glyphs are not the characters they claim to be, so no domain draws from them.
NON_TEXT_FAMILIES: frozenset[str] = frozenset(
    {
        "D050000L",  # URW Dingbats: Latin letters are dingbats
        "Standard Symbols PS",  # Symbol encoding: Latin letters are Greek
        "UKIJ Orxun-Yensey",  # Latin letters are Old Turkic runes
        "UKIJ Tughra",  # calligraphic emblems and pictures
        "UKIJ Imaret",  # every letter is a building
        "Haramain",  # Arabic letters are pictures of mosques
    }
)

_FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
_COLOUR_TABLES = ("CBDT", "sbix", "COLR", "SVG ")
_SKIPPED_FAMILY_WORDS = ("emoji", "last resort")
_REGULAR_STYLES = frozenset({"regular", "book", "normal", "roman", "medium", "plain"})
#: A noncharacter: never mapped by a font, so it always renders the font's .notdef glyph.
_NOTDEF_PROBE = "\U0010ffff"
#: Ink below this (summed 0..255 values, at the large rendering size) counts as an empty glyph.
_MIN_INK = 255 * 6


@dataclass(frozen=True)
class FontFace:
    """One face of an installed font file.

    Attributes:
        path: The font file (symbolic links resolved).
        index: The face's index inside a font collection (``.ttc``); 0 for single-face files.
        family: Typographic family name (name ID 16, else 1), e.g. ``"DejaVu Sans"``.
        style: Typographic style name (name ID 17, else 2), e.g. ``"Bold Oblique"``.
        weight: ``OS/2.usWeightClass`` (400 = regular, 700 = bold); 400 when the table is absent.
        width: ``OS/2.usWidthClass`` (5 = normal, below = condensed); 5 when absent.
        italic: Whether the face is italic, oblique or slanted.
        codepoints: Code points the ``cmap`` maps to a glyph other than ``.notdef``.
    """

    path: str
    index: int
    family: str
    style: str
    weight: int
    width: int
    italic: bool
    codepoints: frozenset[int]

    @property
    def name(self) -> str:
        """``"Family Style"``, e.g. ``"DejaVu Sans Bold"``."""
        return f"{self.family} {self.style}".strip()

    def covers(self, text: str) -> bool:
        """Whether every character of ``text`` is in the face's cmap."""
        return all(ord(ch) in self.codepoints for ch in text)


# ------------------------------------------------------------------------------------------------ discovery
def font_files(roots: Sequence[str | os.PathLike[str]] | None = None) -> list[str]:
    """Every ``.ttf``, ``.otf`` and ``.ttc`` file under ``roots``, symbolic links resolved, sorted, no duplicates.

    Args:
        roots: Folders to search; defaults to :data:`FONT_ROOTS`. Missing folders are skipped.

    Returns:
        Absolute file paths.
    """
    found: set[str] = set()
    for root in roots if roots is not None else FONT_ROOTS:
        base = Path(root)
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.suffix.lower() in _FONT_SUFFIXES and path.is_file():
                found.add(str(path.resolve()))
    return sorted(found)


class _DropFontToolsNoise(logging.Filter):
    """Hides fontTools' warnings about harmless table quirks while fonts are scanned (truncated or unsorted cmap
    groups, odd ``head`` timestamps): they say nothing about whether a glyph renders."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


_NOISY_FONTTOOLS_LOGGERS = ("fontTools.ttLib.tables._c_m_a_p", "fontTools.ttLib.tables._h_e_a_d")


def discover_fonts(
    roots: Sequence[str | os.PathLike[str]] | None = None, *, files: Iterable[str] | None = None
) -> list[FontFace]:
    """Read every installed font face: family, style, weight, and the code points it covers.

    Colour and bitmap emoji fonts (``CBDT``, ``sbix``, ``COLR`` or ``SVG`` tables), any family named "Emoji",
    Apple's "Last Resort" font (a placeholder for every character) and the symbol fonts of
    :data:`NON_TEXT_FAMILIES` are left out. Unreadable files are skipped with a warning.

    Args:
        roots: Folders to search; defaults to :data:`FONT_ROOTS`.
        files: Read exactly these files instead of searching ``roots``.

    Returns:
        Faces sorted by (family, style, path, index).
    """
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    paths = [str(Path(f).resolve()) for f in files] if files is not None else font_files(roots)
    noise = _DropFontToolsNoise()
    noisy = [logging.getLogger(name) for name in _NOISY_FONTTOOLS_LOGGERS]
    for logger in noisy:
        logger.addFilter(noise)
    faces: list[FontFace] = []
    try:
        for path in paths:
            try:
                collection = path.lower().endswith(".ttc")
                count = 1
                if collection:
                    with TTCollection(path, lazy=True) as faces_in_file:
                        count = len(faces_in_file.fonts)
                for index in range(count):
                    with TTFont(path, lazy=True, fontNumber=index if collection else -1) as font:
                        face = _read_face(font, path, index)
                    if face is not None:
                        faces.append(face)
            except (TTLibError, OSError, KeyError, AssertionError, ValueError) as exc:
                log.warning("skipping unreadable font file %s (%s)", path, exc)
    finally:
        for logger in noisy:
            logger.removeFilter(noise)
    faces.sort(key=lambda f: (f.family, f.style, f.path, f.index))
    return faces


def _read_face(font: object, path: str, index: int) -> FontFace | None:
    """The :class:`FontFace` of an open fontTools font, or None for colour/emoji/placeholder fonts."""
    if any(tag in font for tag in _COLOUR_TABLES):  # type: ignore[operator]
        return None
    names = font["name"]  # type: ignore[index]
    family = (names.getBestFamilyName() or Path(path).stem).strip()
    if family in NON_TEXT_FAMILIES or any(word in family.lower() for word in _SKIPPED_FAMILY_WORDS):
        return None
    style = (names.getBestSubFamilyName() or "Regular").strip()
    # Name the glyphs by index before the cmap is read: fontTools would otherwise decode every glyph name (the
    # costliest step of a scan), and glyph 0 is the .notdef glyph whatever its name.
    count = int(font["maxp"].numGlyphs)  # type: ignore[index]
    font.setGlyphOrder([f"gid{i}" for i in range(count)])  # type: ignore[attr-defined]
    cmap = font.getBestCmap() or {}  # type: ignore[attr-defined]
    codepoints = frozenset(cp for cp, glyph in cmap.items() if glyph != "gid0")
    weight, width, italic = 400, 5, False
    if "OS/2" in font:  # type: ignore[operator]
        os2 = font["OS/2"]  # type: ignore[index]
        weight, width = int(os2.usWeightClass), int(os2.usWidthClass)
        italic = bool(os2.fsSelection & 0x01)
    if "head" in font:  # type: ignore[operator]
        italic = italic or bool(font["head"].macStyle & 0x02)  # type: ignore[index]
    lowered = style.lower()
    italic = italic or any(word in lowered for word in ("italic", "oblique", "slanted"))
    return FontFace(path, index, family, style, weight, width, italic, codepoints)


def style_rank(face: FontFace) -> tuple[bool, bool, int, bool, str, int]:
    """Sort key putting a family's most "regular" face first: upright, normal width, weight nearest 400."""
    return (
        face.italic,
        face.width != 5,
        abs(face.weight - 400),
        face.style.lower() not in _REGULAR_STYLES,
        face.path,
        face.index,
    )


def group_families(faces: Iterable[FontFace]) -> dict[str, list[FontFace]]:
    """Faces grouped by family name, each family's faces sorted by :func:`style_rank` (regular first)."""
    families: dict[str, list[FontFace]] = {}
    for face in faces:
        families.setdefault(face.family, []).append(face)
    return {name: sorted(members, key=style_rank) for name, members in sorted(families.items())}


def regular_face(faces: Sequence[FontFace]) -> FontFace:
    """The most regular of one family's faces (see :func:`style_rank`)."""
    if not faces:
        raise ValueError("regular_face needs at least one face")
    return min(faces, key=style_rank)


def debian_package_font_files(package: str) -> list[str]:
    """Font files installed by the Debian package ``package`` (``dpkg-query -L``), resolved; ``[]`` if absent."""
    if shutil.which("dpkg-query") is None:
        return []
    result = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return []
    paths = {
        str(Path(line).resolve())
        for line in result.stdout.splitlines()
        if line.lower().endswith(_FONT_SUFFIXES) and Path(line).is_file()
    }
    return sorted(paths)


def char_key(ch: str) -> str:
    """The class key of a character shared across domains: ``"digit-7"`` for ASCII digits, else ``"U+0041"``."""
    if len(ch) != 1:
        raise ValueError(f"char_key takes one character, got {ch!r}")
    if "0" <= ch <= "9":
        return f"digit-{ch}"
    return f"U+{ord(ch):04X}"


# ------------------------------------------------------------------------------------------------ rendering
def default_box(size: int) -> int:
    """The side of the box a glyph is scaled to fit in a ``size``×``size`` image: 20/28 of it, as in MNIST."""
    return max(1, round(size * 20 / 28))


def load_font(face: FontFace, *, px: int) -> ImageFont.FreeTypeFont:
    """Open ``face`` with Pillow at ``px`` pixels per em, with raqm text shaping when Pillow has it.

    Raises:
        OSError: FreeType cannot read the file.
    """
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    return ImageFont.truetype(face.path, size=px, index=face.index, layout_engine=engine)


def render_ink(font: ImageFont.FreeTypeFont, text: str) -> np.ndarray | None:
    """Draw ``text`` white on black and crop to its ink.

    Args:
        font: A Pillow font (see :func:`load_font`).
        text: Usually one character; shaped as a whole when the font uses raqm.

    Returns:
        uint8 array (h, w) cropped to the ink's bounding box, or None when the glyph has (almost) no ink.
    """
    # Draw on a canvas three ems wide with the pen one em in; measure first only for a glyph that reaches the edge
    # (text layout is the costly step, so most glyphs are laid out once).
    em = int(font.size)
    canvas = _draw(font, text, origin=(em, em), size=(3 * em, 3 * em))
    bbox = canvas.getbbox() if canvas is not None else None
    if bbox is not None and (bbox[0] == 0 or bbox[1] == 0 or bbox[2] == canvas.width or bbox[3] == canvas.height):
        try:
            left, top, right, bottom = font.getbbox(text)
        except (OSError, ValueError) as exc:  # FreeType refuses some glyphs (e.g. a broken outline)
            log.debug("cannot measure %r with %s (%s)", text, getattr(font, "path", font), exc)
            return None
        pad = 2
        size = (right - left + 2 * pad, bottom - top + 2 * pad)
        canvas = _draw(font, text, origin=(pad - left, pad - top), size=size)
        bbox = canvas.getbbox() if canvas is not None else None
    if canvas is None or bbox is None:
        return None
    ink = np.asarray(canvas.crop(bbox))
    return ink if int(ink.sum(dtype=np.int64)) >= _MIN_INK else None


def _draw(
    font: ImageFont.FreeTypeFont, text: str, *, origin: tuple[int, int], size: tuple[int, int]
) -> Image.Image | None:
    """``text`` drawn at ``origin`` on a black canvas of ``size``; None when FreeType refuses the glyph."""
    if size[0] <= 0 or size[1] <= 0:
        return None
    image = Image.new("L", size, 0)
    try:
        ImageDraw.Draw(image).text(origin, text, fill=255, font=font)
    except (OSError, ValueError) as exc:  # e.g. a broken outline
        log.debug("cannot draw %r with %s (%s)", text, getattr(font, "path", font), exc)
        return None
    return image


def _crop_ink(pixels: np.ndarray) -> np.ndarray | None:
    """``pixels`` cropped to the rows and columns holding ink; None when the total ink is below :data:`_MIN_INK`."""
    if int(pixels.sum(dtype=np.int64)) < _MIN_INK:
        return None
    rows = np.flatnonzero(pixels.any(axis=1))
    cols = np.flatnonzero(pixels.any(axis=0))
    return np.ascontiguousarray(pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def notdef_ink(font: ImageFont.FreeTypeFont) -> np.ndarray | None:
    """The font's missing-glyph (``.notdef``) rendering, or None when it draws nothing."""
    return render_ink(font, _NOTDEF_PROBE)


def transform_ink(ink: np.ndarray, *, angle: float = 0.0, shear: float = 0.0) -> np.ndarray:
    """Shear, then rotate, an ink crop about its centre; the result is cropped to its ink again.

    Args:
        ink: uint8 (h, w) from :func:`render_ink`.
        angle: Rotation in degrees, counter-clockwise as seen on screen.
        shear: Horizontal shear: each row moves right by ``shear`` times its height above the centre (0.2 slants
            the glyph like an italic; negative values slant it backwards).

    Returns:
        uint8 (h', w'), the transformed glyph cropped to its ink (the input itself if nothing is to be done).
    """
    if angle == 0.0 and shear == 0.0:
        return ink
    h, w = ink.shape
    side = int(math.ceil(math.hypot(h, w) * (1.0 + abs(shear)))) + 4
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(Image.fromarray(ink), ((side - w) // 2, (side - h) // 2))
    # Forward map: p' = R·S·(p - c) + c with S = [[1, -shear], [0, 1]] (y grows downwards, so -shear slants the
    # top to the right) and R the rotation; Pillow wants the inverse map (output -> input).
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    forward = np.array([[cos, sin], [-sin, cos]]) @ np.array([[1.0, -shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre = np.array([side / 2, side / 2])
    offset = centre - inverse @ centre
    data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    moved = canvas.transform((side, side), Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC)
    cropped = _crop_ink(np.asarray(moved))
    return cropped if cropped is not None else ink


def place_ink(
    ink: np.ndarray,
    *,
    size: int,
    box: int | None = None,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Scale an ink crop to fit a box (aspect ratio kept) and centre its mass in a square image.

    This is MNIST's normalisation: the glyph's longer side becomes ``box·scale`` pixels, and the glyph is placed so
    that its centre of mass sits at the image centre (moved by ``shift``), then pushed back inside the image if
    that would cut it. The scaled glyph's values are stretched so that its brightest pixel is 255 (hairline strokes
    would otherwise fade to grey).

    Args:
        ink: uint8 (h, w), bright ink on black.
        size: Side of the output image.
        box: Side of the fitting box; defaults to :func:`default_box` (20 for 28).
        scale: Factor on the box side (jitter: 0.85 draws the glyph 15% smaller).
        shift: (dx, dy) in output pixels added to the centred position.

    Returns:
        uint8 (size, size).

    Shape:
        ink (h, w) -> (size, size).
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    side = (box if box is not None else default_box(size)) * scale
    side = min(max(side, 1.0), float(size))
    h, w = ink.shape
    factor = side / max(h, w)
    new_w, new_h = max(1, min(size, round(w * factor))), max(1, min(size, round(h * factor)))
    small = np.asarray(Image.fromarray(ink).resize((new_w, new_h), Image.Resampling.LANCZOS))
    peak = int(small.max())
    if 0 < peak < 255:  # hairline glyphs fade when shrunk: stretch them back to full ink
        small = np.round(small.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    mass = small.astype(np.float64)
    total = mass.sum()
    if total > 0:
        cy = float((mass.sum(axis=1) * np.arange(new_h)).sum() / total) + 0.5
        cx = float((mass.sum(axis=0) * np.arange(new_w)).sum() / total) + 0.5
    else:
        cy, cx = new_h / 2, new_w / 2
    top = min(max(round(size / 2 - cy + shift[1]), 0), size - new_h)
    left = min(max(round(size / 2 - cx + shift[0]), 0), size - new_w)
    out = np.zeros((size, size), dtype=np.uint8)
    out[top : top + new_h, left : left + new_w] = small
    return out


def render_glyph(
    font: ImageFont.FreeTypeFont, text: str, *, size: int = 28, box: int | None = None
) -> np.ndarray | None:
    """Render ``text`` with ``font`` into a centred ``size``×``size`` uint8 image (see :func:`place_ink`).

    Returns:
        uint8 (size, size), or None when the glyph is empty.
    """
    ink = render_ink(font, text)
    return None if ink is None else place_ink(ink, size=size, box=box)

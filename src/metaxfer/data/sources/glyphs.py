"""``font-glyphs``: an Omniglot-like domain rendered from the installed fonts.

Alphabet = Unicode script, character = class, font family = instance (the "drawer"). For each script that at least
``min_families`` families cover, a fixed set of base letters is chosen (letters only: no marks, digits or
punctuation; no precomposed letters; one case only), every family draws them with its most regular face, and each
rendering is checked to be a real glyph:

- the family's cmap maps the character (:func:`~metaxfer.data.sources.fonts.discover_fonts` drops ``.notdef``
  mappings);
- the rendering has ink and differs from the font's own ``.notdef`` box;
- two different letters of one family and script never render identically (a font that maps several letters to one
  placeholder glyph loses those letters);
- a rendering identical to another family's for the same letter (the same design shipped under two names, e.g. the
  "UI" variants of Noto) is kept once.

Letters left with fewer than ``min_families`` families are dropped, then scripts with fewer than five letters.

Base letters per script: the core alphabet in :data:`CORE_LETTER_RANGES` where one is listed (capital letters for
cased scripts, consonants and independent vowels for Brahmic scripts, the Kangxi radicals for Han), otherwise
every uncased or capital letter of the script without any decomposition, in code-point order; at most
``max_chars_per_script`` of them, the first in that order.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.sources import fonts
from metaxfer.errors import MissingDependencyError, UnknownNameError

__all__ = ["CORE_LETTER_RANGES", "build_font_glyphs", "script_letters", "resolve_scripts"]

log = logging.getLogger(__name__)

#: Inclusive code-point ranges of each script's core letters (filtered to letters of that script without a
#: canonical decomposition, and, for kana, without the small forms).
CORE_LETTER_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "Latn": ((0x0041, 0x005A),),  # A-Z
    "Grek": ((0x0391, 0x03A9),),  # capitals Alpha-Omega
    "Cyrl": ((0x0410, 0x042F),),  # capitals A-Ya
    "Armn": ((0x0531, 0x0556),),  # capitals Ayb-Feh
    "Geor": ((0x10D0, 0x10F0),),  # Mkhedruli an-hae (the letters in everyday use)
    "Hebr": ((0x05D0, 0x05EA),),  # alef-tav with final forms
    "Arab": ((0x0620, 0x064A),),  # hamza-yeh (isolated forms)
    "Thai": ((0x0E01, 0x0E2E),),  # consonants
    "Laoo": ((0x0E81, 0x0EAE),),  # consonants
    "Khmr": ((0x1780, 0x17A2), (0x17A5, 0x17B3)),  # consonants, independent vowels
    "Mymr": ((0x1000, 0x102A),),  # consonants, independent vowels
    "Tfng": ((0x2D30, 0x2D67),),
    "Hira": ((0x3041, 0x3096),),
    "Kana": ((0x30A1, 0x30FA),),
    "Hang": ((0x3131, 0x3163),),  # compatibility jamo: consonants then vowels
    "Sinh": ((0x0D85, 0x0DC6),),
    "Deva": ((0x0905, 0x0939),),  # independent vowels, consonants
    "Beng": ((0x0985, 0x09B9),),
    "Guru": ((0x0A05, 0x0A39),),
    "Gujr": ((0x0A85, 0x0AB9),),
    "Orya": ((0x0B05, 0x0B39),),
    "Taml": ((0x0B85, 0x0BB9),),
    "Telu": ((0x0C05, 0x0C39),),
    "Knda": ((0x0C85, 0x0CB9),),
    "Mlym": ((0x0D05, 0x0D3A),),
}
#: Han has no alphabet; its base set is the 214 Kangxi radicals (U+2F00-U+2FD5), as the ideographs they stand for.
_KANGXI_RADICALS = (0x2F00, 0x2FD5)
#: Script codes that are not alphabets (shared punctuation and digits, inherited marks, unknown).
_NOT_ALPHABETS = frozenset({"Zyyy", "Zinh", "Zzzz", "Brai"})
_LETTER_CATEGORIES = frozenset({"Lu", "Lo", "Ll"})
_MIN_CHARS_PER_SCRIPT = 5


def _is_base_letter(cp: int, script: str, *, strict: bool) -> bool:
    """A letter of ``script`` without a canonical decomposition (``strict``: without any decomposition, uncased or
    capital); small kana and lowercase letters are never base letters."""
    from fontTools.unicodedata import script as script_of

    ch = chr(cp)
    category = unicodedata.category(ch)
    if category not in _LETTER_CATEGORIES or script_of(ch) != script:
        return False
    decomposition = unicodedata.decomposition(ch)
    if decomposition and (strict or not decomposition.startswith("<")):
        return False
    name = unicodedata.name(ch, "")
    return "SMALL" not in name.split() and not (strict and category == "Ll")


def script_letters(script: str, available: Iterable[int] = ()) -> list[int]:
    """The candidate base letters of ``script``, in order (before coverage checks and the per-script cap).

    Args:
        script: ISO 15924 code, e.g. ``"Latn"``.
        available: Code points the installed fonts cover; the candidates of scripts without a core range in
            :data:`CORE_LETTER_RANGES` are drawn from these.

    Returns:
        Code points.
    """
    from fontTools.unicodedata import script as script_of

    if script == "Hani":
        radicals = range(_KANGXI_RADICALS[0], _KANGXI_RADICALS[1] + 1)
        ideographs = [int(unicodedata.decomposition(chr(r)).split()[-1], 16) for r in radicals]
        return [cp for cp in dict.fromkeys(ideographs) if script_of(chr(cp)) == "Hani"]
    if script in CORE_LETTER_RANGES:
        cps = [cp for lo, hi in CORE_LETTER_RANGES[script] for cp in range(lo, hi + 1)]
        return [cp for cp in cps if _is_base_letter(cp, script, strict=False)]
    return sorted(cp for cp in set(available) if _is_base_letter(cp, script, strict=True))


def resolve_scripts(scripts: str | Sequence[str] | None, valid: Sequence[str]) -> list[str] | None:
    """Turn the ``scripts`` option (codes or English names, a list or a comma-separated string) into codes.

    Args:
        scripts: e.g. ``["Latn", "Greek"]`` or ``"latn,grek"``; None for every available script.
        valid: The script codes available here (shown in the error).

    Returns:
        Codes in the given order, or None.

    Raises:
        UnknownNameError: A name is neither an ISO 15924 code nor a Unicode script name; lists the valid codes.
        ValueError: ``scripts`` is empty or not strings.
    """
    from fontTools import unicodedata as ftu

    if scripts is None:
        return None
    items = [s.strip() for s in scripts.split(",")] if isinstance(scripts, str) else list(scripts)
    if not items or not all(isinstance(s, str) and s for s in items):
        raise ValueError(f"font-glyphs: scripts must be a non-empty list of script codes, got {scripts!r}")
    valid_list = ", ".join(f"{code} ({ftu.script_name(code, default=code)})" for code in valid)
    codes = []
    for item in items:
        code = item[:1].upper() + item[1:].lower()
        if ftu.script_name(code, default=None) is None:
            code = ftu.script_code(item.replace("_", " "), default=None)
        if code is None or code in _NOT_ALPHABETS:
            raise UnknownNameError(
                f"font-glyphs: unknown script {item!r}; use an ISO 15924 code or Unicode script name. "
                f"Scripts available with the installed fonts: {valid_list}"
            )
        codes.append(code)
    return list(dict.fromkeys(codes))


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"font-glyphs: {name} must be an integer {bounds}, got {value!r}")
    return value


def build_font_glyphs(
    *,
    size: int = 28,
    scripts: str | Sequence[str] | None = None,
    min_families: int = 5,
    max_chars_per_script: int = 50,
    distinct_designs: bool = True,
) -> Domain:
    """Render the ``font-glyphs`` domain from the installed fonts.

    Args:
        size: Image side in pixels; glyphs fit a box of 20/28 of it.
        scripts: ISO 15924 codes or script names to keep (default: every script with enough families).
        min_families: Fewest distinct families that must draw a letter for it to be a class.
        max_chars_per_script: Most letters per script (the first ones of the script's base set).
        distinct_designs: Keep a rendering only if no other family draws that letter identically (the same
            design shipped twice, e.g. Noto's "UI" variants). False keeps every family's drawing: that adds
            Sinhala and Tifinagh, whose fifth families repeat another family's drawings.

    Returns:
        The domain: groups ``{"alphabet": [script code per class]}``, instances ``{"font": [family per image]}``,
        class keys ``"U+XXXX"``, metadata with the script names, the families per script and the font files used.

    Shape:
        images (N, 1, size, size), uint8, white glyphs on black.

    Raises:
        ValueError: An option is out of range.
        UnknownNameError: ``scripts`` names an unknown script (the message lists the available ones).
        MissingDependencyError: No script (or a requested one) has enough families; says which fonts to install.
    """
    size = _check_int("size", size, 8, 512)
    min_families = _check_int("min_families", min_families, 1)
    max_chars = _check_int("max_chars_per_script", max_chars_per_script, 1)
    if not isinstance(distinct_designs, bool):
        raise ValueError(f"font-glyphs: distinct_designs must be True or False, got {distinct_designs!r}")
    started = time.perf_counter()

    families = {
        name: fonts.regular_face(members)
        for name, members in fonts.group_families(fonts.discover_fonts()).items()
    }
    if not families:
        raise MissingDependencyError(
            f"font-glyphs: no fonts found under {', '.join(fonts.FONT_ROOTS)}; {fonts.FONT_INSTALL_HINT}"
        )
    from fontTools.unicodedata import script as script_of

    by_script: dict[str, set[int]] = {}
    for cp in set().union(*(face.codepoints for face in families.values())):
        by_script.setdefault(script_of(chr(cp)), set()).add(cp)
    letters = {s: script_letters(s, cps) for s, cps in sorted(by_script.items()) if s not in _NOT_ALPHABETS}
    all_letters = {cp for cps in letters.values() for cp in cps}
    coverage: Counter[int] = Counter()
    for face in families.values():
        coverage.update(face.codepoints & all_letters)
    candidates: dict[str, list[int]] = {}
    for script, cps in letters.items():
        common = [cp for cp in cps if coverage[cp] >= min_families]
        if len(common) >= _MIN_CHARS_PER_SCRIPT:
            candidates[script] = common
    wanted = resolve_scripts(scripts, sorted(candidates))
    if wanted is not None:
        if absent := [s for s in wanted if s not in candidates]:
            raise _too_few_families(absent, min_families)
        candidates = {s: candidates[s] for s in wanted}
    box = fonts.default_box(size)
    rendered = _render_all(families, candidates, size=size, box=box)
    classes = _select_classes(
        rendered, candidates, min_families=min_families, max_chars=max_chars, distinct=distinct_designs
    )

    missing = [s for s in (wanted or []) if s not in classes]
    if missing or not classes:
        raise _too_few_families(missing, min_families)
    options = {
        "size": size,
        "min_families": min_families,
        "max_chars_per_script": max_chars,
        "distinct_designs": distinct_designs,
    }
    domain = _assemble(classes, families, options=options)
    log.info("font-glyphs: rendered %s in %.1f s", domain.describe(), time.perf_counter() - started)
    return domain


def _too_few_families(scripts: Sequence[str], min_families: int) -> MissingDependencyError:
    from fontTools import unicodedata as ftu

    which = ", ".join(f"{s} ({ftu.script_name(s, default=s)})" for s in scripts) or "no script"
    return MissingDependencyError(
        f"font-glyphs: {which} has fewer than {_MIN_CHARS_PER_SCRIPT} letters drawn by at least {min_families} "
        f"distinct font families here; lower min_families, pass distinct_designs=False to count families that "
        f"repeat another family's drawings, or {fonts.FONT_INSTALL_HINT}"
    )


def _render_all(
    families: dict[str, fonts.FontFace], candidates: dict[str, list[int]], *, size: int, box: int
) -> dict[tuple[str, int], np.ndarray]:
    """Every valid rendering ``(family, code point) -> (size, size) uint8`` of the candidate letters."""
    needed = {cp for cps in candidates.values() for cp in cps}
    out: dict[tuple[str, int], np.ndarray] = {}
    for family, face in families.items():
        todo = sorted(needed & face.codepoints)
        if not todo:
            continue
        try:
            font = fonts.load_font(face, px=4 * box)
        except OSError as exc:
            log.warning("font-glyphs: skipping %s (%s): FreeType cannot open it (%s)", family, face.path, exc)
            continue
        notdef = fonts.notdef_ink(font)
        for cp in todo:
            ink = fonts.render_ink(font, chr(cp))
            if ink is None or (notdef is not None and np.array_equal(ink, notdef)):
                continue
            out[family, cp] = fonts.place_ink(ink, size=size, box=box)
    return out


def _select_classes(
    rendered: dict[tuple[str, int], np.ndarray],
    candidates: dict[str, list[int]],
    *,
    min_families: int,
    max_chars: int,
    distinct: bool,
) -> dict[str, list[tuple[int, list[tuple[str, np.ndarray]]]]]:
    """Per script, the chosen letters with their (family, image) instances, after the duplicate checks."""
    per_family: dict[str, list[int]] = {}
    for family, cp in rendered:
        per_family.setdefault(family, []).append(cp)
    script_of = {cp: script for script, cps in candidates.items() for cp in cps}
    placeholders: set[tuple[str, int]] = set()
    for family, cps in per_family.items():
        seen: dict[tuple[str, bytes], list[int]] = {}
        for cp in cps:
            seen.setdefault((script_of[cp], rendered[family, cp].tobytes()), []).append(cp)
        for same in seen.values():
            if len(same) > 1:
                log.debug("font-glyphs: %s draws %s identically; dropping them", family, [f"U+{c:04X}" for c in same])
                placeholders.update((family, c) for c in same)

    classes: dict[str, list[tuple[int, list[tuple[str, np.ndarray]]]]] = {}
    for script, cps in candidates.items():
        chosen: list[tuple[int, list[tuple[str, np.ndarray]]]] = []
        for cp in cps:
            instances: list[tuple[str, np.ndarray]] = []
            designs: set[bytes] = set()
            for family in sorted(f for f in per_family if (f, cp) in rendered and (f, cp) not in placeholders):
                image = rendered[family, cp]
                if not distinct or image.tobytes() not in designs:
                    designs.add(image.tobytes())
                    instances.append((family, image))
            if len(instances) >= min_families:
                chosen.append((cp, instances))
            if len(chosen) == max_chars:
                break
        if len(chosen) >= _MIN_CHARS_PER_SCRIPT:
            classes[script] = chosen
    return classes


def _assemble(
    classes: dict[str, list[tuple[int, list[tuple[str, np.ndarray]]]]],
    families: dict[str, fonts.FontFace],
    *,
    options: dict[str, object],
) -> Domain:
    from fontTools import unicodedata as ftu

    images: list[np.ndarray] = []
    labels: list[int] = []
    font_of: list[str] = []
    names: list[str] = []
    keys: list[str] = []
    alphabet: list[str] = []
    unicode_names: list[str] = []
    used: dict[str, set[str]] = {}
    for script in sorted(classes):
        for cp, instances in classes[script]:
            label = len(names)
            names.append(chr(cp))
            keys.append(fonts.char_key(chr(cp)))
            alphabet.append(script)
            unicode_names.append(unicodedata.name(chr(cp), f"U+{cp:04X}"))
            for family, image in instances:
                images.append(image)
                labels.append(label)
                font_of.append(family)
                used.setdefault(script, set()).add(family)
    files = sorted({families[f].path for members in used.values() for f in members})
    return Domain(
        name="font-glyphs",
        images=torch.from_numpy(np.stack(images)[:, None]),
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=names,
        class_keys=keys,
        groups={"alphabet": alphabet},
        instances={"font": font_of},
        metadata={
            "source": "installed Debian font packages (/usr/share/fonts)",
            "license": "per font: mostly SIL OFL 1.1, GPL with font exception, Apache 2.0 (see each package)",
            "description": "Omniglot-like letters: alphabet = Unicode script, class = letter, instance = font "
            "family; glyphs scaled to fit a 20/28 box and centred by mass",
            "scripts": {s: ftu.script_name(s, default=s) for s in sorted(classes)},
            # [script, [families]] pairs, not a dict of lists, which Domain.select_classes would take as per-class
            "families": [[s, sorted(members)] for s, members in sorted(used.items())],
            "font_files": files,
            "options": options,
            "unicode_name": {"en": unicode_names},
        },
    )


register_domain(
    DomainSpec(
        name="font-glyphs",
        build=build_font_glyphs,
        description="Omniglot-like letters of 20+ scripts drawn by the installed font families, 1×28×28",
        source="Debian: fonts-noto-core and the other font packages of scripts/debian-packages.txt",
        license="SIL OFL 1.1 / GPL with font exception (per font)",
        python_modules=("fontTools",),
        debian_packages=("fonts-noto-core",),
        install_hint=fonts.FONT_INSTALL_HINT,
        default=True,
        fingerprint_files=lambda **_: fonts.font_files(),
    )
)

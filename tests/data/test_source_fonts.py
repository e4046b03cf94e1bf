"""The font helpers (discovery, rendering, centring) and the ``font-glyphs`` domain."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxfer.data.domain import DOMAINS, create_domain
from metaxfer.data.sources import fonts
from metaxfer.data.sources.glyphs import CORE_LETTER_RANGES, build_font_glyphs, resolve_scripts, script_letters
from metaxfer.errors import MissingDependencyError, UnknownNameError

pytest.importorskip("fontTools", reason="the font domains read fonts with fontTools: pip install fonttools")

_PROBLEM = DOMAINS.get("font-glyphs").check() if "font-glyphs" in DOMAINS else "font-glyphs is not registered"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_ROOTS = fonts.FONT_ROOTS
#: The scripts the project's data notes (DATA.md) count with five or more families, less Sinhala and Tifinagh,
#: whose fifth families repeat another family's drawings (they appear with ``distinct_designs=False``).
LISTED_SCRIPTS = (
    "Latn Arab Grek Cyrl Telu Hebr Thai Kana Hang Khmr Mlym Gujr Beng Deva Armn Taml Guru Knda Orya Geor Mymr"
).split()


@pytest.fixture(scope="module", autouse=True)
def _scan_fonts_once():
    """Every build in this module reads the installed fonts once (a scan takes seconds; the scan itself is tested
    on its own below)."""
    scan = fonts.discover_fonts
    cached: list[fonts.FontFace] = []

    def discover(roots=None, *, files=None):
        if roots is not None or files is not None or fonts.FONT_ROOTS != _ROOTS:
            return scan(roots, files=files)
        if not cached:
            cached.extend(scan())
        return list(cached)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fonts, "discover_fonts", discover)
        yield


@pytest.fixture(scope="module")
def glyphs():
    return create_domain("font-glyphs")


@pytest.fixture(scope="module")
def dejavu() -> fonts.FontFace:
    found = fonts.discover_fonts(files=[DEJAVU])
    if not found:
        pytest.skip(f"{DEJAVU} is not installed (fonts-dejavu-core)")
    return found[0]


# --------------------------------------------------------------------------------------------- pure helpers
def test_char_key_uses_digit_keys_for_digits_and_code_points_otherwise():
    assert fonts.char_key("7") == "digit-7"
    assert fonts.char_key("A") == "U+0041"
    assert fonts.char_key("ア") == "U+30A2"
    with pytest.raises(ValueError, match="one character"):
        fonts.char_key("AB")


def test_place_ink_fits_the_box_keeping_aspect_and_centres_the_mass():
    bar = np.full((60, 15), 255, np.uint8)  # a tall bar: height becomes the box side, width a quarter of it
    out = fonts.place_ink(bar, size=28)
    rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
    assert rows[-1] - rows[0] + 1 == fonts.default_box(28) == 20
    assert cols[-1] - cols[0] + 1 == 5
    weights = out.astype(float)
    cy = (weights.sum(1) * np.arange(28)).sum() / weights.sum() + 0.5
    cx = (weights.sum(0) * np.arange(28)).sum() / weights.sum() + 0.5
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_place_ink_keeps_a_lopsided_glyph_inside_the_image():
    ink = np.zeros((40, 40), np.uint8)
    ink[:, :4] = 255  # a left bar with a faint foot: the mass sits far left
    ink[-2:, :] = 40
    out = fonts.place_ink(ink, size=28, shift=(-10.0, 0.0))
    assert out.shape == (28, 28)
    assert int(out.sum()) >= int(0.9 * fonts.place_ink(ink, size=28).sum())  # nothing cut off
    with pytest.raises(ValueError, match="size"):
        fonts.place_ink(ink, size=0)


def test_transform_ink_rotates_a_horizontal_bar_upright():
    bar = np.full((6, 40), 255, np.uint8)
    upright = fonts.transform_ink(bar, angle=90.0)
    assert upright.shape[0] > 5 * upright.shape[1]
    assert fonts.transform_ink(bar) is bar
    slanted = fonts.transform_ink(np.full((40, 6), 255, np.uint8), shear=0.5)
    assert slanted.shape[1] >= 6 + 0.5 * 40 - 2
    top, bottom = (np.flatnonzero(slanted[row] > 127).mean() for row in (2, -3))
    assert top > bottom + 10  # positive shear slants like an italic: the top moves right


def test_font_files_finds_nothing_in_an_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not a font")
    assert fonts.font_files([tmp_path, tmp_path / "missing"]) == []


# --------------------------------------------------------------------------------------------- installed fonts
@pytest.mark.debian
def test_discovered_face_reads_family_style_and_coverage(dejavu):
    assert dejavu.family == "DejaVu Sans" and dejavu.style == "Book" and dejavu.index == 0
    assert dejavu.weight == 400 and dejavu.width == 5 and not dejavu.italic
    assert dejavu.covers("AZaz09ΩЖ") and not dejavu.covers("\u0905")  # no Devanagari in DejaVu Sans
    folder = str(Path(DEJAVU).parent)
    family = fonts.group_families(fonts.discover_fonts(files=fonts.font_files([folder])))["DejaVu Sans"]
    assert len(family) > 4 and family[0] == dejavu == fonts.regular_face(family[::-1])
    assert any(f.italic and "Oblique" in f.style for f in family) and any(f.weight == 700 for f in family)


@pytest.mark.debian
def test_render_glyph_draws_distinct_letters_and_knows_the_notdef_box(dejavu):
    font = fonts.load_font(dejavu, px=80)
    a, b = fonts.render_glyph(font, "A"), fonts.render_glyph(font, "B")
    assert a.dtype == np.uint8 and a.shape == (28, 28) and a.max() > 200 and a[0].max() == 0 == a[:, 0].max()
    assert not np.array_equal(a, b)
    assert fonts.render_glyph(font, " ") is None  # no ink
    notdef = fonts.notdef_ink(font)
    assert notdef is not None and not np.array_equal(fonts.render_ink(font, "A"), notdef)
    # a character DejaVu lacks draws the .notdef box: exactly what the domains compare against
    assert np.array_equal(fonts.render_ink(font, "\u0905"), notdef)


# --------------------------------------------------------------------------------------------- font-glyphs
@pytest.mark.debian
@pytest.mark.skipif(_PROBLEM is not None, reason=f"installed fonts needed: {_PROBLEM}")
class TestFontGlyphs:
    def test_format(self, glyphs):
        assert glyphs.images.dtype == torch.uint8 and glyphs.images.shape[1:] == (1, 28, 28)
        assert glyphs.labels.dtype == torch.int64 and len(glyphs.labels) == len(glyphs.images)
        assert all(k == f"U+{ord(n):04X}" for k, n in zip(glyphs.class_keys, glyphs.class_names, strict=True))
        assert len(glyphs.groups["alphabet"]) == glyphs.num_classes
        assert len(glyphs.instances["font"]) == len(glyphs)
        assert glyphs.metadata["source"] and glyphs.metadata["license"] and glyphs.metadata["description"]

    def test_at_least_22_scripts_each_with_five_distinct_families(self, glyphs):
        families = defaultdict(set)
        for label, family in zip(glyphs.labels.tolist(), glyphs.instances["font"], strict=True):
            families[glyphs.groups["alphabet"][label]].add(family)
        rich = {script for script, members in families.items() if len(members) >= 5}
        assert len(rich) >= 22, sorted(rich)
        assert set(LISTED_SCRIPTS) <= rich, sorted(set(LISTED_SCRIPTS) - rich)
        assert int(glyphs.class_counts().min()) >= 5
        per_script = defaultdict(int)
        for script in glyphs.groups["alphabet"]:
            per_script[script] += 1
        assert min(per_script.values()) >= 5 and max(per_script.values()) <= 50

    def test_classes_are_base_letters(self, glyphs):
        import unicodedata

        for name, script in zip(glyphs.class_names, glyphs.groups["alphabet"], strict=True):
            assert unicodedata.category(name) in {"Lu", "Lo", "Ll"}, name
            assert "SMALL" not in unicodedata.name(name).split(), name  # one case only, no small kana
        latin = [n for n, s in zip(glyphs.class_names, glyphs.groups["alphabet"], strict=True) if s == "Latn"]
        assert latin == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

    def test_glyphs_have_ink_and_differ_within_each_family_and_script(self, glyphs):
        images = glyphs.images[:, 0]
        assert bool((images.flatten(1).amax(1) > 128).all())
        seen: dict[tuple[str, str, bytes], int] = {}
        for i, (label, family) in enumerate(zip(glyphs.labels.tolist(), glyphs.instances["font"], strict=True)):
            key = (family, glyphs.groups["alphabet"][label], images[i].numpy().tobytes())
            assert key not in seen, f"{family} draws {glyphs.class_names[seen.get(key, 0)]} and {label} alike"
            seen[key] = label
        # within a class, no two families' drawings are identical (distinct_designs)
        pairs = {(lbl, images[i].numpy().tobytes()) for i, lbl in enumerate(glyphs.labels.tolist())}
        assert len(pairs) == len(glyphs)

    def test_no_glyph_is_its_fonts_notdef_box(self, glyphs):
        families = fonts.group_families(fonts.discover_fonts())
        faces = {name: fonts.regular_face(members) for name, members in families.items()}
        images = glyphs.images[:, 0].numpy()
        by_family = defaultdict(list)
        for i, family in enumerate(glyphs.instances["font"]):
            by_family[family].append(i)
        checked = 0
        for family, rows in by_family.items():
            font = fonts.load_font(faces[family], px=80)
            notdef = fonts.notdef_ink(font)
            if notdef is None:
                continue
            box = fonts.place_ink(notdef, size=28)
            assert not any(np.array_equal(images[i], box) for i in rows), family
            checked += 1
        assert checked > 100

    def test_glyphs_are_centred_by_mass(self, glyphs):
        weights = glyphs.images[:, 0].double()
        total = weights.sum((1, 2))
        cy = (weights.sum(2) * torch.arange(28)).sum(1) / total + 0.5
        cx = (weights.sum(1) * torch.arange(28)).sum(1) / total + 0.5
        assert float((cy - 14).abs().max()) <= 1.0 and float((cx - 14).abs().max()) <= 1.0

    def test_fingerprint_lists_every_font_file_used(self, glyphs):
        listed = set(DOMAINS.get("font-glyphs").fingerprint_files())
        assert glyphs.metadata["font_files"] and set(glyphs.metadata["font_files"]) <= listed

    def test_subset_build_matches_the_full_domain(self, glyphs):
        small = build_font_glyphs(scripts="armn, Greek", size=28)
        assert sorted(set(small.groups["alphabet"])) == ["Armn", "Grek"]
        keep = [c for c, s in enumerate(glyphs.groups["alphabet"]) if s in {"Armn", "Grek"}]
        full = glyphs.select_classes(keep)
        assert full.class_keys == small.class_keys and full.instances == small.instances
        assert torch.equal(full.images, small.images)

    def test_size_and_cap_options(self):
        domain = build_font_glyphs(scripts=["Grek"], size=32, max_chars_per_script=5)
        assert domain.images.shape[1:] == (1, 32, 32)
        assert domain.class_names == list("ΑΒΓΔΕ")

    def test_repeated_designs_count_when_asked(self):
        with pytest.raises(MissingDependencyError, match="Sinh .*distinct_designs=False"):
            build_font_glyphs(scripts=["Sinh"])
        domain = build_font_glyphs(scripts=["Sinh", "Tfng"], distinct_designs=False)
        assert sorted(set(domain.groups["alphabet"])) == ["Sinh", "Tfng"]
        assert int(domain.class_counts().min()) >= 5

    def test_unknown_script_lists_the_available_ones(self):
        with pytest.raises(UnknownNameError, match=r"unknown script 'Qwerty'.*Latn \(Latin\)"):
            build_font_glyphs(scripts=["Qwerty"])

    def test_script_without_enough_families_says_what_to_install(self):
        with pytest.raises(MissingDependencyError, match=r"Latn \(Latin\).*apt-get install"):
            build_font_glyphs(scripts=["Latn"], min_families=10_000)


def test_options_are_validated_before_any_font_is_read():
    with pytest.raises(ValueError, match="size must be an integer"):
        build_font_glyphs(size=4)
    with pytest.raises(ValueError, match="min_families"):
        build_font_glyphs(min_families=0)
    with pytest.raises(ValueError, match="max_chars_per_script"):
        build_font_glyphs(max_chars_per_script="10")
    with pytest.raises(ValueError, match="distinct_designs"):
        build_font_glyphs(distinct_designs="yes")


def test_resolve_scripts_accepts_codes_names_and_comma_lists():
    assert resolve_scripts(None, ["Latn"]) is None
    assert resolve_scripts("latn, Greek,Cyrl", ["Latn"]) == ["Latn", "Grek", "Cyrl"]
    assert resolve_scripts(["Old_Italic"], []) == ["Ital"]
    with pytest.raises(UnknownNameError, match="Latn"):
        resolve_scripts(["Zyyy"], ["Latn"])  # "Common" is not an alphabet
    with pytest.raises(ValueError, match="non-empty"):
        resolve_scripts([], ["Latn"])


def test_script_letters_pick_one_case_and_no_precomposed_letters():
    assert [chr(c) for c in script_letters("Latn")] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    cyrillic = [chr(c) for c in script_letters("Cyrl")]
    assert "Й" not in cyrillic and "И" in cyrillic and len(cyrillic) == 31  # Й is И + breve
    katakana = [chr(c) for c in script_letters("Kana")]
    assert "ア" in katakana and "ァ" not in katakana and "ガ" not in katakana
    assert [chr(c) for c in script_letters("Hani")[:4]] == ["一", "丨", "丶", "丿"]  # Kangxi radicals
    coptic = [chr(c) for c in script_letters("Copt", range(0x2C80, 0x2CB2))]
    assert coptic and all(c.isupper() for c in coptic)  # generic rule: capitals only
    assert set(CORE_LETTER_RANGES) >= set(LISTED_SCRIPTS) | {"Sinh", "Tfng"}


def test_missing_fonts_raise_missing_dependency_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "FONT_ROOTS", (str(tmp_path),))
    with pytest.raises(MissingDependencyError, match="no fonts found.*apt-get install fonts-noto-core"):
        build_font_glyphs()
    from metaxfer.data import system

    monkeypatch.setattr(system, "debian_package_present", lambda package: False)
    with pytest.raises(MissingDependencyError, match="font-glyphs.*fonts-noto-core.*apt-get install"):
        create_domain("font-glyphs")

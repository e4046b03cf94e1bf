"""The ``digits-printed`` and ``digits-handwriting`` domains rendered from installed fonts."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from metaxfer.data.domain import DOMAINS, Domain, create_domain
from metaxfer.data.sources import digits_fonts, fonts
from metaxfer.data.sources.digits_fonts import (
    HANDWRITING_FAMILIES,
    DigitJitter,
    build_digits_handwriting,
    build_digits_printed,
    handwriting_faces,
    render_digit_faces,
)
from metaxfer.errors import MissingDependencyError

pytest.importorskip("fontTools", reason="the font domains read fonts with fontTools: pip install fonttools")

KEYS = [f"digit-{d}" for d in range(10)]
_PRINTED = DOMAINS.get("digits-printed").check()
_HANDWRITING = DOMAINS.get("digits-handwriting").check()
needs_printed = pytest.mark.skipif(_PRINTED is not None, reason=f"printed fonts needed: {_PRINTED}")
needs_handwriting = pytest.mark.skipif(_HANDWRITING is not None, reason=f"handwriting fonts needed: {_HANDWRITING}")


@pytest.fixture(scope="module")
def printed() -> Domain:
    return create_domain("digits-printed")


@pytest.fixture(scope="module")
def handwriting() -> Domain:
    return create_domain("digits-handwriting")


def _faces(domain: Domain) -> dict[tuple[str, str], list[int]]:
    rows: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(domain.instances["font"], domain.instances["style"], strict=True)):
        rows[key].append(i)
    return rows


def _check_format(domain: Domain, *, variations: int) -> None:
    assert domain.images.dtype == torch.uint8 and domain.images.shape[1:] == (1, 28, 28)
    assert domain.labels.dtype == torch.int64
    assert domain.class_names == [str(d) for d in range(10)] and domain.class_keys == KEYS
    counts = domain.class_counts()
    assert int(counts.min()) == int(counts.max()) > 0  # every face draws every digit the same number of times
    for rows in _faces(domain).values():
        assert len(rows) % (10 * variations) == 0
    assert bool((domain.images.flatten(1).amax(1) == 255).all())  # every image has full ink


def _clean(domain: Domain, *, variations: int) -> dict[tuple[str, str], np.ndarray]:
    """Each face's unjittered digits (10, 28, 28): the first ten images of each (face, variation 0) block."""
    images = domain.images[:, 0].numpy()
    out = {}
    for key, rows in _faces(domain).items():
        first = rows[:10]  # variation 0 of the face's first file
        assert domain.labels[first].tolist() == list(range(10))
        out[key] = images[first]
    return out


@pytest.mark.debian
@needs_printed
class TestDigitsPrinted:
    def test_format_and_keys(self, printed):
        _check_format(printed, variations=2)
        assert printed.metadata["source"] and printed.metadata["license"] and printed.metadata["description"]

    def test_many_families_no_handwriting(self, printed):
        families = set(printed.instances["font"])
        assert len(families) >= 50
        assert not families & HANDWRITING_FAMILIES
        assert not families & {f.family for f in handwriting_faces()}
        assert {"DejaVu Sans", "DejaVu Serif"} <= families
        styles = Counter(printed.instances["style"])
        assert len(styles) > 5  # weights and slants besides Regular

    def test_digits_differ_between_fonts_and_within_a_font(self, printed):
        clean = _clean(printed, variations=2)
        for digit in range(10):
            drawings = {faces[digit].tobytes() for faces in clean.values()}
            assert len(drawings) >= 0.9 * len(clean), digit
        signatures = {faces.tobytes() for faces in clean.values()}
        assert len(signatures) == len(clean)  # no face duplicates another one's design
        for key, faces in clean.items():
            assert len({d.tobytes() for d in faces}) == 10, key

    def test_jittered_copies_differ_from_the_clean_ones(self, printed):
        images = printed.images[:, 0].numpy()
        key, rows = next(iter(_faces(printed).items()))
        clean, jittered = images[rows[:10]], images[rows[10:20]]
        assert printed.labels[rows[10:20]].tolist() == list(range(10))
        assert all(not np.array_equal(a, b) for a, b in zip(clean, jittered, strict=True)), key

    def test_fingerprint_lists_every_font_file_used(self, printed):
        listed = set(DOMAINS.get("digits-printed").fingerprint_files())
        assert set(printed.metadata["font_files"]) <= listed


@pytest.mark.debian
@needs_handwriting
class TestDigitsHandwriting:
    def test_format_keys_and_fonts(self, handwriting):
        _check_format(handwriting, variations=20)
        faces = _faces(handwriting)
        assert len(faces) >= 12  # 17 files, less duplicates (the two Breip files draw the same digits)
        assert {"Humor Sans", "Rufscript", "DkgHandwriting"} <= set(handwriting.instances["font"])
        assert handwriting.metadata["font_files"]
        assert set(handwriting.metadata["font_files"]) <= set(DOMAINS.get("digits-handwriting").fingerprint_files())

    def test_digits_differ_between_fonts(self, handwriting):
        clean = _clean(handwriting, variations=20)
        for digit in range(10):
            assert len({faces[digit].tobytes() for faces in clean.values()}) == len(clean)

    def test_variations_are_distinct_and_seeded(self, handwriting):
        images = handwriting.images[:, 0].numpy()
        rows = next(iter(_faces(handwriting).values()))
        fives = [images[i] for i in rows if int(handwriting.labels[i]) == 5]
        assert len(fives) == 20 and len({f.tobytes() for f in fives}) == 20
        again = build_digits_handwriting(variations=3)
        other = build_digits_handwriting(variations=3, seed=1)
        assert len(again) == 3 * len(handwriting) // 20
        first = [i for i, f in enumerate(again.instances["font"]) if f == handwriting.instances["font"][rows[0]]]
        assert torch.equal(again.images[first[:30]], handwriting.images[rows[:30]])  # same seed, same images
        assert torch.equal(other.images[:10], again.images[:10])  # the unjittered copy ignores the seed
        assert not torch.equal(other.images[10:30], again.images[10:30])

    def test_size_option(self):
        small = build_digits_handwriting(size=16, variations=1)
        assert small.images.shape[1:] == (1, 16, 16) and len(small) == 10 * len(_faces(small))


def test_jitter_draws_stay_in_their_ranges():
    jitter = DigitJitter(max_angle=5.0, max_shear=0.1, min_scale=0.9, max_shift=0.1)
    rng = np.random.default_rng(0)
    for _ in range(200):
        angle, shear, scale, (dx, dy) = jitter.sample(rng, size=28)
        assert abs(angle) <= 5 and abs(shear) <= 0.1 and 0.9 <= scale <= 1.0 and abs(dx) <= 2.8 and abs(dy) <= 2.8


def test_options_are_validated():
    with pytest.raises(ValueError, match="variations must be an integer"):
        build_digits_handwriting(variations=0)
    with pytest.raises(ValueError, match="size must be an integer"):
        build_digits_printed(size=2)
    with pytest.raises(ValueError, match="seed"):
        build_digits_printed(seed=-1)
    with pytest.raises(ValueError, match="max_styles"):
        build_digits_printed(max_styles=0)


def test_render_digit_faces_skips_faces_without_digits(tmp_path):
    letters = frozenset(range(ord("A"), ord("Z") + 1))
    fake = fonts.FontFace(str(tmp_path / "none.ttf"), 0, "Letters Only", "Regular", 400, 5, False, letters)
    images, labels, owners = render_digit_faces([fake], size=28, variations=2, seed=0)
    assert images.shape == (0, 28, 28) and labels.shape == (0,) and owners == []


def test_missing_fonts_raise_missing_dependency_with_install_hint(monkeypatch):
    monkeypatch.setattr(digits_fonts.fonts, "debian_package_font_files", lambda package: [])
    with pytest.raises(MissingDependencyError, match="digits-handwriting.*apt-get install fonts-bwht"):
        build_digits_handwriting()
    monkeypatch.setattr(digits_fonts, "printed_faces", lambda **_: [])
    with pytest.raises(MissingDependencyError, match="digits-printed.*apt-get install fonts-dejavu-core"):
        build_digits_printed()
    from metaxfer.data import system

    monkeypatch.setattr(system, "debian_package_present", lambda package: False)
    with pytest.raises(MissingDependencyError, match="digits-handwriting.*fonts-sjfonts.*apt-get install"):
        create_domain("digits-handwriting")

"""The ``hershey`` domain: Hershey stroke fonts drawn with Pillow."""

from __future__ import annotations

import importlib.util
import string
from collections import Counter

import numpy as np
import pytest
import torch

from metaxfer.data.domain import create_domain
from metaxfer.data.sources.hershey import FONT_CHARSETS, build_hershey, draw_strokes, hershey_strokes
from metaxfer.errors import MissingDependencyError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("HersheyFonts") is None, reason="pip install Hershey-Fonts"
)


@pytest.fixture(scope="module")
def hershey():
    return create_domain("hershey")


def _font(name: str):
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    font.load_default_font(name)
    return font


def test_format_keys_and_groups(hershey):
    assert hershey.images.dtype == torch.uint8 and hershey.images.shape[1:] == (1, 28, 28)
    assert hershey.labels.dtype == torch.int64
    expected = list(string.digits) + list(string.ascii_uppercase) + list("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ")
    assert hershey.class_names == expected
    assert hershey.class_keys[:11] == [f"digit-{d}" for d in range(10)] + ["U+0041"]
    assert hershey.class_keys[-1] == "U+03A9"
    assert Counter(hershey.groups["alphabet"]) == {"Zyyy": 10, "Latn": 26, "Grek": 24}
    assert len(hershey.instances["font"]) == len(hershey)
    assert hershey.metadata["source"] and hershey.metadata["license"] and hershey.metadata["description"]


def test_every_class_has_distinct_drawings_from_several_fonts(hershey):
    counts = hershey.class_counts()
    assert int(counts.min()) >= 2
    assert int(counts[hershey.class_names.index("A")]) >= 10  # Futura, Roman, Times, Script, Gothic styles
    images = hershey.images[:, 0].numpy()
    for label in range(hershey.num_classes):
        rows = (hershey.labels == label).nonzero().flatten().tolist()
        assert len({images[i].tobytes() for i in rows}) == len(rows)
        fonts_of_class = [hershey.instances["font"][i] for i in rows]
        assert len(set(fonts_of_class)) == len(rows)


def test_strokes_are_drawn_centred_with_full_ink(hershey):
    images = hershey.images[:, 0]
    assert bool((images.flatten(1).amax(1) == 255).all())
    ink = (images > 127).flatten(1).sum(1)
    assert int(ink.min()) >= 20  # strokes, not dots
    weights = images.double()
    total = weights.sum((1, 2))
    cy = (weights.sum(2) * torch.arange(28)).sum(1) / total + 0.5
    assert float((cy - 14).abs().max()) <= 1.0


def test_draw_strokes_honours_the_pen_width():
    bar = [[(0.0, 0.0), (0.0, 20.0)]]  # a vertical line
    for width in (1, 2, 3):
        image = draw_strokes(bar, size=56, stroke_width=width)
        middle = image[28]
        assert width - 1 <= int((middle > 127).sum()) <= width + 1
    assert draw_strokes([], size=28, stroke_width=2) is None


def test_layout_tables_agree_between_fonts_sharing_drawings():
    """greek and greeks (simplex) and timesg and greekc (complex) have different layouts but the same drawings, as
    do cyrillic and cyrilc_1: the tables must send each letter to the same strokes."""
    for first, second in (("greek", "greeks"), ("timesg", "greekc"), ("cyrillic", "cyrilc_1")):
        left, right = _font(first), _font(second)
        where = {char: pos for pos, char in FONT_CHARSETS[second].items()}
        shared = [(pos, char) for pos, char in FONT_CHARSETS[first].items() if char in where and not char.isdigit()]
        assert len(shared) >= 20
        for pos, char in shared:
            assert hershey_strokes(left, pos) == hershey_strokes(right, where[char]), (first, char)


def test_min_fonts_one_adds_the_single_cyrillic_design_and_stroke_width_thickens():
    everything = build_hershey(min_fonts=1)
    cyrillic = [c for c, a in zip(everything.class_names, everything.groups["alphabet"], strict=True) if a == "Cyrl"]
    assert len(cyrillic) == 32 and "Ж" in cyrillic and "Я" in cyrillic
    thin, thick = build_hershey(stroke_width=1), build_hershey(stroke_width=3)
    assert thin.class_keys == thick.class_keys
    assert float((thick.images > 127).float().mean()) > 1.5 * float((thin.images > 127).float().mean())


def test_options_are_validated():
    with pytest.raises(ValueError, match="size"):
        build_hershey(size=3)
    with pytest.raises(ValueError, match="stroke_width"):
        build_hershey(stroke_width=0)
    with pytest.raises(ValueError, match="min_fonts"):
        build_hershey(min_fonts=0)


def test_size_option():
    small = build_hershey(size=16)
    assert small.images.shape[1:] == (1, 16, 16) and np.isin(["A", "Ω", "7"], small.class_names).all()


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "HersheyFonts" else real(name, *args)
    )
    with pytest.raises(MissingDependencyError, match="HersheyFonts.*pip install Hershey-Fonts"):
        create_domain("hershey")

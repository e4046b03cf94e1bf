"""Pairs of descriptions and images from a domain's metadata (emoji names per language, Unicode names of glyphs),
ambiguous descriptions left out, and class/language splits that never leak."""

from __future__ import annotations

import pytest
import torch

from metaxfer.crossmodal.pairs import PairSplit, default_group, pairs_from_domain, split_classes
from metaxfer.data.domain import Domain
from metaxfer.errors import DataFormatError, MetaxferError, UnknownNameError


def _emoji_like(n_per_group: int = 10) -> Domain:
    groups = ["animal-mammal", "animal-bird", "food-fruit"]
    names_en, names_de, names_ja, subcats = [], [], [], []
    for g in groups:
        for i in range(n_per_group):
            names_en.append(f"{g} thing {i}")
            names_de.append(f"{g} Ding {i}")
            names_ja.append(f"{g}もの{i}")
            subcats.append(g)
    names_ja[1] = names_ja[0]  # two classes share a Japanese name: it tells them apart in no way
    n = len(names_en)
    return Domain("emoji-like", torch.zeros(n, 3, 16, 16, dtype=torch.uint8), torch.arange(n), names_en,
                  class_keys=[f"k{i}" for i in range(n)], groups={"subcategory": subcats},
                  metadata={"names": {"en": names_en, "de": names_de, "ja": names_ja}})


def test_emoji_names_pair_with_their_class_and_ambiguous_ones_are_dropped():
    pairs = pairs_from_domain(_emoji_like())
    assert pairs.languages == ("en", "de", "ja")
    assert pairs.texts_of(2) == ["animal-mammal thing 2", "animal-mammal ding 2", "animal-mammalもの2"]
    assert pairs.texts_of(0, ["ja"]) == [] and pairs.texts_of(1, ["ja"]) == []
    assert ("ja", "animal-mammalもの0") in pairs.dropped
    assert len(pairs.texts) == 3 * 30 - 2
    assert pairs.find("ANIMAL-BIRD Thing 3") == [(13, "en")]
    assert pairs.image_indices([4]) == [4]
    only_de = pairs_from_domain(_emoji_like(), languages=["de"])
    assert only_de.languages == ("de",)
    with pytest.raises(UnknownNameError, match="its languages are: en, de, ja"):
        pairs_from_domain(_emoji_like(), languages=["xx"])


def test_glyph_unicode_names_and_several_images_per_class():
    images = torch.zeros(6, 1, 16, 16, dtype=torch.uint8)
    d = Domain("font-glyphs", images, torch.tensor([0, 0, 1, 1, 2, 2]), ["A", "Β", "Ж"],
               class_keys=["U+0041", "U+0392", "U+0416"], groups={"alphabet": ["Latn", "Grek", "Cyrl"]},
               instances={"font": ["f1", "f2"] * 3},
               metadata={"unicode_name": {"en": ["LATIN CAPITAL LETTER A", "GREEK CAPITAL LETTER BETA",
                                                 "CYRILLIC CAPITAL LETTER ZHE"]}})
    pairs = pairs_from_domain(d)
    assert pairs.texts == ["latin capital letter a", "greek capital letter beta", "cyrillic capital letter zhe"]
    assert pairs.images_per_class().tolist() == [2, 2, 2]
    assert default_group(d.groups) == "alphabet"
    bare = Domain("plain", images, torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
    with pytest.raises(DataFormatError, match="has no class descriptions"):
        pairs_from_domain(bare)


def test_class_split_is_stratified_disjoint_and_reproducible():
    pairs = pairs_from_domain(_emoji_like(20))
    split = split_classes(pairs, val_fraction=0.1, test_fraction=0.2, group="subcategory",
                          heldout_languages=["ja"], seed=3)
    assert not (set(split.train) & set(split.test)) and not (set(split.val) & set(split.test))
    assert len(split.test) == 3 * 4 and len(split.val) == 3 * 2  # per group of 20: 4 test, 2 val
    seen_groups = {pairs.groups["subcategory"][c] for c in split.train}
    assert {pairs.groups["subcategory"][c] for c in split.test} <= seen_groups
    assert split.train_languages == ("en", "de") and split.heldout_languages == ("ja",)
    again = split_classes(pairs, val_fraction=0.1, test_fraction=0.2, group="subcategory",
                          heldout_languages=["ja"], seed=3)
    assert again == split and again.fingerprint(pairs.class_keys) == split.fingerprint(pairs.class_keys)
    other = split_classes(pairs, val_fraction=0.1, test_fraction=0.2, group="subcategory", seed=4)
    assert other.test != split.test
    with pytest.raises(UnknownNameError, match="valid groups: subcategory"):
        split_classes(pairs, group="colour")
    with pytest.raises(UnknownNameError, match="not among"):
        split_classes(pairs, heldout_languages=["fr"])
    with pytest.raises(ValueError, match="sum"):
        split_classes(pairs, val_fraction=0.5, test_fraction=0.5)


def test_a_leaking_split_is_refused():
    with pytest.raises(MetaxferError, match="leaks"):
        PairSplit(train=(0, 1), val=(2,), test=(1,), train_languages=("en",))
    with pytest.raises(MetaxferError, match="language split leaks"):
        PairSplit(train=(0, 1), val=(), test=(2,), train_languages=("en", "de"), heldout_languages=("de",))

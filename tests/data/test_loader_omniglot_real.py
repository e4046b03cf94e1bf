"""Omniglot loaders on the real files in the shared data folder (read in place, never copied)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from metaxfer.data.domain import Domain, create_domain
from metaxfer.data.loaders import load_omniglot, load_omniglot_small1, load_omniglot_small2
from metaxfer.data.loaders.omniglot import BACKGROUND_ALPHABETS, read_omniglot_layout, read_omniglot_npz

SHARED = Path("/work/shared/data/omniglot")
NPZ = SHARED / "images_background.npz"
pytestmark = pytest.mark.skipif(not NPZ.is_file(), reason=f"the shared Omniglot files are not in {SHARED}")


@pytest.fixture(scope="module")
def npz_105() -> Domain:
    return read_omniglot_npz(NPZ, size=105)


@pytest.fixture(scope="module")
def npz_28() -> Domain:
    return read_omniglot_npz(NPZ, size=28)


def test_npz_alphabets_follow_the_readme_table(npz_105: Domain) -> None:
    alphabets = npz_105.groups["alphabet"]
    assert npz_105.num_classes == 964 and len(npz_105) == 964 * 20
    assert set(alphabets[0:26]) == {"Arcadian"} and alphabets[26] == "Armenian"
    assert set(alphabets[250:272]) == {"Early_Aramaic"} and alphabets[272] == "Syriac_(Estrangelo)"
    assert set(alphabets[682:708]) == {"Latin"} and set(alphabets[909:964]) == {"Tifinagh"}
    assert [alphabets.count(a) for a, _ in BACKGROUND_ALPHABETS] == [n for _, n in BACKGROUND_ALPHABETS]
    assert npz_105.instances["drawer"][:20] == [f"{d:02d}" for d in range(1, 21)]
    # ink bright on dark: far fewer bright pixels than dark ones
    assert 0.02 < npz_105.images.float().mean().item() / 255 < 0.15


def test_small_zips_in_the_official_layout() -> None:
    small1 = load_omniglot_small1(SHARED, size=28)
    assert small1.num_classes == 136 and len(small1) == 2720 and small1.images.shape[1:] == (1, 28, 28)
    assert sorted(set(small1.groups["alphabet"])) == ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]
    small2 = load_omniglot_small2(SHARED, size=28)
    assert small2.num_classes == 156
    assert sorted(set(small2.groups["alphabet"])) == ["Greek", "Japanese_(katakana)", "Latin", "Sanskrit", "Tagalog"]
    assert small1.class_counts().tolist() == [20] * 136


@pytest.mark.parametrize("size", [105, 28])
def test_small1_zip_and_npz_agree(npz_105: Domain, npz_28: Domain, size: int) -> None:
    small = read_omniglot_layout(SHARED / "images_background_small1.zip", size=size)
    full = npz_105 if size == 105 else npz_28
    where = {key: k for k, key in enumerate(full.class_keys)}
    for c in (0, 30, 60, 100, 135):  # characters of different alphabets
        k = where[small.class_keys[c]]
        assert small.groups["alphabet"][c] == full.groups["alphabet"][k]
        assert torch.equal(small.images[small.labels == c], full.images[full.labels == k])


def test_default_domain_loads_fast_and_matches_the_npz(npz_28: Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAXFER_OMNIGLOT", str(SHARED))
    start = time.perf_counter()
    domain = create_domain("omniglot-background", cache=False)
    assert time.perf_counter() - start < 20
    assert domain.images.shape == (19280, 1, 28, 28) and domain.class_keys == npz_28.class_keys
    assert torch.equal(domain.images, npz_28.images)
    via_folder = load_omniglot(SHARED, size=28)  # no unpacked folder or zip of the full set: the npz
    assert torch.equal(via_folder.images, domain.images)

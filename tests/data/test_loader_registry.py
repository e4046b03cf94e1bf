"""Every on-disk dataset domain: registered with a root option, clear errors without data, built once from a fixture."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures_formats import (
    write_cub,
    write_image_folder,
    write_mini_imagenet,
    write_mnist,
    write_mnist_m,
    write_omniglot_set,
    write_svhn,
    write_usps_libsvm,
)

from metaxfer.data.domain import DOMAINS, create_domain, list_domains
from metaxfer.errors import DataNotFoundError

# name -> (writes a fixture into a folder, extra build options)
FIXTURES: dict[str, tuple[Callable[[Path], Any], dict[str, Any]]] = {
    "mnist": (write_mnist, {}),
    "kmnist": (write_mnist, {"split": "test"}),
    "usps": (write_usps_libsvm, {}),
    "mnist-m": (lambda p: write_mnist_m(p, sizes={"train": 2}), {}),
    "svhn": (lambda p: write_svhn(p / "train_32x32.mat", n=2), {}),
    "omniglot": (lambda p: write_omniglot_set(p / "images_evaluation.zip", {"Aurek": [965]}), {"background": False}),
    "omniglot-small1": (lambda p: write_omniglot_set(p / "images_background_small1.zip", {"Greek": [394]}), {}),
    "omniglot-small2": (lambda p: write_omniglot_set(p / "images_background_small2.zip", {"Latin": [683]}), {}),
    "mini-imagenet": (write_mini_imagenet, {"size": 8}),
    "cub": (write_cub, {"size": 8, "crop": True}),
    "image-folder": (lambda p: write_image_folder(p, {"x": 1, "y": 2}), {}),
}
ROOT_DOMAINS = sorted(FIXTURES)


def test_every_root_domain_has_a_fixture_here() -> None:
    loaders = {
        s.name for s in list_domains() if s.needs_root and s.build.__module__.startswith("metaxfer.data.loaders")
    }
    assert loaders == set(FIXTURES)


@pytest.mark.parametrize("name", ROOT_DOMAINS)
def test_spec_takes_a_root_and_lists_its_files(name: str) -> None:
    spec = DOMAINS.get(name)
    assert spec.needs_root and not spec.default and spec.fingerprint_files is not None
    assert spec.description and spec.license and spec.source == "user path (root=)"


@pytest.mark.parametrize("name", ROOT_DOMAINS)
def test_missing_root_says_what_to_pass(name: str, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="pass root=PATH"):
        create_domain(name)
    missing = tmp_path / "not-there"
    with pytest.raises(DataNotFoundError, match=f"{missing}.*does not exist"):
        create_domain(name, root=str(missing))


@pytest.mark.parametrize("name", ROOT_DOMAINS)
def test_built_once_from_a_fixture(name: str, tmp_path: Path) -> None:
    write, options = FIXTURES[name]
    write(tmp_path)
    files = DOMAINS.get(name).fingerprint_files(root=str(tmp_path), **options)
    assert files and all(Path(f).is_file() for f in files)
    domain = create_domain(name, root=str(tmp_path), **options)
    assert len(domain) > 0 and domain.name == name
    assert {"source", "license", "description"} <= set(domain.metadata)
    json.dumps(domain.metadata)
    cached = create_domain(name, root=str(tmp_path), **options)
    assert cached.class_keys == domain.class_keys and bool((cached.images == domain.images).all())

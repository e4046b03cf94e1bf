"""CUB-200-2011 in its own layout (tables + images/<class>/<file>.jpg)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_formats import write_cub

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_cub
from metaxfer.errors import DataFormatError, DataNotFoundError


def _red_fraction(images) -> float:
    red = (images[:, 0].int() > 180) & (images[:, 2].int() < 80)
    return red.float().mean().item()


def test_splits_labels_and_names(tmp_path: Path) -> None:
    rows = write_cub(tmp_path)
    train = load_cub(tmp_path, size=8)
    test = load_cub(tmp_path, split="test", size=8)
    every = load_cub(tmp_path / "CUB_200_2011", split="all", size=8)  # the folder itself works too
    assert train.labels.tolist() == [r["class"] for r in rows if r["train"]]
    assert test.labels.tolist() == [0, 1, 2] and len(every) == len(rows) == len(train) + len(test)
    assert train.instances["image_id"] == [str(r["id"]) for r in rows if r["train"]]
    assert train.class_names == ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross"]
    assert train.class_keys[0] == "cub:001.Black_footed_Albatross"
    assert train.images.shape == (6, 3, 8, 8) and load_cub(tmp_path, split="test").images.shape[2:] == (84, 84)


def test_crop_to_bounding_boxes(tmp_path: Path) -> None:
    write_cub(tmp_path)
    whole = load_cub(tmp_path, split="all", size=16)
    cropped = load_cub(tmp_path, split="all", size=16, crop=True)
    assert _red_fraction(cropped.images) > 0.9  # the box is red, the rest blue
    assert _red_fraction(whole.images) < 0.4


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"CUB_200_2011/images.txt.*vision.caltech.edu"):
        load_cub(tmp_path)
    write_cub(tmp_path)
    folder = tmp_path / "CUB_200_2011"
    (folder / "bounding_boxes.txt").unlink()
    with pytest.raises(DataNotFoundError, match="'bounding_boxes.txt'"):
        load_cub(tmp_path, crop=True)
    labels = (folder / "image_class_labels.txt").read_text().splitlines()
    (folder / "image_class_labels.txt").write_text("\n".join(labels[1:]))
    with pytest.raises(DataFormatError, match="image_class_labels.txt: its image ids do not match images.txt"):
        load_cub(tmp_path)
    (folder / "image_class_labels.txt").write_text("\n".join([*labels[:-1], labels[-1].split()[0] + " 9"]))
    with pytest.raises(DataFormatError, match=r"class ids must lie in 1-3"):
        load_cub(tmp_path)
    (folder / "image_class_labels.txt").write_text("\n".join(labels))
    split = (folder / "train_test_split.txt").read_text()
    (folder / "train_test_split.txt").write_text(split.replace(" 1\n", " yes\n", 1))
    with pytest.raises(DataFormatError, match=r"train_test_split.txt: column 2 must hold numbers"):
        load_cub(tmp_path)


def test_registered_domain_lists_tables_and_images(tmp_path: Path) -> None:
    rows = write_cub(tmp_path)
    domain = create_domain("cub", root=str(tmp_path), split="test", size=4)
    assert len(domain) == 3
    from metaxfer.data.domain import DOMAINS

    files = DOMAINS.get("cub").fingerprint_files(root=str(tmp_path), crop=True)
    assert any(f.endswith("bounding_boxes.txt") for f in files)
    assert sum(f.endswith(".jpg") for f in files) == len(rows)

"""mini-ImageNet in the Ravi & Larochelle layout (split CSVs over images/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_formats import write_mini_imagenet

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_mini_imagenet
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_round_trip(tmp_path: Path, split: str) -> None:
    rows = write_mini_imagenet(tmp_path)[split]
    domain = load_mini_imagenet(tmp_path, split=split, size=6)
    wnids = sorted({w for _, w, _ in rows})
    assert domain.class_names == wnids and domain.class_keys == [f"imagenet:{w}" for w in wnids]
    assert domain.images.shape == (len(rows), 3, 6, 6)
    for i, (_, wnid, colour) in enumerate(rows):
        assert domain.class_names[int(domain.labels[i])] == wnid
        mean = domain.images[i].float().mean(dim=(1, 2)).numpy()
        np.testing.assert_allclose(mean, colour, atol=4)  # uniform-colour JPEGs decode within a few levels


def test_default_size_is_84(tmp_path: Path) -> None:
    write_mini_imagenet(tmp_path, splits={"val": ["n01855672"]}, per_class=1)
    assert load_mini_imagenet(tmp_path, split="val").images.shape == (1, 3, 84, 84)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"train.csv.*image-net.org.*meta-learning-lstm"):
        load_mini_imagenet(tmp_path)
    rows = write_mini_imagenet(tmp_path)["train"]
    with pytest.raises(UnknownNameError, match="'train', 'val', 'test'"):
        load_mini_imagenet(tmp_path, split="validation")
    (tmp_path / "images" / rows[1][0]).unlink()
    with pytest.raises(DataNotFoundError, match=rf"{rows[1][0]} does not exist"):
        load_mini_imagenet(tmp_path, size=6)
    (tmp_path / "images" / rows[1][0]).write_bytes(b"\xff\xd8\xff\xe0 cut short")
    with pytest.raises(DataFormatError, match=rf"{rows[1][0]}: not a readable image"):
        load_mini_imagenet(tmp_path, size=6)
    (tmp_path / "val.csv").write_text("file,class\nx.jpg,n01855672\n")
    with pytest.raises(DataFormatError, match=r"val.csv: expected the header line 'filename,label'"):
        load_mini_imagenet(tmp_path, split="val")
    (tmp_path / "val.csv").write_text("filename,label\nx.jpg\n")
    with pytest.raises(DataFormatError, match=r"val.csv, line 2: expected 2 fields"):
        load_mini_imagenet(tmp_path, split="val")


def test_registered_domain(tmp_path: Path) -> None:
    rows = write_mini_imagenet(tmp_path)["test"]
    assert len(create_domain("mini-imagenet", root=str(tmp_path), split="test", size=4)) == len(rows)

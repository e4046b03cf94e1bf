"""MNIST-M from its unpacked folders of PNGs and labels files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_formats import write_mnist_m
from PIL import Image

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_mnist_m
from metaxfer.errors import DataFormatError, DataNotFoundError


@pytest.mark.parametrize("split", ["train", "test"])
def test_round_trip(tmp_path: Path, split: str) -> None:
    truth = write_mnist_m(tmp_path)
    images, digits = truth[split]
    domain = load_mnist_m(tmp_path, split=split)
    assert domain.images.shape == (len(digits), 3, 32, 32)
    np.testing.assert_array_equal(domain.images.permute(0, 2, 3, 1).numpy(), images)
    np.testing.assert_array_equal(domain.labels.numpy(), digits)
    assert domain.class_keys == [f"digit-{d}" for d in range(10)]


def test_size_resizes_and_nested_folder_is_found(tmp_path: Path) -> None:
    truth = write_mnist_m(tmp_path / "mnist_m", sizes={"test": 2})
    domain = load_mnist_m(tmp_path, split="test", size=16)
    assert domain.images.shape == (2, 3, 16, 16)
    expected = np.asarray(Image.fromarray(truth["test"][0][1]).resize((16, 16), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(domain.images[1].permute(1, 2, 0).numpy(), expected)


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"mnist_m_train_labels.txt.*ganin"):
        load_mnist_m(tmp_path)
    write_mnist_m(tmp_path, sizes={"train": 3})
    (tmp_path / "mnist_m_train" / "00000001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataFormatError, match=r"00000001.png: not a readable image"):
        load_mnist_m(tmp_path)
    (tmp_path / "mnist_m_train" / "00000001.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"00000001.png does not exist"):
        load_mnist_m(tmp_path)
    (tmp_path / "mnist_m_train_labels.txt").write_text("00000000.png 3\n00000002.png eleven\n")
    with pytest.raises(DataFormatError, match="mnist_m_train_labels.txt: labels must be integers"):
        load_mnist_m(tmp_path)
    (tmp_path / "mnist_m_train_labels.txt").write_text("00000000.png 3\n00000002.png\n")
    with pytest.raises(DataFormatError, match="line 2: expected 2 fields, got 1"):
        load_mnist_m(tmp_path)
    (tmp_path / "mnist_m_train_labels.txt").write_text("00000000.png 12\n")
    with pytest.raises(DataFormatError, match="labels must be digits 0-9"):
        load_mnist_m(tmp_path)


def test_missing_image_folder(tmp_path: Path) -> None:
    (tmp_path / "mnist_m_test_labels.txt").write_text("00000000.png 3\n")
    with pytest.raises(DataNotFoundError, match=r"mnist_m_test .*does not exist"):
        load_mnist_m(tmp_path, split="test")


def test_registered_domain_fingerprints_every_image(tmp_path: Path) -> None:
    truth = write_mnist_m(tmp_path, sizes={"test": 2})
    domain = create_domain("mnist-m", root=str(tmp_path), split="test")
    assert domain.labels.tolist() == truth["test"][1].tolist()
    new_images = write_mnist_m(tmp_path, sizes={"test": 2}, seed=5)["test"][0]  # same names, new pixels
    changed = create_domain("mnist-m", root=str(tmp_path), split="test")
    np.testing.assert_array_equal(changed.images.permute(0, 2, 3, 1).numpy(), new_images)

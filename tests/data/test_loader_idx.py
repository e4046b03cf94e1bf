"""The IDX reader and the MNIST-format domains (mnist, kmnist, fashion-mnist)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_formats import idx_bytes, write_idx, write_mnist

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_fashion_mnist, load_kmnist, load_mnist, read_idx
from metaxfer.data.loaders.idx import FASHION_MNIST_DIR
from metaxfer.data.system import debian_package_present
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError

HAS_FASHION = debian_package_present("dataset-fashion-mnist") and FASHION_MNIST_DIR.is_dir()


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("name", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
def test_read_idx_round_trip(tmp_path: Path, dtype: str, name: str) -> None:
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    out = read_idx(write_idx(tmp_path / name, array), ndim=3)
    assert out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)
    assert out.dtype.isnative


def test_read_idx_rejects_a_bad_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x00\x01\x08\x01" + np.array([2], ">u4").tobytes() + b"\x01\x02")
    with pytest.raises(DataFormatError, match="not an IDX file.*magic number 00010801"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01" + np.array([2], ">u4").tobytes() + b"\x01\x02")  # unknown type byte
    with pytest.raises(DataFormatError, match="magic number"):
        read_idx(path)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="magic number missing"):
        read_idx(path)


def test_read_idx_checks_the_number_of_dimensions(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataFormatError, match="has 1 dimensions, expected 3"):
        read_idx(path, ndim=3)


def test_read_idx_checks_the_byte_count(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    short, long_ = tmp_path / "short-idx3-ubyte", tmp_path / "long-idx3-ubyte"
    short.write_bytes(data[:-5])
    long_.write_bytes(data + b"\x00")
    with pytest.raises(DataFormatError, match=r"short-idx3-ubyte: truncated: header gives shape \(3, 4, 4\)"):
        read_idx(short)
    with pytest.raises(DataFormatError, match="longer than its header says"):
        read_idx(long_)
    head = tmp_path / "head-idx3-ubyte"
    head.write_bytes(data[:9])
    with pytest.raises(DataFormatError, match="truncated inside its header"):
        read_idx(head)


def test_read_idx_reports_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((20, 28, 28), np.uint8)))[:-30])
    with pytest.raises(DataFormatError, match="t-idx3-ubyte.gz: corrupt or truncated gzip"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_round_trip(tmp_path: Path, gz: bool) -> None:
    truth = write_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        domain = load_mnist(tmp_path, split=split)
        images, labels = truth[split]
        assert domain.images.shape == (len(labels), 1, 28, 28) and domain.images.dtype == torch.uint8
        np.testing.assert_array_equal(domain.images[:, 0].numpy(), images)
        np.testing.assert_array_equal(domain.labels.numpy(), labels)
        assert domain.class_keys == [f"digit-{d}" for d in range(10)]
        assert domain.metadata["split"] == split


def test_load_mnist_reads_renamed_gunzipped_files(tmp_path: Path) -> None:
    images = np.full((2, 28, 28), 7, np.uint8)
    write_idx(tmp_path / "train-images.idx3-ubyte", images)
    write_idx(tmp_path / "train-labels.idx1-ubyte", np.array([3, 9], np.uint8))
    domain = load_mnist(tmp_path)
    assert domain.labels.tolist() == [3, 9] and int(domain.images.max()) == 7


def test_missing_files_say_what_and_where_from(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"does not exist.*train-images-idx3-ubyte.gz.*yann.lecun.com"):
        load_mnist(tmp_path / "nowhere")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataNotFoundError, match=r"'t10k-labels-idx1-ubyte.gz'.*found none.*yann.lecun.com"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(DataNotFoundError, match="rois-codh"):
        load_kmnist(tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_inconsistent_files_are_format_errors(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataFormatError, match="has 5 images but .*train-labels-idx1-ubyte.gz has 4 labels"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 10], np.uint8))
    with pytest.raises(DataFormatError, match="label 10 is out of range 0-9"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, ">i4"))
    with pytest.raises(DataFormatError, match="unsigned bytes"):
        load_mnist(tmp_path)


def test_unknown_split_lists_the_valid_ones(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    with pytest.raises(UnknownNameError, match="split='val' is not valid; choose one of 'train', 'test'"):
        load_mnist(tmp_path, split="val")


def test_kmnist_keys_are_hiragana_code_points(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    domain = load_kmnist(tmp_path, split="test")
    assert domain.class_keys[0] == "U+304A" and domain.class_keys[9] == "U+3092"  # お, を
    assert domain.class_names[:3] == ["o", "ki", "su"]


def test_registered_domain_needs_root_and_rebuilds_when_files_change(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="pass root=PATH"):
        create_domain("mnist")
    write_mnist(tmp_path, n_train=4)
    first = create_domain("mnist", root=str(tmp_path))
    assert torch.equal(create_domain("mnist", root=str(tmp_path)).images, first.images)  # from the cache
    labels = np.array([9, 9, 9, 9], np.uint8)
    path = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert create_domain("mnist", root=str(tmp_path)).labels.tolist() == [9, 9, 9, 9]


@pytest.mark.debian
@pytest.mark.skipif(not HAS_FASHION, reason="Debian package dataset-fashion-mnist is not installed")
def test_read_idx_on_the_real_fashion_mnist_files() -> None:
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz", ndim=3)
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz", ndim=1)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    train_labels = read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz", ndim=1)
    assert np.bincount(train_labels).tolist() == [6000] * 10
    # bright articles on a dark background: the border pixels are mostly 0
    assert np.median(images[:, 0, :]) == 0 and images.max() == 255


@pytest.mark.debian
@pytest.mark.skipif(not HAS_FASHION, reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_is_a_default_domain_reading_the_debian_files() -> None:
    domain = create_domain("fashion-mnist", split="test")
    assert domain.describe() == "fashion-mnist: 10 classes, 10000 images of 1×28×28"
    assert domain.class_counts().tolist() == [1000] * 10
    assert domain.class_names[9] == "Ankle boot"
    raw = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(domain.images[:, 0], torch.from_numpy(raw))

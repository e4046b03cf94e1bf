"""USPS from usps.h5 and from LIBSVM's usps.bz2 / usps.t.bz2."""

from __future__ import annotations

import bz2
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_formats import usps_libsvm_text, write_usps_h5, write_usps_libsvm

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_usps
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError


@pytest.mark.parametrize("split", ["train", "test"])
def test_h5_round_trip(tmp_path: Path, split: str) -> None:
    truth = write_usps_h5(tmp_path / "usps.h5")
    data, target = truth[split]
    domain = load_usps(tmp_path, split=split)
    assert domain.images.shape == (len(target), 1, 16, 16)
    expected = np.rint(data * 255).astype(np.uint8).reshape(-1, 16, 16)
    np.testing.assert_array_equal(domain.images[:, 0].numpy(), expected)
    np.testing.assert_array_equal(domain.labels.numpy(), target)
    assert domain.images[:, 0, 0, :8].max() == 0 and domain.images[:, 0, 0, 8].min() == 255
    assert domain.class_keys[3] == "digit-3"


def test_h5_file_itself_can_be_the_root(tmp_path: Path) -> None:
    truth = write_usps_h5(tmp_path / "usps.h5")
    assert load_usps(tmp_path / "usps.h5", split="test").labels.tolist() == truth["test"][1].tolist()


@pytest.mark.parametrize("split", ["train", "test"])
def test_libsvm_round_trip(tmp_path: Path, split: str) -> None:
    truth = write_usps_libsvm(tmp_path)
    features, digits = truth[split]
    domain = load_usps(tmp_path, split=split)
    expected = np.rint((features + 1) / 2 * 255).astype(np.uint8).reshape(-1, 16, 16)
    np.testing.assert_array_equal(domain.images[:, 0].numpy(), expected)
    np.testing.assert_array_equal(domain.labels.numpy(), digits)  # file labels are digit + 1
    # -1 (background) -> 0, a left-out feature (0) -> mid grey, 1 (ink) -> 255
    assert domain.images[:, 0, 0, :3].tolist() == [[0, 128, 255]] * len(digits)


def test_h5_is_preferred_and_both_formats_agree(tmp_path: Path) -> None:
    features, digits = write_usps_libsvm(tmp_path)["train"]
    unit = (features + 1) / 2
    with h5py.File(tmp_path / "usps.h5", "w") as fh:
        fh.create_dataset("train/data", data=unit)
        fh.create_dataset("train/target", data=digits)
    from_h5 = load_usps(tmp_path)
    assert from_h5.metadata["source"].endswith("usps.h5")
    (tmp_path / "usps.h5").unlink()
    from_libsvm = load_usps(tmp_path)
    assert from_libsvm.metadata["source"].endswith("usps.bz2")
    np.testing.assert_array_equal(from_h5.images.numpy(), from_libsvm.images.numpy())
    np.testing.assert_array_equal(from_h5.labels.numpy(), from_libsvm.labels.numpy())


def test_uncompressed_libsvm_file_is_read(tmp_path: Path) -> None:
    features = np.zeros((2, 256))
    features[1, 5] = 1.0
    (tmp_path / "usps.t").write_text(usps_libsvm_text(features, np.array([4, 0])))
    domain = load_usps(tmp_path, split="test")
    assert domain.labels.tolist() == [4, 0] and int(domain.images[1, 0, 0, 5]) == 255


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1:0.5\n", r"line 1: label 0 is not 1-10"),
        ("3 1:0.5\n11 2:0.1\n", r"line 2: label 11 is not 1-10"),
        ("3 257:0.5\n", r"line 1: feature indices must be integers 1-256"),
        ("3 0:0.5\n", r"line 1: feature indices must be integers 1-256"),
        ("3 1:1.5\n", r"values must lie in \[-1, 1\]"),
        ("3 1:abc\n", r"line 1: expected 'label idx:val \.\.\.'"),
        ("3 1:0.5 2\n", r"line 1: expected 'label idx:val \.\.\.'"),
        ("3 1:0.5\n\n4 1:2:3\n", r"line 3: expected 'label idx:val \.\.\.'"),
        ("3 1:0.5\n\n0 2:0.1\n", r"line 3: label 0 is not 1-10"),
        ("3 1:0.5\n\n4 2.5:0.1\n", r"line 3: feature indices must be integers 1-256"),
    ],
)
def test_malformed_libsvm_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "usps.bz2").write_bytes(bz2.compress(text.encode()))
    with pytest.raises(DataFormatError, match=r"usps\.bz2.*" + message):
        load_usps(tmp_path)


def test_truncated_bz2_is_a_format_error(tmp_path: Path) -> None:
    write_usps_libsvm(tmp_path)
    path = tmp_path / "usps.bz2"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFormatError, match="usps.bz2: corrupt or truncated bz2"):
        load_usps(tmp_path)


def test_bad_h5_files_are_format_errors(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "usps.h5", "w") as fh:
        fh.create_dataset("train/data", data=np.zeros((3, 256)))
    with pytest.raises(DataFormatError, match=r"usps.h5: expected datasets test/data and test/target"):
        load_usps(tmp_path, split="test")
    with pytest.raises(DataFormatError, match="expected datasets train/data and train/target"):
        load_usps(tmp_path)
    with h5py.File(tmp_path / "usps.h5", "w") as fh:
        fh.create_dataset("train/data", data=np.full((3, 256), 2.0))
        fh.create_dataset("train/target", data=np.zeros(3, np.int64))
    with pytest.raises(DataFormatError, match=r"train/data must lie in \[0, 1\]"):
        load_usps(tmp_path)
    with h5py.File(tmp_path / "usps.h5", "w") as fh:
        fh.create_dataset("train/data", data=np.zeros((3, 100)))
        fh.create_dataset("train/target", data=np.zeros(3, np.int64))
    with pytest.raises(DataFormatError, match=r"must be \(N, 256\)"):
        load_usps(tmp_path)
    (tmp_path / "usps.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DataFormatError, match="usps.h5: not a readable HDF5 file"):
        load_usps(tmp_path)


def test_missing_files_say_where_usps_comes_from(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"'usps.h5' or 'usps.t.bz2'.*kaggle.*libsvmtools"):
        load_usps(tmp_path, split="test")
    with pytest.raises(UnknownNameError, match="split='val'"):
        load_usps(tmp_path, split="val")


def test_registered_domain(tmp_path: Path) -> None:
    truth = write_usps_libsvm(tmp_path)
    domain = create_domain("usps", root=str(tmp_path), split="test")
    assert domain.labels.tolist() == truth["test"][1].tolist()

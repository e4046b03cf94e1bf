"""SVHN's MATLAB v5 files (train_32x32.mat, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_formats import write_svhn
from scipy.io import savemat

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_svhn
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_round_trip(tmp_path: Path, split: str) -> None:
    x, _ = write_svhn(tmp_path / f"{split}_32x32.mat", n=12)
    domain = load_svhn(tmp_path, split=split)
    assert domain.images.shape == (12, 3, 32, 32)
    # X[row, col, channel, n] is pixel (row, col) of image n
    assert int(domain.images[4, 2, 7, 19]) == int(x[7, 19, 2, 4])
    np.testing.assert_array_equal(domain.images.permute(2, 3, 1, 0).numpy(), x)
    assert domain.labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]  # 10 stands for 0
    assert domain.class_keys[0] == "digit-0"


def test_bad_files_are_format_errors(tmp_path: Path) -> None:
    path = tmp_path / "train_32x32.mat"
    write_svhn(path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataFormatError, match="train_32x32.mat: not a readable MATLAB file"):
        load_svhn(tmp_path)
    savemat(str(path), {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DataFormatError, match=r"expected variables X and y, found \['X'\]"):
        load_svhn(tmp_path)
    savemat(str(path), {"X": np.zeros((32, 32, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DataFormatError, match=r"X must be uint8 of shape \(H, W, 3, N\)"):
        load_svhn(tmp_path)
    savemat(str(path), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(DataFormatError, match=r"y must have shape \(2, 1\)"):
        load_svhn(tmp_path)
    savemat(str(path), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])})
    with pytest.raises(DataFormatError, match="y must hold 1-10"):
        load_svhn(tmp_path)


def test_matlab_v73_file_is_explained(tmp_path: Path) -> None:
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM"
    (tmp_path / "test_32x32.mat").write_bytes(header + b"\x00" * 512)
    with pytest.raises(DataFormatError, match=r"test_32x32.mat: .*v7.3.*MATLAB v5"):
        load_svhn(tmp_path, split="test")


def test_missing_file_and_bad_split(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"'train_32x32.mat'.*ufldl.stanford.edu/housenumbers"):
        load_svhn(tmp_path)
    with pytest.raises(UnknownNameError, match="'train', 'test', 'extra'"):
        load_svhn(tmp_path, split="valid")


def test_registered_domain(tmp_path: Path) -> None:
    write_svhn(tmp_path / "test_32x32.mat", n=3)
    assert create_domain("svhn", root=str(tmp_path), split="test").labels.tolist() == [1, 2, 3]

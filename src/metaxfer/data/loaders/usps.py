"""USPS handwritten digits (Hull 1994), 16×16, in either of the two forms users have on disk.

- ``usps.h5`` (the widely shared HDF5 copy): groups ``train`` and ``test``, each with ``data`` of shape (N, 256),
  floats in [0, 1], and ``target`` of shape (N,), the digits 0–9.
- LIBSVM's ``usps.bz2`` (train) and ``usps.t.bz2`` (test): lines ``label idx:val ...`` with idx 1–256, values in
  [-1, 1] (absent features are 0), label = digit + 1.

Both give bright ink on dark, like MNIST: 0 (or -1) is the background.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import DIGIT_KEYS, DIGIT_NAMES, PathLike, choose, find_file, require_root
from metaxfer.errors import DataFormatError, MissingDependencyError

__all__ = ["load_usps", "read_usps_h5", "read_usps_libsvm"]

_ORIGIN = (
    "USPS comes as usps.h5 from https://www.kaggle.com/datasets/bistaumanga/usps-dataset, or as usps.bz2 and "
    "usps.t.bz2 from https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps."
)
_EXPECTED = "usps.h5, or usps.bz2 (train) and usps.t.bz2 (test)"
_LIBSVM = {"train": "usps.bz2", "test": "usps.t.bz2"}
_TOL = 1e-4


def read_usps_h5(path: PathLike, *, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of ``usps.h5``.

    Returns:
        ``(images, digits)``: uint8 (N, 16, 16) with 0–1 scaled to 0–255, and int64 (N,).

    Raises:
        MissingDependencyError: h5py is not installed.
        DataFormatError: The file is not HDF5, lacks ``<split>/data`` or ``<split>/target``, or holds values out of
            range.
    """
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("reading usps.h5 needs h5py: pip install h5py (or use usps.bz2)") from None
    path = Path(path)
    try:
        with h5py.File(path, "r") as fh:
            if f"{split}/data" not in fh or f"{split}/target" not in fh:
                raise DataFormatError(f"{path}: expected datasets {split}/data and {split}/target, found {sorted(fh)}")
            data = np.asarray(fh[split]["data"][()], dtype=np.float64)
            target = np.asarray(fh[split]["target"][()])
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc}); download it again") from None
    if data.ndim != 2 or data.shape[1] != 256 or target.shape != (len(data),):
        raise DataFormatError(
            f"{path}: {split}/data must be (N, 256) and target (N,), got {data.shape} and {target.shape}"
        )
    if data.size and (data.min() < -_TOL or data.max() > 1 + _TOL):
        raise DataFormatError(f"{path}: {split}/data must lie in [0, 1], got [{data.min():g}, {data.max():g}]")
    digits = target.astype(np.int64)
    if not np.array_equal(digits, target) or (digits.size and (digits.min() < 0 or digits.max() > 9)):
        raise DataFormatError(f"{path}: {split}/target must hold the digits 0-9")
    return _to_uint8(data), digits


def read_usps_libsvm(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read LIBSVM's ``usps.bz2`` or ``usps.t.bz2`` (bz2-compressed or already decompressed).

    Returns:
        ``(images, digits)``: uint8 (N, 16, 16) with -1–1 scaled to 0–255, and int64 (N,) = label - 1.

    Raises:
        DataFormatError: Bad bz2 data, a malformed line, an index outside 1–256, a value outside [-1, 1] or a label
            outside 1–10 (the message gives the line number).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:3] == b"BZh":
        try:
            raw = bz2.decompress(raw)
        except (OSError, EOFError, ValueError) as exc:
            raise DataFormatError(f"{path}: corrupt or truncated bz2 data ({exc}); download it again") from None
    numbered = [(n, line) for n, line in enumerate(raw.decode("ascii", "replace").splitlines(), 1) if line.strip()]
    lines = [line for _, line in numbered]
    pairs_per_line = np.array([line.count(":") for line in lines], dtype=np.int64)
    try:  # every number of the file at once: label, idx, val, idx, val, ..., label, ...
        values = np.array(list(map(float, " ".join(lines).replace(":", " ").split())), dtype=np.float64)
    except ValueError:
        values = np.zeros(0)
    if len(values) != len(lines) + 2 * int(pairs_per_line.sum()):
        number, line = next((n, line) for n, line in numbered if not _well_formed(line))
        raise DataFormatError(f"{path}, line {number}: expected 'label idx:val ...', got {line[:60]!r}")
    starts = np.cumsum(1 + 2 * pairs_per_line) - (1 + 2 * pairs_per_line)
    labels = values[starts]
    is_pair = np.ones(len(values), dtype=bool)
    is_pair[starts] = False
    pairs = values[is_pair].reshape(-1, 2)
    rows = np.repeat(np.arange(len(lines)), pairs_per_line)
    wrong = (pairs[:, 0] < 1) | (pairs[:, 0] > 256) | (pairs[:, 0] != np.round(pairs[:, 0]))
    if wrong.any():
        number = numbered[rows[np.flatnonzero(wrong)[0]]][0]
        raise DataFormatError(f"{path}, line {number}: feature indices must be integers 1-256")
    wrong = (labels < 1) | (labels > 10) | (labels != np.round(labels))
    if wrong.any():
        bad = int(np.flatnonzero(wrong)[0])
        raise DataFormatError(
            f"{path}, line {numbered[bad][0]}: label {labels[bad]:g} is not 1-10 (LIBSVM USPS labels are digit + 1)"
        )
    features = np.zeros((len(lines), 256), dtype=np.float64)
    features[rows, pairs[:, 0].astype(np.int64) - 1] = pairs[:, 1]
    if features.size and (features.min() < -1 - _TOL or features.max() > 1 + _TOL):
        raise DataFormatError(f"{path}: values must lie in [-1, 1], got [{features.min():g}, {features.max():g}]")
    return _to_uint8((features + 1) / 2), labels.astype(np.int64) - 1


def _well_formed(line: str) -> bool:
    """Whether ``line`` reads as ``label idx:val idx:val ...`` (used to find the line to blame in an error)."""
    label, *pairs = line.split()
    try:
        float(label)
        for pair in pairs:
            index, value = pair.split(":")
            float(index), float(value)
    except ValueError:
        return False
    return True


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8).reshape(-1, 16, 16)


def _source_file(root: PathLike | None, split: str) -> Path:
    choose(split, list(_LIBSVM), option="split", dataset="usps")
    root = require_root(root, dataset="usps", expected=_EXPECTED, origin=_ORIGIN)
    if root.is_file() and root.suffix == ".h5":
        return root
    return find_file(
        root, ["usps.h5", _LIBSVM[split], _LIBSVM[split].removesuffix(".bz2")], dataset="usps", origin=_ORIGIN
    )


def load_usps(root: PathLike, *, split: str = "train") -> Domain:
    """Load USPS from ``usps.h5`` or from LIBSVM's ``usps.bz2`` / ``usps.t.bz2``.

    Args:
        root: A folder holding those files (``usps.h5`` is preferred when both are there), or ``usps.h5`` itself.
        split: ``"train"`` (7,291 images) or ``"test"`` (2,007).

    Returns:
        The domain; images uint8 (N, 1, 16, 16), bright ink on dark, class keys ``digit-0`` … ``digit-9``.

    Raises:
        DataNotFoundError: No such files (the message says where USPS comes from).
        DataFormatError: A file is corrupt or malformed.
    """
    path = _source_file(root, split)
    if path.suffix == ".h5":
        images, digits = read_usps_h5(path, split=split)
    else:
        images, digits = read_usps_libsvm(path)
    return Domain(
        name="usps",
        images=torch.from_numpy(images).unsqueeze(1),
        labels=torch.from_numpy(digits),
        class_names=list(DIGIT_NAMES),
        class_keys=list(DIGIT_KEYS),
        metadata={
            "source": str(path),
            "license": "unspecified (US Postal Service / Hull 1994); research use",
            "description": "USPS handwritten digits, 16×16 grey, white ink on black",
            "split": split,
        },
    )


def _usps_files(root: PathLike | None = None, *, split: str = "train") -> list[str]:
    return [str(_source_file(root, split))]


register_domain(
    DomainSpec(
        name="usps",
        build=load_usps,
        description="USPS handwritten digits 16×16 (usps.h5 or LIBSVM usps.bz2)",
        source="user path (root=)",
        license="unspecified (US Postal Service); research use",
        default=False,
        needs_root=True,
        fingerprint_files=_usps_files,
    )
)

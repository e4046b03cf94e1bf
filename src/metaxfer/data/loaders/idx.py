"""MNIST-format (IDX) datasets: ``mnist``, ``kmnist`` and ``fashion-mnist``.

The IDX format (LeCun et al.) is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then the values in row-major order. The files usually come gzipped (``train-images-idx3-ubyte.gz``);
gunzipped copies are read too, whichever name they have been given.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import DIGIT_KEYS, DIGIT_NAMES, PathLike, choose, find_file, require_root
from metaxfer.errors import DataFormatError

__all__ = ["FASHION_MNIST_DIR", "load_fashion_mnist", "load_idx_split", "load_kmnist", "load_mnist", "read_idx"]

#: Where Debian's ``dataset-fashion-mnist`` package puts the Fashion-MNIST files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path: PathLike, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file, gzipped or not (told apart by content, not by name).

    Args:
        path: The file.
        ndim: If given, the number of dimensions the file must have (3 for images, 1 for labels).

    Returns:
        The array, in the file's type converted to native byte order.

    Raises:
        DataFormatError: Bad gzip data, a bad magic number, unexpected dimensions, or a byte count that does not match
            the header (a truncated or padded file).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{path}: corrupt or truncated gzip data ({exc}); download the file again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise DataFormatError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected 0000 then a type byte in "
            f"{sorted(f'{t:02x}' for t in _IDX_TYPES)} and the number of dimensions)"
        )
    dtype, rank = _IDX_TYPES[raw[2]], raw[3]
    if ndim is not None and rank != ndim:
        raise DataFormatError(f"{path}: has {rank} dimensions, expected {ndim} (is it the images/labels file swapped?)")
    if len(raw) < 4 + 4 * rank:
        raise DataFormatError(f"{path}: truncated inside its header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    start = 4 + 4 * rank
    expected = start + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataFormatError(
            f"{path}: {what}: header gives shape {dims} of {dtype.name} = {expected} bytes, the data has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


@dataclass(frozen=True)
class _IdxDataset:
    name: str
    class_names: list[str]
    class_keys: list[str]
    origin: str
    license: str
    description: str


def _split_files(root: Path, split: str, info: _IdxDataset) -> tuple[Path, Path]:
    prefix = _SPLITS[choose(split, list(_SPLITS), option="split", dataset=info.name)]
    found = []
    for kind, rank in (("images", 3), ("labels", 1)):
        names = [
            f"{prefix}-{kind}-idx{rank}-ubyte.gz",
            f"{prefix}-{kind}-idx{rank}-ubyte",
            f"{prefix}-{kind}.idx{rank}-ubyte",
        ]
        found.append(find_file(root, names, dataset=info.name, origin=info.origin))
    return found[0], found[1]


def _expected(split: str) -> str:
    prefix = _SPLITS.get(split, split)
    return f"{prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz (or gunzipped copies)"


def load_idx_split(root: PathLike, *, split: str, info: _IdxDataset) -> Domain:
    """Load one split of an MNIST-format dataset into a domain (see the public ``load_*`` functions)."""
    root = require_root(root, dataset=info.name, expected=_expected(split), origin=info.origin)
    images_file, labels_file = _split_files(root, split, info)
    images = read_idx(images_file, ndim=3)
    labels = read_idx(labels_file, ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DataFormatError(f"{info.name}: {images_file} and {labels_file} must hold unsigned bytes (IDX type 08)")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{info.name}: {images_file} has {len(images)} images but {labels_file} has {len(labels)} labels"
        )
    if len(labels) and int(labels.max()) >= len(info.class_names):
        raise DataFormatError(f"{labels_file}: label {int(labels.max())} is out of range 0-{len(info.class_names) - 1}")
    return Domain(
        name=info.name,
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(info.class_names),
        class_keys=list(info.class_keys),
        metadata={
            "source": str(root),
            "license": info.license,
            "description": info.description,
            "split": split,
            "files": [images_file.name, labels_file.name],
        },
    )


def _fingerprint(root: PathLike | None, split: str, info: _IdxDataset) -> list[str]:
    root = require_root(root, dataset=info.name, expected=_expected(split), origin=info.origin)
    return [str(p) for p in _split_files(root, split, info)]


# ------------------------------------------------------------------------------------------------------ datasets
_MNIST = _IdxDataset(
    name="mnist",
    class_names=DIGIT_NAMES,
    class_keys=DIGIT_KEYS,
    origin="MNIST comes from http://yann.lecun.com/exdb/mnist/ (LeCun & Cortes): download the four *-ubyte.gz files.",
    license="CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
    description="MNIST handwritten digits, 28×28 grey, white ink on black",
)
_KMNIST_CHARS = "おきすつなはまやれを"
_KMNIST = _IdxDataset(
    name="kmnist",
    class_names=["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    class_keys=[f"U+{ord(c):04X}" for c in _KMNIST_CHARS],
    origin="Kuzushiji-MNIST comes from https://github.com/rois-codh/kmnist (ROIS-DS CODH): download the 'MNIST format' "
    "files (download_data.py, or the *-ubyte.gz links in its README).",
    license="CC BY-SA 4.0 (ROIS-DS Center for Open Data in the Humanities)",
    description="Kuzushiji-MNIST: 10 cursive hiragana, 28×28 grey, white ink on black",
)
_FASHION = _IdxDataset(
    name="fashion-mnist",
    class_names=[
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    class_keys=[
        f"fashion:{n}"
        for n in ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
    ],
    origin="Fashion-MNIST ships in Debian's dataset-fashion-mnist package (sudo apt-get install dataset-fashion-mnist, "
    f"files in {FASHION_MNIST_DIR}); it also comes from https://github.com/zalandoresearch/fashion-mnist.",
    license="MIT (Zalando SE)",
    description="Fashion-MNIST: 10 clothing classes, 28×28 grey, bright article on black",
)


def load_mnist(root: PathLike, *, split: str = "train") -> Domain:
    """Load MNIST from a folder with its IDX files.

    Args:
        root: Folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-...`` (gzipped
            or not).
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).

    Returns:
        The domain; images uint8 (N, 1, 28, 28), class keys ``digit-0`` … ``digit-9``.

    Raises:
        DataNotFoundError: The folder or a file is missing (the message says where MNIST comes from).
        DataFormatError: A file is corrupt or not IDX.
    """
    return load_idx_split(root, split=split, info=_MNIST)


def load_kmnist(root: PathLike, *, split: str = "train") -> Domain:
    """Load Kuzushiji-MNIST from a folder with its MNIST-format IDX files (same names and shapes as MNIST).

    Args:
        root: Folder holding ``train-images-idx3-ubyte.gz`` and the three other files.
        split: ``"train"`` or ``"test"``.

    Returns:
        The domain; class keys are the hiragana code points (``U+304A`` for お, ...).
    """
    return load_idx_split(root, split=split, info=_KMNIST)


def load_fashion_mnist(root: PathLike = FASHION_MNIST_DIR, *, split: str = "train") -> Domain:
    """Load Fashion-MNIST, by default from Debian's ``dataset-fashion-mnist`` package.

    Args:
        root: Folder holding the IDX files.
        split: ``"train"`` or ``"test"``.

    Returns:
        The domain; images uint8 (N, 1, 28, 28).
    """
    return load_idx_split(root, split=split, info=_FASHION)


def _mnist_files(root: PathLike | None = None, *, split: str = "train") -> list[str]:
    return _fingerprint(root, split, _MNIST)


def _kmnist_files(root: PathLike | None = None, *, split: str = "train") -> list[str]:
    return _fingerprint(root, split, _KMNIST)


def _fashion_files(root: PathLike = FASHION_MNIST_DIR, *, split: str = "train") -> list[str]:
    return _fingerprint(root, split, _FASHION)


for _info, _build, _files, _default in (
    (_MNIST, load_mnist, _mnist_files, False),
    (_KMNIST, load_kmnist, _kmnist_files, False),
    (_FASHION, load_fashion_mnist, _fashion_files, True),
):
    register_domain(
        DomainSpec(
            name=_info.name,
            build=_build,
            description=_info.description,
            source=f"Debian package dataset-fashion-mnist ({FASHION_MNIST_DIR})" if _default else "user path (root=)",
            license=_info.license,
            debian_packages=("dataset-fashion-mnist",) if _default else (),
            install_hint="sudo apt-get install dataset-fashion-mnist" if _default else "",
            default=_default,
            needs_root=not _default,
            fingerprint_files=_files,
        )
    )

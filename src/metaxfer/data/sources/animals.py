"""The ``animal-mnist`` domain: 10,000 animal silhouettes, 1×28×28, from the ``animal-mnist`` PyPI package.

The package declares tensorflow as a requirement and its own loader imports it, so it is installed with
``pip install --no-deps animal-mnist`` and its files are read here directly: two gzipped pickles under
``animal_mnist/data/Animal_MNIST/`` holding a (10000, 28, 28) uint8 array and a (10000,) int64 label array.
Labels 0..9 are the classes in alphabetical order (checked by eye on a grid of samples: giraffes are the tall
ones, zebras the striped ones). Silhouettes are bright on a dark background, like MNIST.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.errors import DataFormatError, DataNotFoundError, MissingDependencyError

__all__ = ["ANIMAL_CLASS_NAMES", "build_animal_mnist", "ensure_dark_background", "load_numpy_pickle"]

log = logging.getLogger(__name__)

#: The classes, in label order.
ANIMAL_CLASS_NAMES: tuple[str, ...] = (
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
)  # fmt: skip
#: The Unicode emoji showing each class (for pairing with emoji domains).
_ANIMAL_EMOJI: tuple[str, ...] = (
    "\U0001f43b", "\U0001f426", "\U0001f408", "\U0001f404", "\U0001f415",
    "\U0001f418", "\U0001f992", "\U0001f40e", "\U0001f411", "\U0001f993",
)  # fmt: skip

_INSTALL_HINT = "pip install --no-deps animal-mnist (--no-deps: its declared tensorflow requirement is not needed)"
_IMAGES_FILE = "animal_data_version_3.gz"
_LABELS_FILE = "animal_label_version_3.gz"


class _NumpyArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild plain numpy arrays and nothing else.

    Unpickling runs whatever callables the file names, so a tampered data file could run arbitrary code. The
    animal-mnist pickles only need numpy's array reconstructor, ``ndarray`` and ``dtype``; every other global is
    refused. (Arrays of dtype ``object`` would need more and are refused too.)
    """

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # numpy 1.x writes numpy.core.multiarray, numpy 2.x numpy._core.multiarray: the same function.
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.empty(0))[0],
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only plain numpy arrays may be unpickled here"
            ) from None


def load_numpy_pickle(path: str | Path) -> np.ndarray:
    """Read a gzipped pickle that holds one numpy array, refusing any other Python object.

    Args:
        path: The ``.gz`` file.

    Returns:
        The array.

    Raises:
        DataFormatError: The file is not a gzipped pickle of one numeric numpy array.
    """
    try:
        with gzip.open(path, "rb") as fh:
            value = _NumpyArrayUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise DataFormatError(f"{path}: not a gzipped pickle of a numpy array ({exc})") from exc
    if not isinstance(value, np.ndarray) or value.dtype == object:
        raise DataFormatError(f"{path}: expected a numeric numpy array, got {type(value).__name__}")
    return value


def _data_dir() -> Path:
    """The package's data folder, found without importing ``animal_mnist`` (its ``__init__`` needs tensorflow)."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"domain 'animal-mnist' needs the animal-mnist package: {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "Animal_MNIST"


def _package_version() -> str:
    try:
        return importlib.metadata.version("animal-mnist")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _fingerprint_files(**_: Any) -> list[str]:
    try:
        folder = _data_dir()
    except MissingDependencyError:
        return []
    return [str(folder / _IMAGES_FILE), str(folder / _LABELS_FILE)]


def ensure_dark_background(images: torch.Tensor) -> torch.Tensor:
    """Invert the whole set if its border pixels are mostly bright (dark figures on white), else return it.

    Args:
        images: uint8 silhouettes.

    Returns:
        The images with bright figures on a dark background.

    Shape:
        (N, C, H, W) → (N, C, H, W).
    """
    border = torch.cat(
        [images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], dim=-1
    ).float()
    if border.numel() and float(border.mean()) > 127.5:
        log.info("silhouettes are dark on a bright background; inverting them to bright on dark")
        return 255 - images
    return images


def build_animal_mnist() -> Domain:
    """Build the ``animal-mnist`` domain from the package's files.

    Returns:
        10,000 silhouettes, uint8 0–255, bright on dark, 10 classes of 1,000.

    Shape:
        images (10000, 1, 28, 28), labels (10000,).

    Raises:
        MissingDependencyError: The package is not installed.
        DataNotFoundError: The package is installed but its data files are missing.
        DataFormatError: The files do not hold what is expected.
    """
    folder = _data_dir()
    paths = [folder / _IMAGES_FILE, folder / _LABELS_FILE]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataNotFoundError(
            f"animal-mnist data files are missing: {', '.join(missing)}; reinstall the package with "
            "pip install --force-reinstall --no-deps animal-mnist"
        )
    pixels = load_numpy_pickle(paths[0])
    raw_labels = load_numpy_pickle(paths[1])
    where = f"animal-mnist ({folder})"
    if pixels.ndim != 3 or pixels.shape[1:] != (28, 28) or pixels.dtype != np.uint8:
        raise DataFormatError(f"{where}: expected uint8 images of 28×28, got {pixels.dtype} {pixels.shape}")
    if raw_labels.shape != (pixels.shape[0],) or not np.issubdtype(raw_labels.dtype, np.integer):
        raise DataFormatError(
            f"{where}: expected {pixels.shape[0]} integer labels, got {raw_labels.dtype} {raw_labels.shape}"
        )
    labels = torch.from_numpy(raw_labels.astype(np.int64))
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(ANIMAL_CLASS_NAMES)):
        raise DataFormatError(f"{where}: labels must lie in 0..{len(ANIMAL_CLASS_NAMES) - 1}")
    images = ensure_dark_background(torch.from_numpy(np.ascontiguousarray(pixels)).unsqueeze(1))
    return Domain(
        name="animal-mnist",
        images=images,
        labels=labels,
        class_names=list(ANIMAL_CLASS_NAMES),
        class_keys=[f"animal-{c}" for c in ANIMAL_CLASS_NAMES],
        metadata={
            "source": f"PyPI package animal-mnist {_package_version()} (animal_mnist/data/Animal_MNIST/*_version_3.gz)",
            "license": "MIT",
            "description": "10,000 animal silhouettes (1,000 per class), 28×28 grey, bright figure on dark",
            "emoji": {"char": list(_ANIMAL_EMOJI)},
        },
    )


register_domain(
    DomainSpec(
        name="animal-mnist",
        build=build_animal_mnist,
        description="10,000 animal silhouettes in 10 classes, 1×28×28 (animal-mnist)",
        source="PyPI: animal-mnist (install with --no-deps)",
        license="MIT",
        python_modules=("animal_mnist",),
        install_hint=_INSTALL_HINT,
        default=True,
        fingerprint_files=_fingerprint_files,
    )
)

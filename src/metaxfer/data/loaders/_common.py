"""Helpers shared by the on-disk dataset loaders: path checks, text tables, image decoding, archives.

Every loader goes through these, so that a missing file always raises :class:`DataNotFoundError` saying where the
files come from, and a bad file always raises :class:`DataFormatError` naming the file and the problem.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from metaxfer.data.domain import DIGIT_CLASS_KEYS, DIGIT_CLASS_NAMES
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError

__all__ = [
    "DIGIT_KEYS",
    "DIGIT_NAMES",
    "IMAGE_EXTENSIONS",
    "FileTree",
    "PathLike",
    "choose",
    "decode_image",
    "find_file",
    "open_image",
    "read_table",
    "require_root",
    "resize_stack",
    "stack_images",
]


PathLike = str | os.PathLike[str]

#: Class names and keys of the ten digit classes; every digit dataset (MNIST, USPS, SVHN, MNIST-M) uses these keys,
#: so that they share classes in cross-domain episodes.
DIGIT_NAMES: list[str] = list(DIGIT_CLASS_NAMES)
DIGIT_KEYS: list[str] = list(DIGIT_CLASS_KEYS)

#: File name endings read as images by folder-based loaders (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


# ---------------------------------------------------------------------------------------------------------- paths
def require_root(root: PathLike | None, *, dataset: str, expected: str, origin: str) -> Path:
    """Check that the user gave an existing path for ``dataset`` and return it.

    Args:
        root: The path the user gave (``None`` when they gave none).
        dataset: The dataset's name, for the message.
        expected: What the path should hold, e.g. ``"train-images-idx3-ubyte.gz and 3 more IDX files"``.
        origin: Where users get those files (official site, package, ...).

    Returns:
        ``root`` as a :class:`Path`, with ``~`` expanded.

    Raises:
        DataNotFoundError: ``root`` is ``None`` or does not exist; the message says what is expected and from where.
    """
    if root is None:
        raise DataNotFoundError(f"{dataset}: no data path given; pass root=PATH, a folder with {expected}. {origin}")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"{dataset}: {path} does not exist; expected a folder with {expected}. {origin}")
    return path


def find_file(root: Path, candidates: Sequence[str], *, dataset: str, origin: str) -> Path:
    """Return the first of ``candidates`` (names relative to ``root``) that exists.

    Raises:
        DataNotFoundError: None exists; the message lists every name tried and where the files come from.
    """
    for name in candidates:
        path = root / name
        if path.is_file():
            return path
    tried = " or ".join(repr(c) for c in candidates)
    raise DataNotFoundError(f"{dataset}: expected {tried} in {root}, found none. {origin}")


def choose(value: Any, choices: Sequence[Any], *, option: str, dataset: str) -> Any:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        UnknownNameError: Otherwise, listing the valid values.
    """
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise UnknownNameError(f"{dataset}: {option}={value!r} is not valid; choose one of {valid}")
    return value


def read_table(path: Path | str, columns: int, *, sep: str | None = None, header: str | None = None) -> list[list[str]]:
    """Read a small text table: one row per non-blank line, ``columns`` fields per row.

    Args:
        path: The text file (UTF-8).
        columns: Fields each row must have.
        sep: Field separator; ``None`` splits on runs of whitespace.
        header: If given, the first line must equal it (after stripping) and is skipped.

    Returns:
        The rows, each a list of ``columns`` stripped strings.

    Raises:
        DataNotFoundError: The file does not exist.
        DataFormatError: The file is not UTF-8 text, the header differs, or a row has the wrong number of fields
            (the message gives the line number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataNotFoundError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path}: not UTF-8 text ({exc}); the file is corrupt or not the expected table"
        ) from None
    lines = text.splitlines()
    first = 0
    if header is not None:
        if not lines or lines[0].strip().lstrip("\ufeff") != header:
            got = lines[0].strip() if lines else "an empty file"
            raise DataFormatError(f"{path}: expected the header line {header!r}, got {got!r}")
        first = 1
    rows = []
    for number, line in enumerate(lines[first:], start=first + 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split(sep) if sep is not None else line.split())]
        if len(fields) != columns:
            raise DataFormatError(f"{path}, line {number}: expected {columns} fields, got {len(fields)}: {line!r}")
        rows.append(fields)
    return rows


# ---------------------------------------------------------------------------------------------------------- images
def open_image(source: PathLike | bytes, *, name: str | None = None) -> Image.Image:
    """Open and fully decode one image file.

    Args:
        source: A path, or the file's bytes (e.g. read from a zip archive).
        name: How to name the file in errors (defaults to the path).

    Raises:
        DataNotFoundError: ``source`` is a path that does not exist.
        DataFormatError: The file is not a readable image (corrupt, truncated, or another kind of file).
    """
    label = name or str(source if not isinstance(source, bytes) else "<bytes>")
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()
    except FileNotFoundError:
        raise DataNotFoundError(f"image file {label} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError(f"{label}: not a readable image ({exc}); the file is corrupt or truncated") from None
    return image


def _resize(image: Image.Image, size: int | None, resample: Image.Resampling) -> Image.Image:
    if size is None or image.size == (size, size):
        return image
    return image.resize((size, size), resample)


def decode_image(
    source: PathLike | bytes,
    *,
    name: str | None = None,
    channels: int = 3,
    size: int | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
    invert: bool = False,
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Decode one image file into a uint8 array, converted, optionally cropped, resized and inverted.

    Args:
        source: A path or the file's bytes.
        name: How to name the file in errors.
        channels: 1 (grey, Pillow mode ``L``) or 3 (RGB); any stored mode is converted.
        size: Output side in pixels (square, aspect ratio not kept); ``None`` keeps the stored size.
        resample: Pillow filter used when resizing (``BOX`` for line drawings, ``LANCZOS`` for photos).
        invert: Return ``255 - pixel`` (after resizing), e.g. to make black-on-white ink bright on dark.
        box: ``(left, top, right, bottom)`` crop applied before resizing.

    Returns:
        uint8 array of shape (channels, H, W).

    Raises:
        DataFormatError: The file is not a readable image.
    """
    image = open_image(source, name=name).convert("L" if channels == 1 else "RGB")
    if box is not None:
        image = image.crop(box)
    array = np.asarray(_resize(image, size, resample), dtype=np.uint8)
    if invert:
        array = 255 - array
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def resize_stack(
    images: np.ndarray, size: int | None, *, resample: Image.Resampling = Image.Resampling.BOX
) -> np.ndarray:
    """Resize a stack of uint8 images with the same Pillow filter as :func:`decode_image`.

    Shape:
        images: (N, H, W) grey or (N, H, W, 3) RGB, uint8. Returns (N, size, size[, 3]).
    """
    if size is None or images.shape[1:3] == (size, size):
        return images
    out = np.empty((images.shape[0], size, size, *images.shape[3:]), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(_resize(Image.fromarray(image), size, resample))
    return out


def stack_images(arrays: Sequence[np.ndarray], *, dataset: str) -> torch.Tensor:
    """Stack per-image (C, H, W) arrays into one (N, C, H, W) uint8 tensor.

    Raises:
        DataFormatError: There are no images, or they differ in shape (the message suggests ``size=``).
    """
    if not arrays:
        raise DataFormatError(f"{dataset}: no images were found to load")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataFormatError(
            f"{dataset}: images differ in shape ({', '.join(str(s) for s in sorted(shapes)[:4])}); "
            "pass size=N to resize them all to N×N"
        )
    return torch.from_numpy(np.stack(arrays))


# ---------------------------------------------------------------------------------------------------------- archives
class FileTree:
    """The files of a folder or of a zip archive, addressed by '/'-separated names relative to it.

    Args:
        path: A folder or a ``.zip`` file.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        DataFormatError: ``path`` is a file but not a readable zip archive.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self._names = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())
        elif self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataFormatError(f"{self.path}: not a readable zip archive ({exc}); download it again") from None
            self._names = sorted(i.filename for i in self._zip.infolist() if not i.is_dir())
        else:
            raise DataNotFoundError(f"{self.path} does not exist")

    def names(self) -> list[str]:
        """Every file's name, sorted."""
        return list(self._names)

    def label(self, name: str) -> str:
        """How to name the file ``name`` in messages."""
        return f"{self.path}:{name}" if self._zip is not None else str(self.path / name)

    def read(self, name: str) -> bytes:
        """The bytes of the file ``name``.

        Raises:
            DataFormatError: The archive member is corrupt (bad CRC, truncated archive).
        """
        if self._zip is None:
            return (self.path / name).read_bytes()
        try:
            return self._zip.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise DataFormatError(f"{self.label(name)}: cannot be read from the archive ({exc})") from None

    def close(self) -> None:
        """Close the archive, if any."""
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> FileTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

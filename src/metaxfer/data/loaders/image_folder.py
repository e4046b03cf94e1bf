"""Any one-folder-per-class image tree: ``root/<class>/<image files>``.

Class names are the folder names, sorted; hidden files and folders (names starting with ``.``) are skipped, and so
are files whose ending is not in ``extensions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import (
    IMAGE_EXTENSIONS,
    PathLike,
    choose,
    decode_image,
    require_root,
    stack_images,
)
from metaxfer.errors import DataFormatError, DataNotFoundError

__all__ = ["list_image_folder", "load_image_folder"]


_ORIGIN = "Lay the images out as root/<class name>/<image files>, one folder per class."


def list_image_folder(
    root: PathLike | None, *, extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> tuple[list[str], list[list[Path]]]:
    """The class folders under ``root`` and the image files in each, both sorted.

    Returns:
        ``(class_names, files)`` with ``files[k]`` the images of class ``k``.

    Raises:
        DataNotFoundError: ``root`` is missing, not a folder, or holds no class folders.
        DataFormatError: A class folder holds no image files (the message names it and the endings looked for).
    """
    root = require_root(root, dataset="image-folder", expected="one sub-folder of images per class", origin=_ORIGIN)
    if not root.is_dir():
        raise DataNotFoundError(f"image-folder: {root} is not a folder. {_ORIGIN}")
    endings = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataNotFoundError(f"image-folder: {root} holds no class folders. {_ORIGIN}")
    files = []
    for folder in classes:
        found = sorted(
            p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in endings
        )
        if not found:
            raise DataFormatError(
                f"image-folder: class folder {folder} holds no images with endings {', '.join(endings)}; "
                "remove the folder or pass extensions=... to match its files"
            )
        files.append(found)
    return [p.name for p in classes], files


def load_image_folder(
    root: PathLike,
    *,
    size: int | None = None,
    channels: int = 3,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    invert: bool = False,
) -> Domain:
    """Load a one-folder-per-class image tree.

    Args:
        root: The folder whose sub-folders are the classes.
        size: Resize every image to ``size``×``size`` (LANCZOS); ``None`` keeps the stored size, which must then be
            the same for every image.
        channels: 1 (grey) or 3 (RGB).
        extensions: File endings read as images (case-insensitive, with or without the dot).
        invert: Store ``255 - pixel``, e.g. to make dark-on-light drawings bright on dark like MNIST.

    Returns:
        The domain; images uint8 (N, channels, H, W); class names (and keys) are the folder names; instance ``file``
        per image (its path relative to ``root``).

    Raises:
        DataNotFoundError: ``root`` is missing or holds no class folders.
        DataFormatError: A class folder holds no images, an image is unreadable (named), or sizes differ and
            ``size`` is ``None``.
    """
    choose(channels, (1, 3), option="channels", dataset="image-folder")
    class_names, files = list_image_folder(root, extensions=extensions)
    paths = [p for class_files in files for p in class_files]
    images = [decode_image(p, channels=channels, size=size, invert=invert) for p in paths]
    base = Path(root).expanduser()
    return Domain(
        name="image-folder",
        images=stack_images(images, dataset=f"image-folder {base}"),
        labels=torch.repeat_interleave(torch.arange(len(files)), torch.tensor([len(f) for f in files])),
        class_names=class_names,
        instances={"file": [p.relative_to(base).as_posix() for p in paths]},
        metadata={
            "source": str(base),
            "license": "as given by the images' owner",
            "description": f"images from the class folders of {base}",
        },
    )


def _image_folder_files(
    root: PathLike | None = None,
    *,
    size: int | None = None,
    channels: int = 3,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    invert: bool = False,
) -> list[str]:
    _, files = list_image_folder(root, extensions=extensions)
    return [str(p) for class_files in files for p in class_files]


register_domain(
    DomainSpec(
        name="image-folder",
        build=load_image_folder,
        description="any one-folder-per-class image tree: root/<class>/<images>",
        source="user path (root=)",
        license="as given by the images' owner",
        default=False,
        needs_root=True,
        fingerprint_files=_image_folder_files,
    )
)

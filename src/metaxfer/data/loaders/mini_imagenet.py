"""mini-ImageNet in the Ravi & Larochelle (2017) split: 100 ImageNet classes, 600 images each, 64/16/20 classes.

On-disk layout: ``train.csv``, ``val.csv``, ``test.csv`` (header ``filename,label``; label = ImageNet WordNet id)
over an ``images/`` folder of JPEGs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import PathLike, choose, decode_image, read_table, require_root, stack_images
from metaxfer.errors import DataNotFoundError

__all__ = ["load_mini_imagenet"]

_ORIGIN = (
    "mini-ImageNet is built from ImageNet (https://image-net.org, registration needed) with the split CSVs of Ravi & "
    "Larochelle (https://github.com/twitter-research/meta-learning-lstm, data/miniImagenet/); put the CSVs next to "
    "an images/ folder of the listed JPEGs."
)
_EXPECTED = "train.csv, val.csv, test.csv and images/"


def _entries(root: PathLike | None, split: str) -> tuple[Path, list[Path], list[str]]:
    """The split's CSV, its image paths and their WordNet ids."""
    choose(split, ["train", "val", "test"], option="split", dataset="mini-imagenet")
    root = require_root(root, dataset="mini-imagenet", expected=_EXPECTED, origin=_ORIGIN)
    csv = root / f"{split}.csv"
    if not csv.is_file():
        raise DataNotFoundError(f"mini-imagenet: {csv} does not exist; expected {_EXPECTED} in {root}. {_ORIGIN}")
    if not (root / "images").is_dir():
        raise DataNotFoundError(
            f"mini-imagenet: {root / 'images'} (the JPEGs listed in {csv}) does not exist. {_ORIGIN}"
        )
    rows = read_table(csv, 2, sep=",", header="filename,label")
    return csv, [root / "images" / file for file, _ in rows], [wnid for _, wnid in rows]


def load_mini_imagenet(root: PathLike, *, split: str = "train", size: int = 84) -> Domain:
    """Load one split of mini-ImageNet.

    Args:
        root: Folder holding ``train.csv``, ``val.csv``, ``test.csv`` and ``images/``.
        split: ``"train"`` (64 classes), ``"val"`` (16) or ``"test"`` (20).
        size: Output side in pixels (images are resized with Pillow's LANCZOS filter, aspect ratio not kept).

    Returns:
        The domain; images uint8 (N, 3, size, size) RGB; classes sorted by WordNet id, class keys
        ``imagenet:<wnid>``.

    Raises:
        DataNotFoundError: A CSV, the images folder or a listed image is missing (the message says where mini-ImageNet
            comes from).
        DataFormatError: A CSV is malformed, or an image is unreadable (named).
    """
    csv, paths, wnids = _entries(root, split)
    classes = sorted(set(wnids))
    index = {wnid: i for i, wnid in enumerate(classes)}
    images = [decode_image(p, channels=3, size=size) for p in paths]
    return Domain(
        name="mini-imagenet",
        images=stack_images(images, dataset="mini-imagenet"),
        labels=torch.tensor([index[w] for w in wnids], dtype=torch.int64),
        class_names=classes,
        class_keys=[f"imagenet:{w}" for w in classes],
        metadata={
            "source": str(csv.parent),
            "license": "ImageNet terms of access (non-commercial research and education)",
            "description": f"mini-ImageNet ({split} split of Ravi & Larochelle), {size}×{size} RGB",
            "split": split,
        },
    )


def _mini_imagenet_files(root: PathLike | None = None, *, split: str = "train", size: int = 84) -> list[str]:
    csv, paths, _ = _entries(root, split)
    return [str(csv), *map(str, paths)]


register_domain(
    DomainSpec(
        name="mini-imagenet",
        build=load_mini_imagenet,
        description="mini-ImageNet (Ravi & Larochelle split: train/val/test CSVs over images/)",
        source="user path (root=)",
        license="ImageNet terms of access (non-commercial research)",
        default=False,
        needs_root=True,
        fingerprint_files=_mini_imagenet_files,
    )
)

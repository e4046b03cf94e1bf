"""Loaders for the classic datasets from a local path, in the formats users have on disk.

Importing this package registers a domain for each (they take a ``root=`` option).
"""

from __future__ import annotations

from metaxfer.data.loaders.cub import load_cub
from metaxfer.data.loaders.idx import load_fashion_mnist, load_kmnist, load_mnist, read_idx
from metaxfer.data.loaders.image_folder import load_image_folder
from metaxfer.data.loaders.mini_imagenet import load_mini_imagenet
from metaxfer.data.loaders.mnist_m import load_mnist_m
from metaxfer.data.loaders.omniglot import (
    OneShotRun,
    load_omniglot,
    load_omniglot_background,
    load_omniglot_runs,
    load_omniglot_small1,
    load_omniglot_small2,
)
from metaxfer.data.loaders.svhn import load_svhn
from metaxfer.data.loaders.usps import load_usps

__all__ = [
    "OneShotRun",
    "load_cub",
    "load_fashion_mnist",
    "load_image_folder",
    "load_kmnist",
    "load_mini_imagenet",
    "load_mnist",
    "load_mnist_m",
    "load_omniglot",
    "load_omniglot_background",
    "load_omniglot_runs",
    "load_omniglot_small1",
    "load_omniglot_small2",
    "load_svhn",
    "load_usps",
    "read_idx",
]

"""Backbones for few-shot learning, each with a body/head split, and their registry.

Every backbone is a :class:`~metaxfer.models.base.Backbone`: ``forward_features(x, norm=...)`` maps images to flat
features, ``forward_head(features)`` maps features to logits, ``forward`` does both (or only the first when built
without a head). Batch norm follows an explicit mode (:mod:`metaxfer.models.norm`).

Example:
    >>> import torch
    >>> net = create_backbone("conv4", in_channels=1, image_size=28, num_classes=5)
    >>> net(torch.rand(10, 1, 28, 28)).shape
    torch.Size([10, 5])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from metaxfer.models.base import Backbone
from metaxfer.models.conv4 import Conv4
from metaxfer.models.heads import CosineHead, LinearHead, create_head
from metaxfer.models.mlp import MLP
from metaxfer.models.norm import NORM_MODES, EpisodicBatchNorm2d, NormPlan
from metaxfer.models.resnet12 import ResNet12
from metaxfer.registry import Registry

__all__ = [
    "BACKBONES",
    "create_backbone",
    "Backbone",
    "Conv4",
    "ResNet12",
    "MLP",
    "LinearHead",
    "CosineHead",
    "create_head",
    "EpisodicBatchNorm2d",
    "NormPlan",
    "NORM_MODES",
]

#: Backbone constructors by name; each takes keyword arguments only.
BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")
BACKBONES.register("conv4", Conv4)
BACKBONES.register("resnet12", ResNet12)
BACKBONES.register("mlp", MLP)


def create_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build a registered backbone.

    Args:
        name: Registry name (``"conv4"``, ``"resnet12"``, ``"mlp"``).
        **kwargs: The backbone's keyword arguments, e.g. ``in_channels``, ``image_size``, ``num_classes``,
            ``norm``.

    Returns:
        The backbone, in training mode.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the valid names).
        TypeError: An argument the backbone does not take (the message lists those it does).
    """
    ctor = BACKBONES.get(name)
    params = inspect.signature(ctor).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(
                f"backbone {name!r} does not take {', '.join(unknown)}; its options are: {', '.join(params)}"
            )
    return ctor(**kwargs)

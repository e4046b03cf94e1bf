"""A small multi-layer perceptron on flattened images: a quick backbone for tests, toy problems and sanity checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.models.base import Backbone
from metaxfer.models.norm import NormPlan

__all__ = ["MLP"]


class MLP(Backbone):
    """Flatten, then ``Linear → ReLU`` layers; no batch norm (``norm_mode`` is ``None``).

    Args:
        in_channels: Image channels.
        image_size: Image side in pixels.
        hidden: Widths of the hidden layers; the last one is the feature size.
        num_classes: Head outputs; 0 for no head.
        head: ``"linear"`` or ``"cosine"``.
        head_scale: Temperature of the cosine head.

    Shape:
        Input (B, in_channels, image_size, image_size); features (B, hidden[-1]).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 28,
        hidden: Sequence[int] = (128, 64),
        num_classes: int = 0,
        head: str = "linear",
        head_scale: float = 10.0,
    ) -> None:
        super().__init__()
        widths = [in_channels * image_size * image_size, *[int(h) for h in hidden]]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"MLP needs at least one positive hidden width, got {list(hidden)}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norm_mode = None
        self.num_features = widths[-1]
        self._init_head(num_classes, head, head_scale)

    def forward_features(self, x: torch.Tensor, *, norm: NormPlan | None = None) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            x = F.relu(layer(x))
        return x

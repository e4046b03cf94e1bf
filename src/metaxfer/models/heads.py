"""Classifier heads: a linear layer and the cosine classifier of Baseline++.

Both heads can also run with one set of weights *per task* (:meth:`forward_batched`), which is how ANIL adapts the
heads of a whole meta-batch of tasks in one pass instead of looping over tasks.

References:
    Chen, Liu, Kira, Wang, Huang. "A Closer Look at Few-shot Classification", ICLR 2019 (the cosine classifier).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LinearHead", "CosineHead", "HEADS", "create_head"]


class LinearHead(nn.Linear):
    """A linear classifier ``logits = x Wᵀ + b``.

    Args:
        in_features: Feature size D.
        num_classes: Output classes C.

    Shape:
        Input (B, D); output (B, C).
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__(in_features, num_classes)

    def forward_batched(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply one head per task.

        Args:
            x: Features of T tasks, (T, B, D).
            params: ``{"weight": (T, C, D), "bias": (T, C)}``.

        Returns:
            Logits (T, B, C).
        """
        return torch.baddbmm(params["bias"].unsqueeze(1), x, params["weight"].transpose(1, 2))


class CosineHead(nn.Module):
    """Cosine-similarity classifier: ``logits_c = scale · cos(x, w_c)`` (Baseline++ of Chen et al. 2019).

    Args:
        in_features: Feature size D.
        num_classes: Output classes C.
        scale: Multiplier of the cosine similarities (a fixed temperature).

    Shape:
        Input (B, D); output (B, C).
    """

    def __init__(self, in_features: int, num_classes: int, *, scale: float = 10.0) -> None:
        super().__init__()
        self.in_features, self.num_classes, self.scale = in_features, num_classes, float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform initialisation like ``nn.Linear``'s weight."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, scale={self.scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T

    def forward_batched(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply one head per task.

        Args:
            x: Features of T tasks, (T, B, D).
            params: ``{"weight": (T, C, D)}``.

        Returns:
            Logits (T, B, C).
        """
        return self.scale * torch.bmm(F.normalize(x, dim=-1), F.normalize(params["weight"], dim=-1).transpose(1, 2))


#: Head kinds by name.
HEADS: dict[str, type[nn.Module]] = {"linear": LinearHead, "cosine": CosineHead}


def create_head(kind: str, in_features: int, num_classes: int, *, scale: float = 10.0) -> nn.Module:
    """Build a classifier head.

    Args:
        kind: ``"linear"`` or ``"cosine"``.
        in_features: Feature size D.
        num_classes: Output classes C (>= 1).
        scale: Cosine head temperature (ignored by the linear head).

    Returns:
        The head module.

    Raises:
        ValueError: Unknown ``kind`` or ``num_classes < 1``.
    """
    if num_classes < 1:
        raise ValueError(f"a classifier head needs num_classes >= 1, got {num_classes}")
    if kind == "linear":
        return LinearHead(in_features, num_classes)
    if kind == "cosine":
        return CosineHead(in_features, num_classes, scale=scale)
    raise ValueError(f"unknown head {kind!r}: use 'linear' or 'cosine'")

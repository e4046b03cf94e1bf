"""The face every backbone shows: ``forward_features`` (the body), ``forward_head`` (the classifier), ``forward``.

The body/head split (as in timm) is what the algorithms rely on: ANIL adapts only the head's parameters,
ProtoNets and Matching Networks use only the features, Baseline(++) swaps the head for a new one per episode.
"""

from __future__ import annotations

import torch
from torch import nn

from metaxfer.models.heads import create_head
from metaxfer.models.norm import NormPlan

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """Base class of metaxfer backbones.

    Subclasses build their body, set ``num_features`` and call :meth:`_init_head`, then implement
    :meth:`forward_features`.

    Attributes:
        num_features: Size D of the feature vector ``forward_features`` returns.
        num_classes: Outputs of the head; 0 when there is no head (``forward`` then returns features).
        norm_mode: The batch-norm mode of the body (see :mod:`metaxfer.models.norm`), or ``None`` when the body has
            no batch norm.
        head: The classifier head, or ``None``.
    """

    num_features: int
    num_classes: int
    norm_mode: str | None
    head: nn.Module | None

    def _init_head(self, num_classes: int, head: str, head_scale: float) -> None:
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 = no head), got {num_classes}")
        self.num_classes = num_classes
        self.head_kind = head
        self.head = create_head(head, self.num_features, num_classes, scale=head_scale) if num_classes else None

    def forward_features(self, x: torch.Tensor, *, norm: NormPlan | None = None) -> torch.Tensor:
        """The body: images to flat feature vectors.

        Args:
            x: Float images (B, C, H, W).
            norm: Task grouping for batch norm (see :class:`~metaxfer.models.norm.NormPlan`).

        Returns:
            Features (B, num_features).
        """
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The head: features (B, D) to logits (B, num_classes).

        Raises:
            RuntimeError: The backbone was built without a head (``num_classes=0``).
        """
        if self.head is None:
            raise RuntimeError(
                f"{type(self).__name__} was built without a head (num_classes=0); pass num_classes=N to create one"
            )
        return self.head(features)

    def forward(self, x: torch.Tensor, *, norm: NormPlan | None = None) -> torch.Tensor:
        """Logits (B, num_classes), or features (B, num_features) when there is no head."""
        features = self.forward_features(x, norm=norm)
        return features if self.head is None else self.head(features)

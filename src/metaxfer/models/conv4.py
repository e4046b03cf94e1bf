"""Conv-4: the standard few-shot backbone of Omniglot and mini-ImageNet papers.

Four blocks of [3×3 convolution with ``hidden`` filters, batch norm, ReLU, 2×2 max-pool], then flattening. On
28×28 inputs the features are ``hidden`` × 1 × 1; on 84×84 inputs ``hidden`` × 5 × 5.

References:
    Vinyals et al. "Matching Networks for One Shot Learning", NeurIPS 2016; Finn, Abbeel, Levine. "Model-Agnostic
    Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017; Snell, Swersky, Zemel. "Prototypical Networks
    for Few-shot Learning", NeurIPS 2017.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.models.base import Backbone
from metaxfer.models.norm import EpisodicBatchNorm2d, NormMode, NormPlan, check_norm_mode

__all__ = ["ConvBlock", "Conv4"]


class ConvBlock(nn.Module):
    """3×3 convolution (padding 1), :class:`EpisodicBatchNorm2d`, ReLU, optional 2×2 max-pool.

    Args:
        in_channels: Input channels.
        out_channels: Filters.
        norm_mode: Batch-norm mode.
        pool: Whether to max-pool.

    Shape:
        (B, in, H, W) to (B, out, H//2, W//2) with pooling, (B, out, H, W) without.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, norm_mode: NormMode = "support", pool: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = EpisodicBatchNorm2d(out_channels, mode=norm_mode)
        self.pool = pool

    def forward(self, x: torch.Tensor, norm: NormPlan | None = None) -> torch.Tensor:
        x = self.bn(self.conv(x), norm)
        # max-pool before ReLU: the same values and gradients as ReLU then max-pool (both are monotone, and a tie
        # of non-positive maxima gets a zero gradient either way), with the ReLU on a quarter of the elements.
        return F.relu(F.max_pool2d(x, 2) if self.pool else x)


class Conv4(Backbone):
    """The Conv-4 backbone, with an optional classifier head.

    Args:
        in_channels: Image channels (1 or 3).
        hidden: Filters of every block (64 in the literature).
        depth: Number of blocks (4 gives Conv-4).
        image_size: Input side in pixels, used to size the features.
        num_classes: Head outputs; 0 for no head.
        head: ``"linear"`` or ``"cosine"``.
        head_scale: Temperature of the cosine head.
        norm: Batch-norm mode: ``"support"``, ``"transductive"`` or ``"running"``.

    Shape:
        Input (B, in_channels, image_size, image_size); features (B, hidden · s²) with s = image_size // 2**depth.

    Raises:
        ValueError: The image is too small for ``depth`` poolings, or another argument is out of range.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        hidden: int = 64,
        depth: int = 4,
        image_size: int = 28,
        num_classes: int = 0,
        head: str = "linear",
        head_scale: float = 10.0,
        norm: NormMode = "support",
    ) -> None:
        super().__init__()
        check_norm_mode(norm)
        if in_channels < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"Conv4 needs in_channels, hidden, depth >= 1; got {in_channels}, {hidden}, {depth}")
        side = image_size // 2**depth
        if side < 1:
            raise ValueError(
                f"Conv4 with depth {depth} pools {image_size}px images to nothing: use images of at least "
                f"{2**depth}px or a smaller depth"
            )
        widths = [in_channels] + [hidden] * depth
        self.blocks = nn.ModuleList(ConvBlock(a, b, norm_mode=norm) for a, b in zip(widths[:-1], widths[1:]))
        self.norm_mode = norm
        self.num_features = hidden * side * side
        self._init_head(num_classes, head, head_scale)

    def forward_features(self, x: torch.Tensor, *, norm: NormPlan | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, norm)
        return x.flatten(1)

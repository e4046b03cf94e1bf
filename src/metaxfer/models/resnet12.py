"""ResNet-12: four residual blocks of three 3×3 convolutions each, the stronger few-shot backbone.

Each block is [conv3×3, BN, LeakyReLU(0.1)] × 2, conv3×3, BN, plus a 1×1 convolution + BN shortcut, then
LeakyReLU(0.1) and a 2×2 max-pool; global average pooling gives the features. Widths (64, 160, 320, 640) are the
usual ones; smaller widths make it practical on a CPU. DropBlock regularisation is left out.

References:
    Oreshkin, Rodríguez López, Lacoste. "TADAM: Task dependent adaptive metric for improved few-shot learning",
    NeurIPS 2018; Lee, Maji, Ravichandran, Soatto. "Meta-Learning with Differentiable Convex Optimization", CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.models.base import Backbone
from metaxfer.models.norm import EpisodicBatchNorm2d, NormMode, NormPlan, check_norm_mode

__all__ = ["ResidualBlock", "ResNet12"]


class ResidualBlock(nn.Module):
    """One ResNet-12 block.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        norm_mode: Batch-norm mode.

    Shape:
        (B, in, H, W) to (B, out, H//2, W//2).
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm_mode: NormMode = "support") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = EpisodicBatchNorm2d(out_channels, mode=norm_mode)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = EpisodicBatchNorm2d(out_channels, mode=norm_mode)
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn3 = EpisodicBatchNorm2d(out_channels, mode=norm_mode)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn_shortcut = EpisodicBatchNorm2d(out_channels, mode=norm_mode)

    def forward(self, x: torch.Tensor, norm: NormPlan | None = None) -> torch.Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x), norm), 0.1)
        out = F.leaky_relu(self.bn2(self.conv2(out), norm), 0.1)
        out = self.bn3(self.conv3(out), norm)
        out = F.leaky_relu(out + self.bn_shortcut(self.shortcut(x), norm), 0.1)
        return F.max_pool2d(out, 2)


class ResNet12(Backbone):
    """ResNet-12 with global average pooling and an optional classifier head.

    Args:
        in_channels: Image channels.
        channels: Widths of the four blocks.
        image_size: Input side in pixels (must survive four 2× poolings).
        num_classes: Head outputs; 0 for no head.
        head: ``"linear"`` or ``"cosine"``.
        head_scale: Temperature of the cosine head.
        norm: Batch-norm mode: ``"support"``, ``"transductive"`` or ``"running"``.

    Shape:
        Input (B, in_channels, image_size, image_size); features (B, channels[-1]).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        channels: Sequence[int] = (64, 160, 320, 640),
        image_size: int = 28,
        num_classes: int = 0,
        head: str = "linear",
        head_scale: float = 10.0,
        norm: NormMode = "support",
    ) -> None:
        super().__init__()
        check_norm_mode(norm)
        channels = [int(c) for c in channels]
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"ResNet12 needs four positive block widths, got {channels}")
        if image_size < 16:
            raise ValueError(f"ResNet12 pools four times: images must be at least 16px, got {image_size}")
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(ResidualBlock(a, b, norm_mode=norm) for a, b in zip(widths[:-1], widths[1:]))
        self.norm_mode = norm
        self.num_features = channels[-1]
        self._init_head(num_classes, head, head_scale)

    def forward_features(self, x: torch.Tensor, *, norm: NormPlan | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, norm)
        return x.mean(dim=(2, 3))

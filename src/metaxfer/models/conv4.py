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

__all__ = ["ConvBlock", "Conv4", "conv3x3_batch_norm", "FUSED_MAX_CHANNELS"]

#: Input channels up to which :class:`ConvBlock` runs :func:`conv3x3_batch_norm` on the CPU.
FUSED_MAX_CHANNELS = 4


def conv3x3_batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    *,
    eps: float,
    tasks: int = 1,
    stat_rows: int | None = None,
) -> torch.Tensor:
    """A 3×3 convolution (stride 1, padding 1) followed by batch norm on batch statistics, as one matrix multiply.

    The convolution is linear in the image patches: with the patch matrix P (im2col, one row per pixel, C_in·9
    columns), ``z = P K + b``. Batch-norm statistics of z over a set of rows S are therefore ``mean_S(P) K + b`` and
    ``diag(Kᵀ Cov_S(P) K)``, taken from the small C_in·9 × C_in·9 covariance of the patches instead of the large
    activation, and the normalisation folds into the kernel:
    ``BN(z) = P (K ⊙ s) + β + (b − mean_S(z)) ⊙ s`` with ``s = γ / sqrt(var_S(z) + eps)``. One multiply then yields
    the normalised maps: no batch-norm passes over the (B, C_out, H, W) activation forward or backward, and every
    derivative, MAML's second ones included, is a matrix product. It pays where C_in is small (the first block, on
    grey or RGB images); the values and gradients are those of ``conv2d`` then batch norm, up to rounding.

    Args:
        x: Input (B, C_in, H, W).
        weight: Filters (C_out, C_in, 3, 3).
        bias: (C_out,) or ``None``.
        gamma: Batch-norm scale (C_out,).
        beta: Batch-norm shift (C_out,).
        eps: Added to the variance.
        tasks: The batch holds this many equal blocks of rows, each normalised with its own statistics.
        stat_rows: Leading rows of each block whose statistics normalise the block (``None``: all of them).

    Returns:
        (B, C_out, H, W), channels-last (a permuted view of a (B, H, W, C_out) matrix), the layout in which the
        max-pool, batch norm and convolutions that follow run fastest on the CPU.
    """
    b, c, h, w = x.shape
    c_out, k = weight.shape[0], c * 9
    rows = b // tasks
    stat_rows = rows if stat_rows is None else stat_rows
    patches = F.pad(x, (1, 1, 1, 1)).unfold(2, 3, 1).unfold(3, 3, 1)  # (B, C, H, W, 3, 3), a view
    cols = patches.permute(0, 2, 3, 1, 4, 5).reshape(tasks, rows * h * w, k)
    kernel = weight.reshape(c_out, k).t()  # (k, C_out)
    with torch.autocast(x.device.type, enabled=False):  # statistics in full precision under mixed precision
        kernel32 = kernel.float() if kernel.dtype in (torch.float16, torch.bfloat16) else kernel
        stats = cols[:, : stat_rows * h * w].to(kernel32.dtype)
        mean_p = stats.mean(1, keepdim=True)  # (T, 1, k)
        centred = stats - mean_p
        cov = centred.transpose(1, 2) @ centred / centred.shape[1]  # (T, k, k)
        var = ((cov @ kernel32) * kernel32).sum(1)  # (T, C_out)
        scale = gamma * torch.rsqrt(var + eps)
        offset = kernel32.new_zeros(c_out) if bias is None else bias
        shift = beta + (offset - (mean_p.squeeze(1) @ kernel32 + offset)) * scale  # (T, C_out)
        folded = torch.cat([kernel32.unsqueeze(0) * scale.unsqueeze(1), shift.unsqueeze(1)], dim=1)  # (T, k+1, C_out)
    folded = folded.to(cols.dtype)
    cols = torch.cat([cols, cols.new_ones(tasks, rows * h * w, 1)], dim=2)
    out = cols[0] @ folded[0] if tasks == 1 else torch.bmm(cols, folded)
    return out.view(b, h, w, c_out).permute(0, 3, 1, 2)


class ConvBlock(nn.Module):
    """3×3 convolution (padding 1), :class:`EpisodicBatchNorm2d`, ReLU, optional 2×2 max-pool.

    On the CPU, a block with at most :data:`FUSED_MAX_CHANNELS` input channels whose batch norm uses batch statistics
    (modes ``"support"`` and ``"transductive"``) computes convolution and batch norm together with
    :func:`conv3x3_batch_norm`; its output, and so everything after it, is then channels-last.

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
        if x.device.type == "cpu" and self.conv.in_channels <= FUSED_MAX_CHANNELS and self.bn.mode != "running":
            plan = norm or NormPlan()
            x = conv3x3_batch_norm(
                x, self.conv.weight, self.conv.bias, self.bn.weight, self.bn.bias, eps=self.bn.eps,
                tasks=plan.tasks, stat_rows=self.bn.statistics_rows(x.shape[0], plan),
            )
        else:
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

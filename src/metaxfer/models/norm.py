"""Batch normalisation for few-shot episodes, with the choice of statistics made explicit.

In an episode the network sees a support set and a query set. Plain batch norm in training mode normalises every
forward pass with the statistics of that pass's own batch, so the prediction for one query depends on the other
queries (a transductive setting), and batching support and query together lets query statistics leak into support
predictions. :class:`EpisodicBatchNorm2d` makes the choice a named *mode*:

``"support"`` (default)
    Each task is normalised with the batch statistics of its **support** rows only, and queries are normalised with
    those same statistics. A query's prediction depends on the support set and on itself, never on other queries,
    and query data never changes support predictions. To use it, forward support and query together and pass a
    :class:`NormPlan` that says how many leading rows of each task are support rows; a forward without a plan
    treats the whole batch as the support set.
``"transductive"``
    Every forward pass uses its own batch statistics (per task when the plan groups several tasks). Algorithms
    forward the support set and the query set separately, so queries are normalised with query statistics: the
    behaviour of the MAML paper's reference code.
``"running"``
    Ordinary ``nn.BatchNorm2d`` behaviour: in training mode the whole forward batch gives the statistics and
    updates running averages; in evaluation mode (``module.eval()``) the running averages are used, so each test
    image is normalised independently of every other image.

The per-task grouping lets one forward pass embed many tasks (ProtoNets, ANIL, Matching Networks) while each task
is still normalised with only its own statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NormMode", "NORM_MODES", "NormPlan", "EpisodicBatchNorm2d", "check_norm_mode"]

NormMode = Literal["support", "transductive", "running"]

#: The batch-norm modes, default first.
NORM_MODES: tuple[str, ...] = ("support", "transductive", "running")


def check_norm_mode(mode: str) -> str:
    """Return ``mode`` if it is a valid batch-norm mode.

    Raises:
        ValueError: ``mode`` is not one of :data:`NORM_MODES`.
    """
    if mode not in NORM_MODES:
        raise ValueError(
            f"unknown batch-norm mode {mode!r}: use 'support' (support-set statistics, the default), "
            "'transductive' (each forward's own statistics) or 'running' (running averages at evaluation)"
        )
    return mode


@dataclass(frozen=True)
class NormPlan:
    """How the rows of one forward batch are grouped into tasks for normalisation.

    The batch holds ``tasks`` equal blocks of rows, one per task, one after the other; within each block the first
    ``support`` rows are the task's support set.

    Attributes:
        tasks: Number of tasks stacked in the batch (the batch size must be a multiple of it).
        support: Leading rows of each task whose statistics normalise the whole task in ``"support"`` mode; ``None``
            means every row of the task. Ignored by the other modes.
    """

    tasks: int = 1
    support: int | None = None

    def __post_init__(self) -> None:
        if self.tasks < 1:
            raise ValueError(f"NormPlan.tasks must be >= 1, got {self.tasks}")
        if self.support is not None and self.support < 1:
            raise ValueError(f"NormPlan.support must be >= 1 or None, got {self.support}")


class EpisodicBatchNorm2d(nn.Module):
    """Batch norm over (N, C, H, W) whose statistics follow an explicit :data:`NormMode`.

    Args:
        num_features: Channels C.
        mode: ``"support"``, ``"transductive"`` or ``"running"`` (see the module documentation).
        eps: Added to the variance.
        momentum: Running-average momentum (``"running"`` mode only).

    Shape:
        Input (B, C, H, W); output the same. With a plan of T tasks, B must be a multiple of T.
    """

    def __init__(
        self, num_features: int, *, mode: NormMode = "support", eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.mode = check_norm_mode(mode)
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        if mode == "running":
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

    def reset_parameters(self) -> None:
        """Scale 1, shift 0, running statistics reset."""
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            if self.mode == "running":
                self.running_mean.zero_()
                self.running_var.fill_(1.0)

    def extra_repr(self) -> str:
        return f"{self.num_features}, mode={self.mode!r}, eps={self.eps}"

    def statistics_rows(self, batch: int, plan: NormPlan) -> int:
        """How many leading rows of each task give that task's statistics (modes ``"support"``/``"transductive"``).

        Args:
            batch: Rows B of the forward batch.
            plan: The task grouping.

        Returns:
            The statistics rows per task (at most ``batch // plan.tasks``).

        Raises:
            ValueError: ``batch`` is not a multiple of ``plan.tasks``.
        """
        if batch % plan.tasks:
            raise ValueError(f"batch of {batch} rows cannot be split into {plan.tasks} equal tasks")
        rows = batch // plan.tasks
        return rows if self.mode == "transductive" or plan.support is None else min(plan.support, rows)

    def forward(self, x: torch.Tensor, norm: NormPlan | None = None) -> torch.Tensor:
        """Normalise ``x`` according to the mode and ``norm`` (the task grouping).

        Args:
            x: Feature maps (B, C, H, W).
            norm: Task grouping; ``None`` means one task whose rows are all support rows.

        Returns:
            The normalised, scaled and shifted maps, shape (B, C, H, W).
        """
        if self.mode == "running":
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
            )
        plan = norm or NormPlan()
        stat_rows = self.statistics_rows(x.shape[0], plan)
        rows = x.shape[0] // plan.tasks
        if plan.tasks == 1 and stat_rows == rows:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        grouped = x.reshape(plan.tasks, rows, *x.shape[1:])
        stats = grouped if stat_rows == rows else grouped[:, :stat_rows]
        if stats.dtype in (torch.float16, torch.bfloat16):  # statistics in float32 under mixed precision
            stats = stats.float()
        var, mean = torch.var_mean(stats, dim=(1, 3, 4), correction=0, keepdim=True)
        scale = self.weight.view(1, 1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        shift = self.bias.view(1, 1, -1, 1, 1) - mean * scale
        return (grouped * scale.to(x.dtype) + shift.to(x.dtype)).reshape(x.shape)

"""Optimisers and learning-rate schedules from the ``train`` section of a config.

Methods build their optimisers with :func:`optimizer_for` (or by hand, e.g. two learning rates for a GAN); the
engine attaches the schedule of :func:`lr_factor` to every optimiser with ``torch.optim.lr_scheduler.LambdaLR``, whose
state is plain data and goes into checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from metaxfer.engine.config import TrainConfig

__all__ = ["optimizer_for", "lr_factor", "make_scheduler", "scale_learning_rate"]


def optimizer_for(params: Iterable[torch.nn.Parameter] | Iterable[dict], train: TrainConfig, *, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimiser ``train.optimizer`` over ``params``.

    Args:
        params: Parameters or parameter groups.
        train: The ``train`` section (optimizer, lr, weight_decay, momentum).
        lr: Use this learning rate instead of ``train.lr``.

    Returns:
        An Adam, AdamW or SGD (with ``train.momentum``) optimiser.
    """
    rate = train.lr if lr is None else lr
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=rate, weight_decay=train.weight_decay)
    if train.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=rate, weight_decay=train.weight_decay)
    if train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=rate, momentum=train.momentum, weight_decay=train.weight_decay)
    raise ValueError(f"unknown optimizer {train.optimizer!r}; choose adam, adamw or sgd")


def lr_factor(train: TrainConfig) -> Callable[[int], float]:
    """The schedule: a function of the number of completed iterations giving the factor of the peak rate.

    Linear warm-up over ``warmup_steps`` (from ``1/warmup_steps`` to 1), then ``constant`` (1), ``cosine`` (from 1
    down to ``min_lr_ratio`` at ``steps``), ``linear`` (likewise, on a straight line) or ``step``
    (× ``decay_gamma`` every ``decay_every`` iterations).
    """
    warmup, total = train.warmup_steps, train.steps
    kind, floor = train.schedule, train.min_lr_ratio

    def factor(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        s = t - warmup
        if kind == "constant":
            return 1.0
        if kind == "step":
            return train.decay_gamma ** (s // train.decay_every)
        p = min(1.0, s / max(1, total - warmup))
        if kind == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
        return 1.0 - (1.0 - floor) * p  # linear

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` to every parameter group of ``optimizer``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train))


def scale_learning_rate(scheduler: torch.optim.lr_scheduler.LambdaLR, factor: float) -> None:
    """Multiply the peak learning rate of a scheduled optimiser by ``factor``, now and for the rest of the run."""
    scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["initial_lr"] = base
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]  # what get_last_lr() reports

"""Reptile: move the initialisation towards the weights each task's plain SGD reaches.

For a meta-batch of T tasks with adapted weights φ_t (``inner_steps`` SGD steps on the support set from θ), the outer
update is ``θ ← θ + ε · (1/T) Σ_t (φ_t − θ)``. It is expressed as a loss so that any optimiser can apply it: the
surrogate ``½ Σ_t ‖θ − stopgrad(φ_t)‖² / T`` has gradient ``θ − mean_t φ_t``, so plain SGD with learning rate ε
(the default outer optimiser, ``outer_lr`` = ε) performs exactly the Reptile step.

References:
    Nichol, Achiam, Schulman. "On First-Order Meta-Learning Algorithms", arXiv:1803.02999, 2018.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.meta.base import MetaAlgorithm, register_algorithm
from metaxfer.meta.common import InnerLoopResult, Task, accuracy, inner_loop, query_logits

__all__ = ["Reptile"]


@register_algorithm("reptile")
class Reptile(MetaAlgorithm):
    """Reptile with a plain-SGD inner loop on the support set.

    Args:
        backbone: A backbone with a head of ``ways`` outputs.
        inner_lr: Inner SGD step size.
        inner_steps: Inner SGD steps per task during meta-training.
        eval_inner_steps: Inner steps in :meth:`predict` (default: ``inner_steps``).
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`; the defaults are SGD with
            ``outer_lr`` = ε = 1.0.

    Metrics:
        ``loss``/``acc``: query loss and accuracy of the adapted weights (computed without gradients, for
        monitoring); ``support_loss``: support loss before adaptation; ``distance``: ‖φ − θ‖.
    """

    default_optimizer = "sgd"
    default_outer_lr = 1.0

    def __init__(
        self,
        backbone: nn.Module,
        *,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if inner_steps < 1:
            raise ValueError(f"Reptile needs inner_steps >= 1, got {inner_steps}")
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)

    def adapt(self, task: Task, *, steps: int) -> InnerLoopResult:
        """Plain SGD on the support set from a detached copy of θ.

        Returns:
            The adapted weights φ (detached) and the support losses.
        """
        start = {n: p.detach().requires_grad_() for n, p in self.backbone.named_parameters()}
        with torch.enable_grad():
            result = inner_loop(
                self.backbone, start, task.support_x, task.support_y,
                steps=steps, lr=self.inner_lr, create_graph=False,
            )
        return InnerLoopResult({n: p.detach() for n, p in result.params.items()}, result.losses)

    def task_loss(self, task: Task) -> tuple[torch.Tensor, dict[str, float]]:
        """The surrogate ``½‖θ − φ‖²`` (gradient ``θ − φ``) and monitoring metrics."""
        result = self.adapt(task, steps=self.inner_steps)
        theta = dict(self.backbone.named_parameters())
        surrogate = 0.5 * sum(((theta[n] - phi) ** 2).sum() for n, phi in result.params.items())
        with torch.no_grad():
            logits = query_logits(self.backbone, task, params=result.params)
            distance = torch.sqrt(sum(((theta[n] - phi) ** 2).sum() for n, phi in result.params.items()))
        return surrogate, {
            "loss": float(F.cross_entropy(logits, task.query_y)),
            "acc": accuracy(logits, task.query_y),
            "support_loss": float(result.losses[0]),
            "distance": float(distance),
        }

    def predict(self, episode: Episode) -> torch.Tensor:
        task = self.task(episode)
        result = self.adapt(task, steps=self.eval_inner_steps)
        with torch.no_grad():
            return query_logits(self.backbone, task, params=result.params)

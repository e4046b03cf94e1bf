"""ANIL (Almost No Inner Loop): MAML that adapts only the classifier head.

The body is shared by every task, so a meta-batch is embedded by :func:`~metaxfer.meta.common.embed_tasks` (in one
pass on accelerators, task by task on the CPU, where that is faster), and the heads of all tasks are adapted
together: each task gets its own copy of the head weights along a leading task dimension, and because the tasks'
losses are independent, the gradient of their *sum* with respect to the stacked copies is exactly each task's own
gradient. No ``vmap``. On the CPU, ``outer_step`` back-propagates task by task, spread over worker threads
(:mod:`metaxfer.meta.parallel`).

References:
    Raghu, Raghu, Bengio, Vinyals. "Rapid Learning or Feature Reuse? Towards Understanding the Effectiveness of
    MAML", ICLR 2020.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.meta.base import MetaAlgorithm, MetaOutput, register_algorithm
from metaxfer.meta.common import accuracy, as_episode_list, embed_tasks

__all__ = ["ANIL", "adapt_heads"]


def adapt_heads(
    head: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    lr: float | Any,
    create_graph: bool,
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Adapt one copy of ``head`` per task with gradient steps, all tasks at once.

    Args:
        head: A head with ``forward_batched(x, params)`` (:class:`~metaxfer.models.heads.LinearHead` or
            :class:`~metaxfer.models.heads.CosineHead`).
        features: Support features (T, S, D).
        labels: Support labels (T, S).
        steps: Gradient steps.
        lr: A number, or ``lr(step, index)`` for the ``index``-th head parameter.
        create_graph: Keep second-order terms.

    Returns:
        Adapted head parameters by name, each with a leading task dimension T, and the mean support loss before
        each step.
    """
    t, s = labels.shape
    params = {n: p.unsqueeze(0).expand(t, *p.shape) for n, p in head.named_parameters()}
    names = list(params)
    losses: list[torch.Tensor] = []
    for step in range(steps):
        logits = head.forward_batched(features, params)
        # Sum over tasks of each task's mean loss: the gradient for copy t is task t's own gradient.
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") / s
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
        params = {
            n: params[n] - (lr(step, i) if callable(lr) else lr) * g for i, (n, g) in enumerate(zip(names, grads))
        }
        losses.append(loss.detach() / t)
    return params, losses


@register_algorithm("anil")
class ANIL(MetaAlgorithm):
    """ANIL: the body is meta-learned, the head is adapted per task.

    Args:
        backbone: A backbone with a ``"linear"`` or ``"cosine"`` head of ``ways`` outputs.
        inner_lr: Inner step size (the initial value when ``learn_inner_lr``).
        inner_steps: Inner steps during meta-training.
        eval_inner_steps: Inner steps in :meth:`predict` (default: ``inner_steps``).
        first_order: Ignore second derivatives.
        learn_inner_lr: Meta-learn one rate per head tensor and per step.
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.
    """

    batched = True
    separable = True
    parallel_tasks = True

    def __init__(
        self,
        backbone: nn.Module,
        *,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        head = getattr(backbone, "head", None)
        if head is None or not hasattr(head, "forward_batched"):
            raise ValueError(
                "ANIL adapts the backbone's head: build the backbone with num_classes=ways and head='linear' or "
                "'cosine'"
            )
        if inner_steps < 1:
            raise ValueError(f"ANIL needs inner_steps >= 1, got {inner_steps}")
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
        self.first_order = bool(first_order)
        n_head = len(list(head.parameters()))
        self.inner_lrs = (
            nn.Parameter(torch.full((self.inner_steps, n_head), self.inner_lr, **self._factory()))
            if learn_inner_lr
            else None
        )

    def learning_rate(self, step: int, index: int) -> float | torch.Tensor:
        """The inner rate of step ``step`` for the ``index``-th head parameter."""
        if self.inner_lrs is None:
            return self.inner_lr
        return self.inner_lrs[min(step, self.inner_steps - 1), index]

    def meta_loss(self, episodes: Episode | Sequence[Episode]) -> MetaOutput:
        eps = as_episode_list(episodes)
        batch = self.task_batch(eps)
        fs, fq = embed_tasks(self.backbone, batch)
        params, losses = adapt_heads(
            self.backbone.head, fs, batch.support_y,
            steps=self.inner_steps, lr=self.learning_rate, create_graph=not self.first_order,
        )
        logits = self.backbone.head.forward_batched(fq, params)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())
        return MetaOutput(loss, {
            "loss": float(loss.detach()),
            "acc": accuracy(logits.detach(), batch.query_y),
            "support_loss": float(losses[0]),
        })

    def predict_batch(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        batch = self.task_batch(as_episode_list(episodes))
        with torch.no_grad():
            fs, fq = embed_tasks(self.backbone, batch)
        with torch.enable_grad():
            params, _ = adapt_heads(
                self.backbone.head, fs, batch.support_y, steps=self.eval_inner_steps, lr=self.learning_rate,
                create_graph=False,
            )
        with torch.no_grad():
            logits = self.backbone.head.forward_batched(fq, {n: p.detach() for n, p in params.items()})
        return list(logits.unbind(0))

    def predict(self, episode: Episode) -> torch.Tensor:
        return self.predict_batch([episode])[0]

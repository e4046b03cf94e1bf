"""MAML (second- and first-order, optional learned per-step rates) and Meta-SGD: gradient-based meta-learning of
an initialisation, as functions over parameter dictionaries.

For each task the inner loop adapts *all* backbone parameters with gradient steps on the support set
(:func:`~metaxfer.meta.common.inner_loop`); the outer loss is the adapted network's query loss. Second order keeps
the graph of the inner gradients, first order treats them as constants.

References:
    Finn, Abbeel, Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017.
    Antoniou, Edwards, Storkey. "How to train your MAML", ICLR 2019 (learned per-layer, per-step rates: LSLR).
    Li, Zhou, Chen, Li. "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", arXiv:1707.09835, 2017.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.meta.base import MetaAlgorithm, register_algorithm
from metaxfer.meta.common import InnerLoopResult, Task, accuracy, inner_loop, query_logits

__all__ = ["GradientMetaLearner", "MAML", "FOMAML", "MetaSGD"]


class GradientMetaLearner(MetaAlgorithm):
    """Shared machinery of MAML and Meta-SGD: adapt every backbone parameter, score the queries.

    Args:
        backbone: A backbone with a head of ``ways`` outputs.
        inner_lr: Inner step size α (the initial value when rates are learned).
        inner_steps: Inner gradient steps during meta-training.
        eval_inner_steps: Inner steps in :meth:`predict` (default: ``inner_steps``).
        first_order: Ignore second derivatives (first-order MAML).
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.
    """

    parallel_tasks = True

    def __init__(
        self,
        backbone: nn.Module,
        *,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if inner_steps < 1 or (eval_inner_steps is not None and eval_inner_steps < 0):
            raise ValueError(f"need inner_steps >= 1 and eval_inner_steps >= 0, got {inner_steps}, {eval_inner_steps}")
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
        self.first_order = bool(first_order)
        self.adapted_names = [n for n, p in backbone.named_parameters() if p.requires_grad]

    def learning_rate(self, step: int, index: int) -> float | torch.Tensor:
        """The inner rate of step ``step`` for the ``index``-th adapted parameter."""
        return self.inner_lr

    def _tasks_in_parallel(self) -> bool:
        # First order only: a second-order task graph is large, and one per worker thread raises the peak memory
        # above the peers' (docs/performance.md); one task at a time keeps it at one graph.
        return self.first_order

    def adapt(self, task: Task, *, steps: int, create_graph: bool) -> InnerLoopResult:
        """Run the inner loop on the task's support set from the current meta-parameters.

        Args:
            task: The task.
            steps: Gradient steps.
            create_graph: Keep second-order terms.

        Returns:
            Adapted parameters by name and the support losses.
        """
        named = dict(self.backbone.named_parameters())
        start = {n: named[n] for n in self.adapted_names}
        return inner_loop(
            self.backbone, start, task.support_x, task.support_y,
            steps=steps, lr=self.learning_rate, create_graph=create_graph,
        )

    def task_loss(self, task: Task) -> tuple[torch.Tensor, dict[str, float]]:
        """Query cross-entropy after adaptation; metrics ``loss``, ``acc``, ``support_loss`` (before adapting)."""
        result = self.adapt(task, steps=self.inner_steps, create_graph=not self.first_order)
        logits = query_logits(self.backbone, task, params=result.params)
        loss = F.cross_entropy(logits, task.query_y)
        return loss, {
            "loss": float(loss.detach()),
            "acc": accuracy(logits.detach(), task.query_y),
            "support_loss": float(result.losses[0]),
        }

    def predict(self, episode: Episode) -> torch.Tensor:
        task = self.task(episode)
        with torch.enable_grad():
            result = self.adapt(task, steps=self.eval_inner_steps, create_graph=False)
        with torch.no_grad():
            return query_logits(self.backbone, task, params={n: p.detach() for n, p in result.params.items()})


@register_algorithm("maml")
class MAML(GradientMetaLearner):
    """Model-Agnostic Meta-Learning.

    Args:
        backbone: A backbone with a head of ``ways`` outputs.
        inner_lr: Inner step size α (the initial value when ``learn_inner_lr``).
        inner_steps: Inner gradient steps during meta-training.
        eval_inner_steps: Inner steps in :meth:`predict` (default: ``inner_steps``).
        first_order: Ignore second derivatives (FOMAML).
        learn_inner_lr: Meta-learn one rate per parameter tensor and per step (MAML++'s LSLR); at evaluation,
            steps beyond ``inner_steps`` reuse the last step's rates.
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.

    Example:
        >>> maml = MAML(create_backbone("conv4", num_classes=5), inner_lr=0.4, inner_steps=1)
        >>> metrics = maml.outer_step(meta_batch)        # list of 5-way episodes
        >>> logits = maml.predict(test_episode)          # (5 * queries, 5)
    """

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
        super().__init__(
            backbone, inner_lr=inner_lr, inner_steps=inner_steps, eval_inner_steps=eval_inner_steps,
            first_order=first_order, **kwargs,
        )
        self.learn_inner_lr = bool(learn_inner_lr)
        if self.learn_inner_lr:
            shape = (self.inner_steps, len(self.adapted_names))
            self.inner_lrs = nn.Parameter(torch.full(shape, self.inner_lr, **self._factory()))
        else:
            self.inner_lrs = None

    def learning_rate(self, step: int, index: int) -> float | torch.Tensor:
        if self.inner_lrs is None:
            return self.inner_lr
        return self.inner_lrs[min(step, self.inner_steps - 1), index]


@register_algorithm("fomaml")
class FOMAML(MAML):
    """First-order MAML: :class:`MAML` with ``first_order=True`` by default."""

    def __init__(self, backbone: nn.Module, *, first_order: bool = True, **kwargs: Any) -> None:
        super().__init__(backbone, first_order=first_order, **kwargs)


@register_algorithm("metasgd")
class MetaSGD(GradientMetaLearner):
    """Meta-SGD: MAML whose inner rate is a meta-learned tensor shaped like each parameter.

    The inner update is ``θ' = θ − α ⊙ ∇_θ L_support`` with α learned jointly with θ (shared across inner steps).

    Args:
        backbone: A backbone with a head of ``ways`` outputs.
        inner_lr: Initial value of every entry of α.
        inner_steps: Inner steps (the paper uses one).
        eval_inner_steps: Inner steps in :meth:`predict` (default: ``inner_steps``).
        first_order: Ignore second derivatives.
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            backbone, inner_lr=inner_lr, inner_steps=inner_steps, eval_inner_steps=eval_inner_steps,
            first_order=first_order, **kwargs,
        )
        named = dict(backbone.named_parameters())
        self.inner_lrs = nn.ParameterList(
            [nn.Parameter(torch.full_like(named[n], self.inner_lr)) for n in self.adapted_names]
        )

    def learning_rate(self, step: int, index: int) -> torch.Tensor:
        return self.inner_lrs[index]

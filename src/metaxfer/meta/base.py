"""The common face of every meta-learning algorithm, and the algorithm registry.

An algorithm is an ``nn.Module`` that owns a backbone and any other meta-parameters (learned inner learning rates,
an LSTM meta-learner, ...). The meta-training contract:

* :meth:`MetaAlgorithm.meta_loss` takes an episode or a meta-batch and returns a :class:`MetaOutput` whose loss has
  the meta-gradient as its gradient with respect to ``algorithm.parameters()``: a training engine can back-propagate
  it and step its own optimiser.
* :meth:`MetaAlgorithm.outer_step` does a whole outer update with the algorithm's own optimiser (built from
  ``optimizer``/``outer_lr``), back-propagating task by task where that saves memory.
* :meth:`MetaAlgorithm.predict` adapts to an episode's support set and returns query logits; it never changes
  the meta-parameters.

State for checkpoints: ``state_dict()`` (parameters and buffers, plain tensors) and ``optimizer.state_dict()``;
:meth:`MetaAlgorithm.training_state` bundles both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.errors import EpisodeError, MetaxferError
from metaxfer.meta.common import (
    Normalization,
    Task,
    TaskBatch,
    as_episode_list,
    check_one_shape,
    episode_task,
    stack_tasks,
    task_by_task,
)
from metaxfer.meta.parallel import parallel_task_gradients, task_workers, tune_cpu_allocator
from metaxfer.registry import Registry

__all__ = ["MetaOutput", "MetaAlgorithm", "OptimizerFactory", "ALGORITHMS", "register_algorithm", "algorithm_options"]

#: Builds the outer optimiser from the meta-parameters.
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass
class MetaOutput:
    """A meta-training loss and the numbers to log.

    Attributes:
        loss: Scalar tensor; its gradient with respect to the algorithm's parameters is the meta-gradient.
        metrics: Plain floats, at least ``loss`` (mean query loss) and ``acc`` (mean query accuracy) when the
            algorithm sees queries during training.
    """

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


def _mean_metrics(items: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = items[0].keys()
    return {k: sum(m[k] for m in items) / len(items) for k in keys}


def _one_task_loss(algorithm: MetaAlgorithm, episode: Episode) -> tuple[torch.Tensor, dict[str, float]]:
    """One task's meta-training loss: ``task_loss`` of loop algorithms, ``meta_loss([episode])`` of batched ones."""
    if algorithm.batched:
        out = algorithm.meta_loss([episode])
        return out.loss, out.metrics
    return algorithm.task_loss(algorithm.task(episode))


class MetaAlgorithm(nn.Module):
    """Base class of the algorithms.

    Subclasses implement :meth:`task_loss` (algorithms that loop over tasks) or override :meth:`meta_loss` and set
    ``batched = True`` (algorithms that process a meta-batch in one pass), and implement :meth:`predict`.

    Class attributes:
        needs_meta_training: ``False`` for methods with nothing to meta-train (training from scratch).
        batched: Whether :meth:`meta_loss` handles the whole meta-batch at once (then :meth:`accumulate_gradients`
            back-propagates it in one go rather than task by task).
        separable: For batched algorithms: whether the meta-batch loss is the mean of independent per-task losses,
            so that :meth:`accumulate_gradients` may back-propagate task by task where
            :func:`~metaxfer.meta.common.task_by_task` says that is faster (the CPU).
        parallel_tasks: Whether :meth:`accumulate_gradients` may run tasks in worker threads on the CPU (see
            :mod:`metaxfer.meta.parallel`): the per-task loss must touch no state but parameters and buffers it only
            reads (``"running"`` batch norm, which writes its buffers, always runs the tasks one by one).
        uses_way_head: Whether the backbone's head has one output per way (the MAML family); episodes of another
            number of ways are then refused with an error that says how to fix it.
        weighted_support: Whether the algorithm honours :attr:`Episode.support_weight` (episodes with weights are
            refused by the others, so that no weight is silently ignored).
        default_optimizer: Outer optimiser used when none is given (``"adam"`` or ``"sgd"``).
        default_outer_lr: Outer learning rate used when none is given.

    Args:
        backbone: The network (a :class:`~metaxfer.models.base.Backbone`).
        outer_lr: Outer learning rate (default: the class's ``default_outer_lr``).
        optimizer: ``"adam"``, ``"sgd"`` or a factory ``params -> Optimizer`` (default: ``default_optimizer``).
        weight_decay: Outer weight decay for the named optimisers.
        grad_clip: Clip the meta-gradient to this global norm in :meth:`outer_step`; ``None`` for no clipping.
        normalize: Per-channel (mean, std) applied to images after scaling them to [0, 1].
    """

    needs_meta_training: ClassVar[bool] = True
    batched: ClassVar[bool] = False
    separable: ClassVar[bool] = False
    parallel_tasks: ClassVar[bool] = False
    uses_way_head: ClassVar[bool] = True
    weighted_support: ClassVar[bool] = False
    default_optimizer: ClassVar[str] = "adam"
    default_outer_lr: ClassVar[float] = 1e-3

    def __init__(
        self,
        backbone: nn.Module,
        *,
        outer_lr: float | None = None,
        optimizer: str | OptimizerFactory | None = None,
        weight_decay: float = 0.0,
        grad_clip: float | None = None,
        normalize: Normalization = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.outer_lr = float(self.default_outer_lr if outer_lr is None else outer_lr)
        self.optimizer_spec = self.default_optimizer if optimizer is None else optimizer
        if isinstance(self.optimizer_spec, str) and self.optimizer_spec not in ("adam", "sgd"):
            raise ValueError(f"unknown outer optimizer {self.optimizer_spec!r}: use 'adam', 'sgd' or a factory")
        self.weight_decay = float(weight_decay)
        self.grad_clip = grad_clip
        self.normalize = normalize
        self._optimizer: torch.optim.Optimizer | None = None

    # ----------------------------------------------------------------------------------------------- plumbing
    @classmethod
    def backbone_head(cls, *, ways: int, options: dict[str, Any]) -> dict[str, Any]:
        """The head arguments :func:`~metaxfer.meta.create_algorithm` gives the backbone it builds.

        Args:
            ways: N of the episodes.
            options: The remaining algorithm keyword arguments; an override may pop head options from it.

        Returns:
            Backbone keyword arguments, by default ``{"num_classes": ways}`` (a head with one output per way).
        """
        return {"num_classes": ways}

    @property
    def reference(self) -> torch.Tensor:
        """A backbone parameter (or any parameter or buffer) whose device and dtype inputs are converted to."""
        for source in (self.backbone.parameters(), self.parameters(), self.buffers()):
            for t in source:
                return t
        raise MetaxferError(f"{type(self).__name__} has no parameters or buffers to take a device and dtype from")

    def _factory(self) -> dict[str, Any]:
        """``dtype``/``device`` keyword arguments matching the backbone, for meta-parameters created beside it."""
        ref = self.reference
        return {"dtype": ref.dtype, "device": ref.device}

    def task(self, episode: Episode) -> Task:
        """One episode as network input (on the algorithm's device and dtype), after checking its ways."""
        self._check_ways(episode)
        self._check_weights(episode)
        return episode_task(episode, like=self.reference, normalize=self.normalize)

    def task_batch(self, episodes: Sequence[Episode]) -> TaskBatch:
        """A meta-batch of equally shaped episodes as network input."""
        for e in episodes:
            self._check_ways(e)
            self._check_weights(e)
        return stack_tasks(episodes, like=self.reference, normalize=self.normalize)

    def _check_weights(self, episode: Episode) -> None:
        if episode.support_weight is None:
            return
        if not self.weighted_support:
            raise EpisodeError(
                f"{type(self).__name__} does not weigh support images, but the episode has support weights (e.g. "
                "from augment_episode's made_weight): use made_weight=1, or an algorithm that weighs them "
                "(protonet, matchingnet, scratch, baseline, baseline++)"
            )
        w = episode.support_weight
        if tuple(w.shape) != tuple(episode.support_y.shape) or not bool(torch.isfinite(w).all()) \
                or bool((w < 0).any()):
            raise EpisodeError(f"support_weight must be finite and non-negative, shaped like support_y "
                               f"{tuple(episode.support_y.shape)}; got shape {tuple(w.shape)}")

    def _check_ways(self, episode: Episode) -> None:
        head = getattr(self.backbone, "num_classes", 0) if self.uses_way_head else 0
        if head and episode.ways != head:
            raise EpisodeError(
                f"{type(self).__name__}'s backbone head has {head} outputs but the episode is {episode.ways}-way: "
                f"build the algorithm with ways={episode.ways} or sample {head}-way episodes"
            )

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The outer optimiser over ``self.parameters()``, built on first use."""
        if self._optimizer is None:
            params = [p for p in self.parameters() if p.requires_grad]
            if not params:
                raise MetaxferError(f"{type(self).__name__} has no trainable meta-parameters to optimise")
            spec = self.optimizer_spec
            if spec == "adam":
                self._optimizer = torch.optim.Adam(params, lr=self.outer_lr, weight_decay=self.weight_decay)
            elif spec == "sgd":
                self._optimizer = torch.optim.SGD(params, lr=self.outer_lr, weight_decay=self.weight_decay)
            else:
                self._optimizer = spec(params)
        return self._optimizer

    def training_state(self) -> dict[str, Any]:
        """Parameters, buffers and optimiser state (plain tensors and numbers), e.g. for ``torch.save``."""
        optimizer = self.optimizer.state_dict() if self.needs_meta_training else {}
        return {"model": self.state_dict(), "optimizer": optimizer}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`training_state` returned."""
        self.load_state_dict(state["model"])
        if self.needs_meta_training and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])

    def _require_meta_training(self) -> None:
        if not self.needs_meta_training:
            raise MetaxferError(
                f"{type(self).__name__} has nothing to meta-train (it learns each episode from its support set "
                "in predict()); skip the training phase and only evaluate it"
            )

    # ----------------------------------------------------------------------------------------- meta-training
    def task_loss(self, task: Task) -> tuple[torch.Tensor, dict[str, float]]:
        """Meta-training loss of one task and its metrics (loop-over-tasks algorithms implement this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement task_loss() or meta_loss()")

    def meta_loss(self, episodes: Episode | Sequence[Episode]) -> MetaOutput:
        """The meta-batch loss: the mean of the tasks' losses.

        Args:
            episodes: One episode or a meta-batch.

        Returns:
            The loss (its gradient is the meta-gradient) and averaged metrics.
        """
        self._require_meta_training()
        outs = [self.task_loss(self.task(e)) for e in as_episode_list(episodes)]
        return MetaOutput(torch.stack([o[0] for o in outs]).mean(), _mean_metrics([o[1] for o in outs]))

    def accumulate_gradients(self, episodes: Episode | Sequence[Episode]) -> dict[str, float]:
        """Add the meta-gradient of the meta-batch to the parameters' ``.grad``.

        Loop-over-tasks algorithms back-propagate each task's loss (divided by the number of tasks) as soon as it
        is computed, so only one task's graph is alive at a time. So do separable batched algorithms where
        :func:`~metaxfer.meta.common.task_by_task` prefers it (on the CPU); elsewhere they back-propagate the whole
        meta-batch in one go. On the CPU with more than one torch thread, algorithms with ``parallel_tasks`` run
        the tasks in that many worker threads (:func:`~metaxfer.meta.parallel.parallel_task_gradients`; one task
        graph alive per worker). On the CPU it also applies :func:`~metaxfer.meta.parallel.tune_cpu_allocator`
        (a process-wide allocator setting; ``METAXFER_TUNE_MALLOC=0`` opts out).

        Returns:
            The averaged metrics.
        """
        self._require_meta_training()
        eps = as_episode_list(episodes)
        device = self.reference.device
        if device.type == "cpu":
            tune_cpu_allocator()
        norm_mode = getattr(self.backbone, "norm_mode", None)
        if self.batched and not (self.separable and len(eps) > 1 and task_by_task(device, norm_mode)):
            out = self.meta_loss(eps)
            out.loss.backward()
            return out.metrics
        if self.batched:
            check_one_shape(eps)  # the meta-batches accepted in one pass (on another device), no others
        # "running" batch norm updates its buffers in place: tasks then run one after the other.
        workers = task_workers(device, len(eps)) if self._tasks_in_parallel() and norm_mode != "running" else 1
        if workers > 1:
            metrics = parallel_task_gradients(self, eps, _one_task_loss, workers=workers, scale=1 / len(eps))
            return _mean_metrics(metrics)
        metrics = []
        for e in eps:
            loss, m = _one_task_loss(self, e)
            (loss / len(eps)).backward()
            metrics.append(m)
        return _mean_metrics(metrics)

    def _tasks_in_parallel(self) -> bool:
        """Whether :meth:`accumulate_gradients` may spread tasks over worker threads (``parallel_tasks``)."""
        return self.parallel_tasks

    def outer_step(self, episodes: Episode | Sequence[Episode]) -> dict[str, float]:
        """One outer update with the algorithm's own optimiser.

        Args:
            episodes: The meta-batch.

        Returns:
            Metrics of the meta-batch (before the update), plus ``grad_norm`` when ``grad_clip`` is set.
        """
        self._require_meta_training()
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        metrics = self.accumulate_gradients(episodes)
        if self.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_([p for p in self.parameters() if p.grad is not None], self.grad_clip)
            metrics["grad_norm"] = float(norm)
        opt.step()
        return metrics

    # ---------------------------------------------------------------------------------------------- testing
    def predict(self, episode: Episode) -> torch.Tensor:
        """Adapt to the episode's support set and return query logits (the meta-parameters are not changed).

        Returns:
            Detached logits (N*Q, N) whose arg-max is the predicted label.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement predict()")

    def predict_batch(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        """:meth:`predict` for several episodes (batched algorithms do them in one pass)."""
        return [self.predict(e) for e in episodes]


#: Meta-learning algorithms by name.
ALGORITHMS: Registry[type[MetaAlgorithm]] = Registry("algorithm")


def register_algorithm(name: str) -> Callable[[type[MetaAlgorithm]], type[MetaAlgorithm]]:
    """Class decorator registering a :class:`MetaAlgorithm` subclass under ``name``."""

    def add(cls: type[MetaAlgorithm]) -> type[MetaAlgorithm]:
        if not (isinstance(cls, type) and issubclass(cls, MetaAlgorithm)):
            raise TypeError(f"algorithm {name!r} must subclass MetaAlgorithm")
        ALGORITHMS.register(name, cls)
        return cls

    return add


def algorithm_options(cls: type[MetaAlgorithm]) -> list[str]:
    """The keyword arguments an algorithm's constructor accepts (its own and those of its base classes)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and issubclass(klass, MetaAlgorithm):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
    return names

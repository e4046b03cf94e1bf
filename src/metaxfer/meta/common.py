"""Functional building blocks shared by the algorithms: the input pipeline, forwards with parameter dictionaries,
the differentiable inner loop, per-task embedding with the batch-norm mode respected, prototypes, accuracy.

Everything here works on plain tensors and ``{name: tensor}`` parameter dictionaries through
:func:`torch.func.functional_call`; nothing clones or patches modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metaxfer.data.episodes import Episode
from metaxfer.errors import EpisodeError
from metaxfer.models.norm import NormPlan

__all__ = [
    "Normalization",
    "LearningRate",
    "Task",
    "TaskBatch",
    "InnerLoopResult",
    "prepare_images",
    "episode_task",
    "stack_tasks",
    "check_one_shape",
    "as_episode_list",
    "forward_logits",
    "query_logits",
    "inner_loop",
    "embed_tasks",
    "task_by_task",
    "prototypes",
    "accuracy",
]

#: Per-channel (mean, std) applied after scaling images to [0, 1], or ``None`` for no normalisation.
Normalization = tuple[Sequence[float], Sequence[float]] | None

#: An inner learning rate: one number or tensor for every parameter and step, or ``lr(step, index)`` giving the rate
#: (a scalar or a tensor shaped like the parameter) of step ``step`` for the ``index``-th adapted parameter.
LearningRate = float | torch.Tensor | Callable[[int, int], float | torch.Tensor]


def prepare_images(images: torch.Tensor, *, like: torch.Tensor, normalize: Normalization = None) -> torch.Tensor:
    """Turn stored images into network input on the device and in the dtype of ``like``.

    Args:
        images: uint8 images (scaled by 1/255) or floating-point images already in [0, 1], shape (..., C, H, W).
        like: A tensor (usually a model parameter) whose device and dtype the output takes.
        normalize: Optional per-channel (mean, std) applied after scaling.

    Returns:
        Float images of the same shape.
    """
    x = images.to(device=like.device)
    x = x.to(like.dtype) / 255.0 if x.dtype == torch.uint8 else x.to(like.dtype)
    if normalize is not None:
        mean = torch.as_tensor(normalize[0], dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(normalize[1], dtype=x.dtype, device=x.device).view(-1, 1, 1)
        x = (x - mean) / std
    return x


@dataclass
class Task:
    """One episode as network input.

    Attributes:
        support_x: Float images (S, C, H, W).
        support_y: Labels (S,) in [0, ways).
        query_x: Float images (Q, C, H, W).
        query_y: Labels (Q,).
        ways: Number of classes N.
        support_weight: Weights (S,) of the support images, or ``None`` (all 1).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    ways: int
    support_weight: torch.Tensor | None = None


@dataclass
class TaskBatch:
    """Several episodes of equal shape stacked along a leading task dimension T.

    Attributes:
        support_x: (T, S, C, H, W). support_y: (T, S). query_x: (T, Q, C, H, W). query_y: (T, Q).
        ways: Number of classes N of every task.
        support_weight: (T, S) weights of the support images, or ``None`` (all 1).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    ways: int
    support_weight: torch.Tensor | None = None

    @property
    def tasks(self) -> int:
        return int(self.support_x.shape[0])


def as_episode_list(episodes: Episode | Sequence[Episode]) -> list[Episode]:
    """Accept one episode or a meta-batch and return a non-empty list.

    Raises:
        EpisodeError: The meta-batch is empty.
    """
    out = [episodes] if isinstance(episodes, Episode) else list(episodes)
    if not out:
        raise EpisodeError("the meta-batch is empty: pass at least one Episode")
    return out


def episode_task(episode: Episode, *, like: torch.Tensor, normalize: Normalization = None) -> Task:
    """Convert an :class:`Episode` into a :class:`Task` on ``like``'s device and dtype."""
    dev = like.device
    return Task(
        support_x=prepare_images(episode.support_x, like=like, normalize=normalize),
        support_y=episode.support_y.to(dev),
        query_x=prepare_images(episode.query_x, like=like, normalize=normalize),
        query_y=episode.query_y.to(dev),
        ways=episode.ways,
        support_weight=None if episode.support_weight is None else episode.support_weight.to(dev, like.dtype),
    )


def check_one_shape(episodes: Sequence[Episode]) -> None:
    """Check that a meta-batch for a batched algorithm has one shape.

    Raises:
        EpisodeError: The episodes differ in ways, shots, queries or image shape.
    """
    shapes = {(e.ways, tuple(e.support_x.shape), tuple(e.query_x.shape)) for e in episodes}
    if len(shapes) > 1:
        raise EpisodeError(
            f"a meta-batch processed in one pass needs episodes of one shape (ways, shots, queries, image size); "
            f"got {sorted(shapes)}: sample the meta-batch from one EpisodeSampler"
        )


def stack_tasks(episodes: Sequence[Episode], *, like: torch.Tensor, normalize: Normalization = None) -> TaskBatch:
    """Stack equally shaped episodes into a :class:`TaskBatch`.

    Raises:
        EpisodeError: The episodes differ in ways, shots, queries or image shape.
    """
    eps = as_episode_list(episodes)
    check_one_shape(eps)
    dev = like.device
    return TaskBatch(
        support_x=prepare_images(torch.stack([e.support_x for e in eps]), like=like, normalize=normalize),
        support_y=torch.stack([e.support_y for e in eps]).to(dev),
        query_x=prepare_images(torch.stack([e.query_x for e in eps]), like=like, normalize=normalize),
        query_y=torch.stack([e.query_y for e in eps]).to(dev),
        ways=eps[0].ways,
        support_weight=_stacked_weights(eps, like=like),
    )


def _stacked_weights(episodes: Sequence[Episode], *, like: torch.Tensor) -> torch.Tensor | None:
    """(T, S) support weights of a meta-batch (1 for an episode without them), or ``None`` when none has any."""
    if all(e.support_weight is None for e in episodes):
        return None
    return torch.stack([torch.ones(e.support_y.shape, dtype=like.dtype) if e.support_weight is None
                        else e.support_weight.to("cpu", like.dtype) for e in episodes]).to(like.device)


def forward_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    params: dict[str, torch.Tensor] | None = None,
    norm: NormPlan | None = None,
) -> torch.Tensor:
    """Run ``model`` on ``x``, optionally with some parameters replaced by ``params``.

    Args:
        model: A backbone (its ``forward`` takes ``norm=``).
        x: Input (B, C, H, W).
        params: Replacement tensors by parameter name (missing names keep the module's own); ``None`` for none.
        norm: Batch-norm task grouping.

    Returns:
        The model's output (B, ...).
    """
    if params is None:
        return model(x, norm=norm)
    return functional_call(model, params, (x,), {"norm": norm})


def query_logits(model: nn.Module, task: Task, *, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Query logits of one task under the model's batch-norm mode.

    In ``"support"`` mode the support and query sets go through the network together and batch norm takes its
    statistics from the support rows only; in the other modes (or without batch norm) the queries are forwarded
    alone.

    Args:
        model: The backbone with a head.
        task: The task.
        params: Adapted parameters (by name), or ``None`` for the module's own.

    Returns:
        Logits (Q, ways).
    """
    if getattr(model, "norm_mode", None) == "support":
        n = task.support_x.shape[0]
        both = torch.cat([task.support_x, task.query_x])
        return forward_logits(model, both, params=params, norm=NormPlan(1, n))[n:]
    return forward_logits(model, task.query_x, params=params)


@dataclass
class InnerLoopResult:
    """What :func:`inner_loop` returns.

    Attributes:
        params: The adapted parameters by name (functions of the initial ones when a graph was kept).
        losses: The support loss before each step (detached scalars).
    """

    params: dict[str, torch.Tensor]
    losses: list[torch.Tensor]


def _rate(lr: LearningRate, step: int, index: int) -> float | torch.Tensor:
    return lr(step, index) if callable(lr) else lr


def inner_loop(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: LearningRate,
    create_graph: bool,
    norm: NormPlan | None = None,
) -> InnerLoopResult:
    """Gradient-descent adaptation ``θ ← θ − α ∇_θ CE(f_θ(x), y)`` repeated ``steps`` times.

    With ``create_graph=True`` the adapted parameters stay differentiable functions of the initial ones, with the
    second-order terms (MAML); with ``False`` the inner gradients are treated as constants (first-order MAML), and
    ``∂θ'/∂θ`` is the identity.

    Args:
        model: The network.
        params: The parameters to adapt, by name (they must require grad); the others stay the module's own.
        x: Support input (S, C, H, W).
        y: Support labels (S,).
        steps: Number of gradient steps (0 returns ``params`` unchanged).
        lr: Learning rate: a number, a tensor (e.g. a learned scalar) or ``lr(step, index)``.
        create_graph: Keep the graph of the inner gradients (second order).
        norm: Batch-norm task grouping of the support forward.

    Returns:
        The adapted parameters and the support loss before each step.

    References:
        Finn, Abbeel, Levine. "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017.
    """
    losses: list[torch.Tensor] = []
    names = list(params)
    for step in range(steps):
        loss = F.cross_entropy(forward_logits(model, x, params=params, norm=norm), y)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
        params = {n: params[n] - _rate(lr, step, i) * g for i, (n, g) in enumerate(zip(names, grads))}
        losses.append(loss.detach())
    return InnerLoopResult(params=params, losses=losses)


def task_by_task(device: torch.device, norm_mode: str | None) -> bool:
    """Whether a meta-batch of independent tasks should go through the network one task at a time.

    On the CPU a pass over one task (80–100 images of 28×28) is faster per image than a pass over a whole
    meta-batch: the large activations of a stacked pass fall out of the caches (measured in
    ``docs/performance.md``). On other devices large passes are what keep the device busy. ``"running"`` batch norm takes its statistics over everything a pass sees, so it is never split.

    Args:
        device: Where the images are.
        norm_mode: The backbone's batch-norm mode (``None`` without batch norm).

    Returns:
        ``True`` to process the tasks one by one.
    """
    return device.type == "cpu" and norm_mode != "running"


def _task_slice(batch: TaskBatch, i: int) -> TaskBatch:
    return TaskBatch(
        support_x=batch.support_x[i : i + 1],
        support_y=batch.support_y[i : i + 1],
        query_x=batch.query_x[i : i + 1],
        query_y=batch.query_y[i : i + 1],
        ways=batch.ways,
        support_weight=None if batch.support_weight is None else batch.support_weight[i : i + 1],
    )


def embed_tasks(backbone: nn.Module, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of every task's support and query images, each task normalised with only its own statistics.

    ``"support"`` mode: support and query go through together, each task normalised with its own support
    statistics. ``"transductive"``: one pass over the support sets and one over the query sets, each task normalised
    with its own statistics. ``"running"`` or no batch norm: one pass over everything (batch norm then behaves like
    ``nn.BatchNorm2d``). Where :func:`task_by_task` says so (the CPU), the tasks go through one at a time, which
    gives the same features faster; elsewhere a pass carries all T tasks.

    Args:
        backbone: A backbone with ``forward_features(x, norm=...)``.
        batch: T stacked tasks.

    Returns:
        Support features (T, S, D) and query features (T, Q, D).
    """
    t, s = batch.support_x.shape[:2]
    q = batch.query_x.shape[1]
    mode = getattr(backbone, "norm_mode", None)
    if t > 1 and task_by_task(batch.support_x.device, mode):
        parts = [embed_tasks(backbone, _task_slice(batch, i)) for i in range(t)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    if mode == "transductive":
        fs = backbone.forward_features(batch.support_x.flatten(0, 1), norm=NormPlan(t))
        fq = backbone.forward_features(batch.query_x.flatten(0, 1), norm=NormPlan(t))
        return fs.view(t, s, -1), fq.view(t, q, -1)
    both = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
    plan = NormPlan(t, s) if mode == "support" else NormPlan()
    f = backbone.forward_features(both, norm=plan).view(t, s + q, -1)
    return f[:, :s], f[:, s:]


def prototypes(features: torch.Tensor, labels: torch.Tensor, ways: int,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Class means of support features, per task; weighted means with ``weights``.

    Args:
        features: (T, S, D).
        labels: (T, S) in [0, ways).
        ways: N.
        weights: (T, S) non-negative weights of the support examples, or ``None`` (all 1).

    Returns:
        Prototypes (T, N, D): ``p_k = sum_i w_i f_i / sum_i w_i`` over the examples ``i`` of class ``k``.

    Raises:
        EpisodeError: A class has no support example, or its weights sum to 0.
    """
    onehot = F.one_hot(labels, ways).to(features.dtype).transpose(1, 2)  # (T, N, S)
    if weights is not None:
        onehot = onehot * weights.to(features.dtype).unsqueeze(1)
    counts = onehot.sum(-1, keepdim=True)
    if bool((counts <= 0).any()):
        raise EpisodeError("a class of the episode has no support example (or only ones of weight 0); every class "
                           "needs at least one shot of positive weight")
    return torch.bmm(onehot, features) / counts


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each task's support examples, weighted: ``sum_i w_i l_i / sum_i w_i``.

    Args:
        logits: (..., S, N).
        labels: (..., S).
        weights: (..., S), non-negative with a positive sum per task.

    Returns:
        One loss per task, shaped ``labels.shape[:-1]``.
    """
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    w = weights.to(ce.dtype)
    return (ce.view(labels.shape) * w).sum(-1) / w.sum(-1)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose arg-max equals the label.

    Args:
        logits: (..., N).
        labels: (...).

    Returns:
        Accuracy in [0, 1].
    """
    return float((logits.argmax(-1) == labels).to(torch.float32).mean())

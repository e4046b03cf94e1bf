"""Meta-learning algorithms as functions over parameter dictionaries, their registry, and evaluation.

Registered algorithms (:data:`ALGORITHMS`):

=============== =========================================================================================
``maml``        MAML, second order by default; ``first_order``, any ``inner_steps``, ``learn_inner_lr``
``fomaml``      first-order MAML
``metasgd``     Meta-SGD (learned per-parameter inner rates)
``anil``        ANIL (adapt the head only; the meta-batch is processed in one pass)
``reptile``     Reptile
``protonet``    Prototypical Networks
``matchingnet`` Matching Networks (``fce=True`` for full-context embeddings)
``metalstm``    Ravi & Larochelle's LSTM meta-learner
``scratch``     train from scratch on each support set (baseline)
``baseline``    pre-train on the source classes, fine-tune a linear head (Chen et al. 2019)
``baseline++``  the same with a cosine classifier
=============== =========================================================================================

Example:
    >>> from metaxfer.data import create_domain, EpisodeSampler
    >>> from metaxfer.meta import create_algorithm, evaluate
    >>> domain = create_domain("synthetic", num_classes=20, per_class=30, size=28, seed=0)
    >>> sampler = EpisodeSampler(domain, ways=5, shots=1, queries=5, seed=0)
    >>> maml = create_algorithm("maml", ways=5, inner_lr=0.4, outer_lr=1e-3)
    >>> for _ in range(10):
    ...     metrics = maml.outer_step([sampler.sample() for _ in range(4)])
    >>> print(evaluate(maml, sampler.fixed(20, seed=1)))
"""

from __future__ import annotations

from typing import Any

from torch import nn

from metaxfer.meta.anil import ANIL, adapt_heads
from metaxfer.meta.base import ALGORITHMS, MetaAlgorithm, MetaOutput, algorithm_options, register_algorithm
from metaxfer.meta.baselines import Baseline, BaselinePlusPlus, Scratch
from metaxfer.meta.common import (
    Task,
    TaskBatch,
    accuracy,
    embed_tasks,
    episode_task,
    forward_logits,
    inner_loop,
    prepare_images,
    prototypes,
    query_logits,
    stack_tasks,
)
from metaxfer.meta.evaluation import EvaluationResult, confidence_interval, evaluate
from metaxfer.meta.maml import FOMAML, MAML, GradientMetaLearner, MetaSGD
from metaxfer.meta.matching import MatchingNetwork
from metaxfer.meta.metalstm import MetaLSTM
from metaxfer.meta.metagan import MetaGAN
from metaxfer.meta.protonet import ProtoNet, squared_distances
from metaxfer.meta.reptile import Reptile
from metaxfer.models import create_backbone

__all__ = [
    "ALGORITHMS",
    "create_algorithm",
    "register_algorithm",
    "algorithm_options",
    "MetaAlgorithm",
    "MetaOutput",
    "GradientMetaLearner",
    "MAML",
    "FOMAML",
    "MetaSGD",
    "ANIL",
    "Reptile",
    "ProtoNet",
    "MatchingNetwork",
    "MetaLSTM",
    "MetaGAN",
    "Scratch",
    "Baseline",
    "BaselinePlusPlus",
    "EvaluationResult",
    "evaluate",
    "confidence_interval",
    "Task",
    "TaskBatch",
    "episode_task",
    "stack_tasks",
    "prepare_images",
    "forward_logits",
    "query_logits",
    "inner_loop",
    "adapt_heads",
    "embed_tasks",
    "prototypes",
    "squared_distances",
    "accuracy",
]


def create_algorithm(
    name: str,
    *,
    backbone: str | nn.Module = "conv4",
    ways: int = 5,
    in_channels: int = 1,
    image_size: int = 28,
    norm: str = "support",
    backbone_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> MetaAlgorithm:
    """Build a registered algorithm, and its backbone when given by name.

    Args:
        name: Algorithm name (see :data:`ALGORITHMS`).
        backbone: A backbone name (``"conv4"``, ``"resnet12"``, ``"mlp"``) or a ready module (then ``ways``,
            ``in_channels``, ``image_size``, ``norm`` and ``backbone_kwargs`` are not used).
        ways: N of the episodes (sizes the head of the algorithms that adapt one).
        in_channels: Image channels.
        image_size: Image side in pixels.
        norm: Batch-norm mode of the backbone: ``"support"`` (default), ``"transductive"`` or ``"running"``.
        backbone_kwargs: Other backbone options, e.g. ``{"hidden": 32}``.
        **kwargs: The algorithm's options (``inner_lr``, ``outer_lr``, ...); ``baseline``/``baseline++`` also
            need ``num_classes`` (the source classes) and take ``head_scale``.

    Returns:
        The algorithm, in training mode.

    Raises:
        UnknownNameError: Unknown algorithm or backbone name (the message lists the valid ones).
        TypeError: An option the algorithm does not take (the message lists those it does).
    """
    cls = ALGORITHMS.get(name)
    options = dict(kwargs)
    if isinstance(backbone, str):
        head = cls.backbone_head(ways=ways, options=options)
        bkw: dict[str, Any] = {"in_channels": in_channels, "image_size": image_size, **head}
        if backbone != "mlp":
            bkw["norm"] = norm
        bkw.update(backbone_kwargs or {})
        net = create_backbone(backbone, **bkw)
    else:
        net = backbone
    valid = algorithm_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"algorithm {name!r} does not take {', '.join(unknown)}; its options are: {', '.join(valid)}")
    return cls(net, **options)

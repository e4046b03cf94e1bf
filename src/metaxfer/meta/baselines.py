"""The baselines every results table carries: training from scratch on the support set, and pre-training on the
source classes followed by fine-tuning a new classifier on the support set (Baseline and Baseline++).

References:
    Chen, Liu, Kira, Wang, Huang. "A Closer Look at Few-shot Classification", ICLR 2019.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.errors import EpisodeError
from metaxfer.meta.base import MetaAlgorithm, MetaOutput, register_algorithm
from metaxfer.meta.common import (
    accuracy,
    as_episode_list,
    embed_tasks,
    prepare_images,
    query_logits,
    weighted_cross_entropy,
)

__all__ = ["Scratch", "Baseline", "BaselinePlusPlus"]


@register_algorithm("scratch")
class Scratch(MetaAlgorithm):
    """Train a freshly initialised network on each episode's support set; nothing is meta-trained.

    Every episode starts from the same seeded initialisation (drawn on the CPU, so it is the same on every device)
    and takes ``steps`` full-batch Adam steps on the support set (the weighted mean of its losses where the episode
    has support weights).

    Args:
        backbone: The architecture (with a head of ``ways`` outputs); its own weights are never trained.
        steps: Adam steps per episode.
        lr: Adam learning rate.
        seed: Seed of the initialisation.
        **kwargs: Input options of :class:`~metaxfer.meta.base.MetaAlgorithm` (``normalize``).
    """

    needs_meta_training = False
    weighted_support = True

    def __init__(
        self, backbone: nn.Module, *, steps: int = 100, lr: float = 1e-3, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(backbone, **kwargs)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.steps, self.lr, self.seed = int(steps), float(lr), int(seed)

    def fresh_network(self) -> nn.Module:
        """A copy of the backbone with newly drawn (seeded) weights, on the algorithm's device and dtype."""
        ref = self.reference
        net = copy.deepcopy(self.backbone).cpu()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for module in net.modules():
                if module is not net and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        return net.to(device=ref.device, dtype=ref.dtype)

    def predict(self, episode: Episode) -> torch.Tensor:
        task = self.task(episode)
        net = self.fresh_network()
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                if task.support_weight is None:
                    F.cross_entropy(net(task.support_x), task.support_y).backward()
                else:
                    weighted_cross_entropy(net(task.support_x), task.support_y, task.support_weight).backward()
                opt.step()
        net.train(self.training)
        with torch.no_grad():
            return query_logits(net, task)


@register_algorithm("baseline")
class Baseline(MetaAlgorithm):
    """Baseline of Chen et al.: pre-train backbone + classifier on all source classes, then per episode fit a new
    classifier on the frozen support features.

    Pre-training is ordinary supervised learning: :meth:`supervised_loss` on labelled batches, or
    :meth:`meta_loss` on episodes, whose support and query images are used with their *source* class indices
    (``episode.classes``). At test time every episode gets a new head (same seeded initialisation each time),
    trained with ``finetune_steps`` full-batch SGD steps (momentum, weight decay) on the support features (the
    weighted mean of their losses where the episode has support weights); all the episodes of a batch are fitted
    together, each with its own head.

    Args:
        backbone: Backbone whose head has one output per source class (``create_algorithm`` builds it from
            ``num_classes``).
        finetune_steps: SGD steps of the new head per episode.
        finetune_lr: Their learning rate.
        finetune_momentum: Their momentum.
        finetune_weight_decay: Their weight decay.
        seed: Seed of the new heads' initialisation.
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.
    """

    batched = True
    uses_way_head = False
    weighted_support = True
    head_kind: ClassVar[str] = "linear"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        finetune_steps: int = 100,
        finetune_lr: float = 0.01,
        finetune_momentum: float = 0.9,
        finetune_weight_decay: float = 1e-3,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        head = getattr(backbone, "head", None)
        if head is None or not hasattr(head, "forward_batched"):
            raise ValueError(
                f"{type(self).__name__} pre-trains a classifier over the source classes: build the backbone with "
                f"num_classes=<source classes> and head={self.head_kind!r}"
            )
        self.finetune_steps = int(finetune_steps)
        self.finetune_lr = float(finetune_lr)
        self.finetune_momentum = float(finetune_momentum)
        self.finetune_weight_decay = float(finetune_weight_decay)
        self.seed = int(seed)

    @classmethod
    def backbone_head(cls, *, ways: int, options: dict[str, Any]) -> dict[str, Any]:
        if "num_classes" not in options:
            raise TypeError(
                f"{cls.__name__} pre-trains a classifier over every source class: pass num_classes=<number of classes "
                "of the training domain> (episode.classes indexes them)"
            )
        out = {"num_classes": int(options.pop("num_classes")), "head": cls.head_kind}
        if "head_scale" in options:
            out["head_scale"] = float(options.pop("head_scale"))
        return out

    def supervised_loss(self, images: torch.Tensor, labels: torch.Tensor) -> MetaOutput:
        """Cross-entropy of the full classifier on a labelled batch.

        Args:
            images: uint8 (or [0, 1] float) images (B, C, H, W).
            labels: Source class indices (B,).

        Returns:
            The loss and ``loss``/``acc`` metrics.

        Raises:
            EpisodeError: A label is outside the head's classes.
        """
        classes = self.backbone.num_classes
        if labels.numel() and (int(labels.max()) >= classes or int(labels.min()) < 0):
            raise EpisodeError(
                f"label {int(labels.max())} is outside the {classes} classes of {type(self).__name__}'s head: build it "
                "with num_classes = the number of classes of the training domain"
            )
        x = prepare_images(images, like=self.reference, normalize=self.normalize)
        labels = labels.to(x.device)
        logits = self.backbone(x)
        loss = F.cross_entropy(logits, labels)
        return MetaOutput(loss, {"loss": float(loss.detach()), "acc": accuracy(logits.detach(), labels)})

    def meta_loss(self, episodes: Episode | Sequence[Episode]) -> MetaOutput:
        """Pre-training on episodes: all their images with their source class labels."""
        eps = as_episode_list(episodes)
        if any(e.support_weight is not None for e in eps):
            raise EpisodeError(f"{type(self).__name__} pre-trains on every image of its episodes alike; weighted "
                               "support sets are for adapting to a target episode (predict), not for pre-training")
        images = torch.cat([t for e in eps for t in (e.support_x, e.query_x)])
        labels = torch.cat([e.classes[y] for e in eps for y in (e.support_y, e.query_y)])
        return self.supervised_loss(images, labels)

    def _new_heads(self, tasks: int, ways: int) -> dict[str, torch.Tensor]:
        ref = self.reference
        d = self.backbone.num_features
        bound = 1.0 / math.sqrt(d)
        g = torch.Generator().manual_seed(self.seed)
        weight = (torch.rand(ways, d, generator=g, dtype=torch.float64) * 2 - 1) * bound
        params = {"weight": weight}
        if self.head_kind == "linear":
            params["bias"] = (torch.rand(ways, generator=g, dtype=torch.float64) * 2 - 1) * bound
        return {
            n: p.to(device=ref.device, dtype=ref.dtype).unsqueeze(0).repeat(tasks, *([1] * p.dim())).requires_grad_()
            for n, p in params.items()
        }

    def predict_batch(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        batch = self.task_batch(as_episode_list(episodes))
        with torch.no_grad():
            fs, fq = embed_tasks(self.backbone, batch)
        head = self.backbone.head
        params = self._new_heads(batch.tasks, batch.ways)
        opt = torch.optim.SGD(
            list(params.values()), lr=self.finetune_lr, momentum=self.finetune_momentum,
            weight_decay=self.finetune_weight_decay,
        )
        s = batch.support_y.shape[1]
        with torch.enable_grad():
            for _ in range(self.finetune_steps):
                opt.zero_grad(set_to_none=True)
                logits = head.forward_batched(fs, params)
                # Sum of per-task mean losses: each task's head gets exactly its own gradient.
                if batch.support_weight is None:
                    (F.cross_entropy(logits.flatten(0, 1), batch.support_y.flatten(), reduction="sum") / s).backward()
                else:
                    weighted_cross_entropy(logits, batch.support_y, batch.support_weight).sum().backward()
                opt.step()
        with torch.no_grad():
            return list(head.forward_batched(fq, params).unbind(0))

    def predict(self, episode: Episode) -> torch.Tensor:
        return self.predict_batch([episode])[0]


@register_algorithm("baseline++")
class BaselinePlusPlus(Baseline):
    """Baseline++ of Chen et al.: :class:`Baseline` with a cosine-similarity classifier for pre-training and
    fine-tuning (``head_scale`` sets its temperature)."""

    head_kind = "cosine"

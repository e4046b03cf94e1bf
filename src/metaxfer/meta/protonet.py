"""Prototypical Networks: classify a query by its squared Euclidean distance to each class's mean embedding.

``logits[q, c] = −‖f(x_q) − p_c‖²`` with ``p_c`` the mean of the support embeddings of class c. No inner loop: a
meta-batch of tasks is embedded in one forward pass on accelerators; on the CPU, where one task per pass is faster,
task by task, spread over worker threads in ``outer_step`` (:mod:`metaxfer.meta.parallel`).

References:
    Snell, Swersky, Zemel. "Prototypical Networks for Few-shot Learning", NeurIPS 2017.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.meta.base import MetaAlgorithm, MetaOutput, register_algorithm
from metaxfer.meta.common import TaskBatch, accuracy, as_episode_list, embed_tasks, prototypes

__all__ = ["ProtoNet", "squared_distances"]


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, per task.

    Args:
        x: (T, A, D).
        y: (T, B, D).

    Returns:
        (T, A, B) with entry ``‖x_a − y_b‖²`` (clamped at 0 against rounding).
    """
    xx = x.pow(2).sum(-1, keepdim=True)
    yy = y.pow(2).sum(-1).unsqueeze(1)
    return torch.baddbmm(xx + yy, x, y.transpose(1, 2), alpha=-2.0).clamp_min(0.0)


@register_algorithm("protonet")
class ProtoNet(MetaAlgorithm):
    """Prototypical Networks (squared Euclidean distance).

    Args:
        backbone: A backbone; only ``forward_features`` is used (built without a head by ``create_algorithm``).
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.
    """

    batched = True
    separable = True
    parallel_tasks = True
    uses_way_head = False
    weighted_support = True

    def __init__(self, backbone: nn.Module, **kwargs: Any) -> None:
        super().__init__(backbone, **kwargs)

    @classmethod
    def backbone_head(cls, *, ways: int, options: dict[str, Any]) -> dict[str, Any]:
        return {"num_classes": 0}

    def batch_logits(self, batch: TaskBatch) -> torch.Tensor:
        """Query logits of stacked tasks.

        Returns:
            (T, Q, N): negative squared distances to the class prototypes (weighted class means where the tasks
            have support weights).
        """
        fs, fq = embed_tasks(self.backbone, batch)
        return -squared_distances(fq, prototypes(fs, batch.support_y, batch.ways, batch.support_weight))

    def meta_loss(self, episodes: Episode | Sequence[Episode]) -> MetaOutput:
        batch = self.task_batch(as_episode_list(episodes))
        logits = self.batch_logits(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())
        return MetaOutput(loss, {"loss": float(loss.detach()), "acc": accuracy(logits.detach(), batch.query_y)})

    def predict_batch(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        with torch.no_grad():
            return list(self.batch_logits(self.task_batch(as_episode_list(episodes))).unbind(0))

    def predict(self, episode: Episode) -> torch.Tensor:
        return self.predict_batch([episode])[0]

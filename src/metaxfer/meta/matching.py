"""Matching Networks: a query's label distribution is an attention-weighted sum of the support labels.

``P(y = c | x̂, S) = Σ_{i: y_i = c} a(x̂, x_i)`` with ``a`` the softmax over the support set of scaled cosine
similarities between the query embedding f(x̂, S) and the support embeddings g(x_i, S). The returned "logits" are
``log P(y = c | x̂, S)`` computed stably as a per-class log-sum-exp of the similarities, so cross-entropy on them is
the paper's negative log-likelihood and their arg-max is the prediction.

Full-context embeddings (``fce=True``): g is the body's embedding plus the outputs of a bidirectional LSTM run over
the support set; f is an attention LSTM that reads the support embeddings for ``fce_steps`` steps
(``h_k = LSTM([f'(x̂), r_{k−1}], h_{k−1}) + f'(x̂)``, ``r_k = Σ softmax(h_k · g(x_i)) g(x_i)``).

References:
    Vinyals, Blundell, Lillicrap, Kavukcuoglu, Wierstra. "Matching Networks for One Shot Learning", NeurIPS 2016.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.errors import EpisodeError
from metaxfer.meta.base import MetaAlgorithm, MetaOutput, register_algorithm
from metaxfer.meta.common import TaskBatch, accuracy, as_episode_list, embed_tasks

__all__ = ["MatchingNetwork", "attention_log_probs"]


def attention_log_probs(similarities: torch.Tensor, support_y: torch.Tensor, ways: int) -> torch.Tensor:
    """Log class probabilities of attention over the support set.

    Args:
        similarities: Attention scores (T, Q, S) (before the softmax).
        support_y: Support labels (T, S).
        ways: N.

    Returns:
        (T, Q, N): ``log Σ_{i: y_i = c} softmax(similarities)_i``.

    Raises:
        EpisodeError: A class has no support example.
    """
    member = F.one_hot(support_y, ways).bool()  # (T, S, N)
    if not bool(member.any(1).all()):
        raise EpisodeError("a class of the episode has no support example; every class needs at least one shot")
    masked = similarities.unsqueeze(-1).masked_fill(~member.unsqueeze(1), float("-inf"))  # (T, Q, S, N)
    return masked.logsumexp(2) - similarities.logsumexp(-1, keepdim=True)


@register_algorithm("matchingnet")
class MatchingNetwork(MetaAlgorithm):
    """Matching Networks, optionally with full-context embeddings.

    Support weights (``Episode.support_weight``) enter the final attention: ``a_i`` is proportional to
    ``w_i exp(s_i)``; the full-context embeddings read every support image alike.

    Args:
        backbone: A backbone; only ``forward_features`` is used.
        fce: Use full-context embeddings (bidirectional support LSTM and attention LSTM for queries).
        fce_steps: Reading steps of the attention LSTM.
        scale: Multiplier of the cosine similarities before the softmax (the paper uses 1; a larger value
            sharpens the attention and trains faster).
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.
    """

    batched = True
    separable = True
    parallel_tasks = True
    uses_way_head = False
    weighted_support = True

    def __init__(
        self,
        backbone: nn.Module,
        *,
        fce: bool = False,
        fce_steps: int = 3,
        scale: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if fce_steps < 1:
            raise ValueError(f"fce_steps must be >= 1, got {fce_steps}")
        self.fce, self.fce_steps, self.scale = bool(fce), int(fce_steps), float(scale)
        if self.fce:
            d = backbone.num_features
            self.support_lstm = nn.LSTM(d, d, batch_first=True, bidirectional=True)
            self.query_cell = nn.LSTMCell(2 * d, d)
            self.support_lstm.to(**self._factory())
            self.query_cell.to(**self._factory())

    @classmethod
    def backbone_head(cls, *, ways: int, options: dict[str, Any]) -> dict[str, Any]:
        return {"num_classes": 0}

    def _support_context(self, fs: torch.Tensor) -> torch.Tensor:
        out, _ = self.support_lstm(fs)  # (T, S, 2D)
        d = fs.shape[-1]
        return fs + out[..., :d] + out[..., d:]

    def _query_context(self, fq: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        t, q, d = fq.shape
        f0 = fq.reshape(t * q, d)
        h, c = torch.zeros_like(f0), torch.zeros_like(f0)
        r = torch.zeros_like(f0)
        for _ in range(self.fce_steps):
            h_hat, c = self.query_cell(torch.cat([f0, r], dim=-1), (h, c))
            h = h_hat + f0
            attention = torch.softmax(torch.bmm(h.view(t, q, d), g.transpose(1, 2)), dim=-1)  # (T, Q, S)
            r = torch.bmm(attention, g).reshape(t * q, d)
        return h.view(t, q, d)

    def batch_logits(self, batch: TaskBatch) -> torch.Tensor:
        """Query log-probabilities of stacked tasks, (T, Q, N)."""
        fs, fq = embed_tasks(self.backbone, batch)
        if self.fce:
            fs = self._support_context(fs)
            fq = self._query_context(fq, fs)
        sims = self.scale * torch.bmm(F.normalize(fq, dim=-1), F.normalize(fs, dim=-1).transpose(1, 2))
        if batch.support_weight is not None:  # attention a_i proportional to w_i exp(s_i)
            w = batch.support_weight.to(sims.dtype)
            per_class = (F.one_hot(batch.support_y, batch.ways).to(w.dtype) * w.unsqueeze(-1)).sum(1)  # (T, N)
            if bool((per_class <= 0).any()):
                raise EpisodeError("a class of the episode has only support examples of weight 0; every class needs "
                                   "at least one shot of positive weight")
            sims = sims + w.log().unsqueeze(1)
        return attention_log_probs(sims, batch.support_y, batch.ways)

    def meta_loss(self, episodes: Episode | Sequence[Episode]) -> MetaOutput:
        batch = self.task_batch(as_episode_list(episodes))
        logits = self.batch_logits(batch)
        loss = F.nll_loss(logits.flatten(0, 1), batch.query_y.flatten())
        return MetaOutput(loss, {"loss": float(loss.detach()), "acc": accuracy(logits.detach(), batch.query_y)})

    def predict_batch(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        with torch.no_grad():
            return list(self.batch_logits(self.task_batch(as_episode_list(episodes))).unbind(0))

    def predict(self, episode: Episode) -> torch.Tensor:
        return self.predict_batch([episode])[0]

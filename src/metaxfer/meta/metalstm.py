"""The Meta-LSTM learner of Ravi & Larochelle: an LSTM whose cell state *is* the learner's parameter vector.

At inner step t the learner's parameters θ_{t−1} (flattened, one coordinate per LSTM "batch" row) are updated like an
LSTM cell state:

    θ_t = f_t ⊙ θ_{t−1} − i_t ⊙ ∇_t,
    i_t = σ(W_I · [h_t, θ_{t−1}, i_{t−1}] + b_I),    f_t = σ(W_F · [h_t, θ_{t−1}, f_{t−1}] + b_F),

where ∇_t and L_t are the learner's support gradient and loss and h_t is the output of a first, ordinary LSTM layer
that reads the preprocessed (∇_t, L_t) coordinate-wise. All coordinates share the meta-learner's weights. As in the
paper, ∇_t and L_t are treated as inputs (no second derivatives); the meta-gradient reaches the LSTM weights and the
learner's initial parameters θ_0 through the chain of θ_t. The input bias starts low (a small learning rate), the
forget bias high (keep the parameters).

References:
    Ravi, Larochelle. "Optimization as a Model for Few-Shot Learning", ICLR 2017.
    Andrychowicz et al. "Learning to learn by gradient descent by gradient descent", NeurIPS 2016 (Appendix A:
    gradient preprocessing).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.episodes import Episode
from metaxfer.meta.base import MetaAlgorithm, register_algorithm
from metaxfer.meta.common import Task, accuracy, forward_logits, query_logits

__all__ = ["MetaLSTM", "MetaLSTMCell", "preprocess_gradients"]


def preprocess_gradients(x: torch.Tensor, *, p: float = 10.0) -> torch.Tensor:
    """Andrychowicz et al.'s scale-free encoding of gradients and losses.

    ``x ↦ (log|x| / p, sign x)`` when ``|x| ≥ e^{−p}``, else ``(−1, e^p x)``.

    Args:
        x: Any shape.
        p: The cut-off exponent.

    Returns:
        Shape ``x.shape + (2,)``.
    """
    big = x.abs() >= math.exp(-p)
    first = torch.where(big, torch.log(x.abs().clamp_min(1e-38)) / p, torch.full_like(x, -1.0))
    second = torch.where(big, torch.sign(x), x * math.exp(p))
    return torch.stack([first, second], dim=-1)


class MetaLSTMCell(nn.Module):
    """The second layer: gates computed per coordinate, cell state = parameters.

    Args:
        hidden: Size of the first layer's output h.

    Shape:
        h (n, hidden); theta, grad, i_prev, f_prev (n,). Returns (theta_new, i, f), each (n,).
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.w_i = nn.Parameter(torch.empty(hidden + 2))
        self.w_f = nn.Parameter(torch.empty(hidden + 2))
        self.b_i = nn.Parameter(torch.empty(()))
        self.b_f = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small weights, input bias in [−5, −4] (rates ≈ 0.01), forget bias in [4, 6] (keep ≈ 1)."""
        nn.init.uniform_(self.w_i, -0.01, 0.01)
        nn.init.uniform_(self.w_f, -0.01, 0.01)
        nn.init.uniform_(self.b_i, -5.0, -4.0)
        nn.init.uniform_(self.b_f, 4.0, 6.0)

    def _gate(
        self, w: torch.Tensor, b: torch.Tensor, h: torch.Tensor, theta: torch.Tensor, prev: torch.Tensor
    ) -> torch.Tensor:
        k = self.hidden
        return torch.sigmoid(h @ w[:k] + theta * w[k] + prev * w[k + 1] + b)

    def forward(
        self, h: torch.Tensor, theta: torch.Tensor, grad: torch.Tensor, i_prev: torch.Tensor, f_prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = self._gate(self.w_i, self.b_i, h, theta, i_prev)
        f = self._gate(self.w_f, self.b_f, h, theta, f_prev)
        return f * theta - i * grad, i, f


@register_algorithm("metalstm")
class MetaLSTM(MetaAlgorithm):
    """Ravi & Larochelle's LSTM meta-learner; the backbone's parameters are the learned initial state θ_0.

    Args:
        backbone: The learner, with a head of ``ways`` outputs.
        inner_steps: Updates the meta-learner makes per task during meta-training.
        eval_inner_steps: Updates in :meth:`predict` (default: ``inner_steps``).
        hidden: Size of the first (coordinate-wise) LSTM layer.
        preprocess_p: Cut-off exponent of the gradient/loss preprocessing.
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm` (``grad_clip`` defaults to
            0.25, as in the paper).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        hidden: int = 20,
        preprocess_p: float = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("grad_clip", 0.25)
        super().__init__(backbone, **kwargs)
        if inner_steps < 1:
            raise ValueError(f"MetaLSTM needs inner_steps >= 1, got {inner_steps}")
        self.inner_steps = int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
        self.preprocess_p = float(preprocess_p)
        self.input_lstm = nn.LSTMCell(4, hidden)
        self.update_cell = MetaLSTMCell(hidden)
        self.input_lstm.to(**self._factory())
        self.update_cell.to(**self._factory())
        named = [(n, p) for n, p in backbone.named_parameters()]
        self.learner_names = [n for n, _ in named]
        self.learner_shapes = [tuple(p.shape) for _, p in named]

    def _unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [math.prod(s) for s in self.learner_shapes]
        return {n: t.view(s) for n, t, s in zip(self.learner_names, theta.split(sizes), self.learner_shapes)}

    def adapt(self, task: Task, *, steps: int, keep_graph: bool) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Let the meta-learner update the learner ``steps`` times on the support set.

        Args:
            task: The task.
            steps: Updates.
            keep_graph: Keep the graph from the meta-parameters to the result (meta-training).

        Returns:
            The learner's adapted parameters by name, and the support loss before each update.
        """
        theta = torch.cat([p.reshape(-1) for p in self.backbone.parameters()])
        n = theta.numel()
        hidden = self.update_cell.hidden
        h = theta.new_zeros(n, hidden)
        c = theta.new_zeros(n, hidden)
        i_prev = theta.new_zeros(n)
        f_prev = theta.new_zeros(n)
        losses: list[torch.Tensor] = []
        for _ in range(steps):
            if not keep_graph:
                theta = theta.detach().requires_grad_()
            with torch.enable_grad():
                loss = F.cross_entropy(
                    forward_logits(self.backbone, task.support_x, params=self._unflatten(theta)), task.support_y
                )
                (grad,) = torch.autograd.grad(loss, theta)
            loss = loss.detach()
            losses.append(loss)
            p = self.preprocess_p
            inputs = torch.cat([preprocess_gradients(grad, p=p), preprocess_gradients(loss, p=p).expand(n, 2)], dim=-1)
            with torch.set_grad_enabled(keep_graph):
                h, c = self.input_lstm(inputs, (h, c))
                theta, i_prev, f_prev = self.update_cell(h, theta, grad, i_prev, f_prev)
        return self._unflatten(theta if keep_graph else theta.detach()), losses

    def task_loss(self, task: Task) -> tuple[torch.Tensor, dict[str, float]]:
        """Query cross-entropy of the learner after the meta-learner's updates."""
        params, losses = self.adapt(task, steps=self.inner_steps, keep_graph=True)
        logits = query_logits(self.backbone, task, params=params)
        loss = F.cross_entropy(logits, task.query_y)
        return loss, {
            "loss": float(loss.detach()),
            "acc": accuracy(logits.detach(), task.query_y),
            "support_loss": float(losses[0]),
        }

    def predict(self, episode: Episode) -> torch.Tensor:
        task = self.task(episode)
        params, _ = self.adapt(task, steps=self.eval_inner_steps, keep_graph=False)
        with torch.no_grad():
            return query_logits(self.backbone, task, params=params)

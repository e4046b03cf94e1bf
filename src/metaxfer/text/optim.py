"""Functional optimisers over parameter dictionaries: the whole state is a flat ``{name: tensor}`` dictionary.

One implementation serves every loop of :mod:`metaxfer.text`: MAML/Reptile inner loops, fine-tuning, joint
training, outer meta-updates and the language discriminator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["Params", "OptimizerSpec", "init_optimizer_state", "optimizer_update", "parameters_of", "leaves"]

#: A parameter dictionary ``{name: tensor}`` as in ``model.state_dict()``.
Params = dict[str, torch.Tensor]


def parameters_of(model: nn.Module) -> Params:
    """A detached copy of ``model``'s parameters: the starting point of a functional training run."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def leaves(params: Params) -> Params:
    """Detached copies of ``params`` that require gradients (the leaves of one differentiable step)."""
    return {k: v.detach().requires_grad_(True) for k, v in params.items()}


@dataclass(frozen=True)
class OptimizerSpec:
    """A functional optimiser.

    Attributes:
        kind: ``"sgd"`` or ``"adam"``.
        lr: Learning rate.
        betas: Adam's moment decay rates.
        eps: Adam's epsilon.
        weight_decay: Decoupled weight decay (AdamW style; for SGD plain L2 shrinkage).
        clip_norm: Clip the global gradient norm to this value first (``None``: no clipping).
    """

    kind: Literal["sgd", "adam"] = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("sgd", "adam"):
            raise ValueError(f"optimizer kind must be 'sgd' or 'adam', not {self.kind!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")


def init_optimizer_state(spec: OptimizerSpec, params: Params) -> dict[str, torch.Tensor]:
    """Fresh optimiser state: ``{"step": 0}`` plus Adam's ``m.<name>`` / ``v.<name>`` moments."""
    state = {"step": torch.zeros((), dtype=torch.long)}
    if spec.kind == "adam":
        for name, p in params.items():
            state[f"m.{name}"] = torch.zeros_like(p, memory_format=torch.preserve_format).detach()
            state[f"v.{name}"] = torch.zeros_like(p, memory_format=torch.preserve_format).detach()
    return state


def optimizer_update(
    spec: OptimizerSpec,
    params: Params,
    grads: Mapping[str, torch.Tensor | None],
    state: dict[str, torch.Tensor],
    *,
    per_task: bool = False,
) -> tuple[Params, dict[str, torch.Tensor], float]:
    """One optimiser step.

    Args:
        spec: The optimiser.
        params: Current parameters.
        grads: Gradients, same keys (missing or ``None`` gradients leave a parameter unchanged).
        state: State from :func:`init_optimizer_state` or an earlier update.
        per_task: Every tensor has a leading task dimension (several tasks adapted at once): gradient norms and
            clipping are then per task.

    Returns:
        ``(new_params, new_state, grad_norm)``: new detached tensors; the gradient norm before clipping (the mean
        over tasks with ``per_task``).
    """
    with torch.no_grad():
        present = {k: g for k, g in grads.items() if g is not None}
        if per_task:
            tasks = next(iter(params.values())).shape[0]
            sq = sum(g.float().pow(2).reshape(tasks, -1).sum(1) for g in present.values()) if present else None
            norm = torch.sqrt(sq) if sq is not None else torch.zeros(tasks)
        else:
            norm = torch.sqrt(sum((g.float() ** 2).sum() for g in present.values())) if present else torch.zeros(())
        scale: torch.Tensor | float = 1.0
        if spec.clip_norm is not None:
            scale = (spec.clip_norm / (norm + 1e-6)).clamp(max=1.0)
        step = int(state["step"]) + 1
        new_state = {"step": torch.tensor(step, dtype=torch.long)}
        out: Params = {}
        b1, b2 = spec.betas
        for name, p in params.items():
            g = present.get(name)
            p = p.detach()
            if g is None:
                out[name] = p
                if spec.kind == "adam":
                    new_state[f"m.{name}"], new_state[f"v.{name}"] = state[f"m.{name}"], state[f"v.{name}"]
                continue
            g = g * (scale.view(-1, *[1] * (g.dim() - 1)) if per_task and isinstance(scale, torch.Tensor) else scale)
            if spec.kind == "sgd":
                if spec.weight_decay:
                    g = g + spec.weight_decay * p
                out[name] = p - spec.lr * g
            else:
                m = state[f"m.{name}"] * b1 + (1 - b1) * g
                v = state[f"v.{name}"] * b2 + (1 - b2) * g * g
                m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
                new = p - spec.lr * m_hat / (v_hat.sqrt() + spec.eps)
                if spec.weight_decay:
                    new = new - spec.lr * spec.weight_decay * p
                out[name] = new
                new_state[f"m.{name}"], new_state[f"v.{name}"] = m, v
    return out, new_state, float(norm.mean())

"""GAN objectives by name: a pair of pure loss functions plus the regulariser each one expects.

Example:
    >>> objective = create_objective("hinge")
    >>> objective.name, objective.gradient_penalty
    ('hinge', 0.0)
    >>> sorted(GAN_OBJECTIVES)[:3]
    ['hinge', 'least-squares', 'minimax']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from metaxfer.gan import losses
from metaxfer.registry import Registry

__all__ = ["Objective", "GAN_OBJECTIVES", "create_objective", "register_objective"]

DLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GLoss = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """One adversarial objective.

    Attributes:
        name: Registry name.
        d_loss: ``d_loss(real_scores, fake_scores) -> scalar`` (a function of :mod:`metaxfer.gan.losses`).
        g_loss: ``g_loss(fake_scores) -> scalar``.
        gradient_penalty: Default weight of the WGAN-GP gradient penalty the step functions add (0: none).
        description: One line for listings and docs.
    """

    name: str
    d_loss: DLoss
    g_loss: GLoss
    gradient_penalty: float = 0.0
    description: str = ""


GAN_OBJECTIVES: Registry[Objective] = Registry("GAN objective")


def register_objective(objective: Objective) -> Objective:
    """Add ``objective`` to :data:`GAN_OBJECTIVES` under its name.

    Raises:
        ValueError: The name is taken.
    """
    GAN_OBJECTIVES.register(objective.name, objective)
    return objective


def create_objective(name: str) -> Objective:
    """The objective registered as ``name``.

    Args:
        name: One of ``GAN_OBJECTIVES.names()``: ``minimax``, ``nonsaturating``, ``least-squares``, ``hinge``,
            ``wgan-gp``.

    Returns:
        The :class:`Objective` (immutable; shared).

    Raises:
        UnknownNameError: No such objective; the message lists the valid names.
    """
    return GAN_OBJECTIVES.get(name)


register_objective(
    Objective(
        "minimax",
        losses.minimax_d_loss,
        losses.minimax_g_loss,
        description="original GAN: G minimises log(1 - D(G(z))) (saturates early in training)",
    )
)
register_objective(
    Objective(
        "nonsaturating",
        losses.minimax_d_loss,
        losses.nonsaturating_g_loss,
        description="original D loss; G maximises log D(G(z)) (the usual choice, e.g. DCGAN)",
    )
)
register_objective(
    Objective(
        "least-squares",
        losses.least_squares_d_loss,
        losses.least_squares_g_loss,
        description="LSGAN, targets 1 (real) and 0 (fake); CycleGAN's objective",
    )
)
register_objective(
    Objective(
        "hinge",
        losses.hinge_d_loss,
        losses.hinge_g_loss,
        description="hinge loss on unbounded critic scores (pairs well with spectral normalisation)",
    )
)
register_objective(
    Objective(
        "wgan-gp",
        losses.wasserstein_d_loss,
        losses.wasserstein_g_loss,
        gradient_penalty=10.0,
        description="Wasserstein critic with a gradient penalty of weight 10 (critic must not use batch norm)",
    )
)

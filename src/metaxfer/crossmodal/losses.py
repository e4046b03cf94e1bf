"""The matching-aware losses of GAN-INT-CLS, written over any registered GAN objective, and the step-level losses
of the text-conditional GAN.

The discriminator learns three kinds of pair: (real image, right description) is real; (real image, wrong
description) and (generated image, right description) are fake. For an objective whose discriminator loss is a sum
of a real term and a fake term, ``d_loss(r, f) = A(r) + B(f)`` (every objective of
:data:`metaxfer.gan.GAN_OBJECTIVES` is), GAN-INT-CLS's loss ``A(real_right) + ½ B(real_wrong) + ½ B(fake_right)`` is

    ``(1 − w) · d_loss(real_right, fake_right) + w · d_loss(real_right, real_wrong)`` with ``w = ½``,

which is what :func:`matching_aware_d_loss` computes (``w`` is ``wrong_weight``; ``w = 0`` is the plain conditional
GAN, GAN-CLS without the mismatch term). The generator's loss is the objective's, on its images scored with their
descriptions, plus (GAN-INT) the same loss on descriptions interpolated between two classes, which have no real
image: :func:`interpolate_texts`.

References:
    S. Reed et al. Generative Adversarial Text to Image Synthesis. ICML 2016 (algorithm 1, section 4.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from metaxfer.gan.objectives import Objective
from metaxfer.gan.utils import gradient_penalty, randn, to_floats

__all__ = [
    "matching_aware_d_loss",
    "mismatched_texts",
    "interpolate_texts",
    "t2i_discriminator_loss",
    "t2i_generator_loss",
]

DLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Net = Callable[..., Any]


def matching_aware_d_loss(
    real_right: torch.Tensor,
    real_wrong: torch.Tensor,
    fake_right: torch.Tensor,
    *,
    d_loss: DLoss,
    wrong_weight: float = 0.5,
) -> torch.Tensor:
    """The matching-aware discriminator loss.

    Args:
        real_right: Scores of real images with their own descriptions.
        real_wrong: Scores of real images with descriptions of other classes.
        fake_right: Scores of generated images with the descriptions they were generated from.
        d_loss: The objective's discriminator loss ``d_loss(real_scores, fake_scores)`` (e.g.
            ``create_objective("nonsaturating").d_loss``).
        wrong_weight: Share ``w`` of the fake term given to mismatched real pairs (½ in GAN-INT-CLS; 0 turns the
            mismatch term off).

    Returns:
        Scalar tensor: ``(1 − w) · d_loss(real_right, fake_right) + w · d_loss(real_right, real_wrong)``.

    Shape:
        each score tensor (N,) (any shape d_loss accepts).
    """
    if not 0.0 <= wrong_weight <= 1.0:
        raise ValueError(f"wrong_weight must lie in [0, 1], got {wrong_weight}")
    loss = (1.0 - wrong_weight) * d_loss(real_right, fake_right)
    if wrong_weight > 0:
        loss = loss + wrong_weight * d_loss(real_right, real_wrong)
    return loss


def mismatched_texts(texts: torch.Tensor) -> torch.Tensor:
    """Wrong descriptions for a batch: each row gets the next row's description (a cyclic shift by one).

    The batch must hold each class at most once, so that the shifted description always names another class.

    Shape:
        (N, D) → (N, D).
    """
    return texts.roll(1, dims=0)


def interpolate_texts(texts: torch.Tensor, *, beta: float = 0.5) -> torch.Tensor:
    """GAN-INT's interpolated descriptions: ``β t_i + (1 − β) t_{i+1}``, renormalised to unit length.

    Shape:
        (N, D) → (N, D).
    """
    return F.normalize(beta * texts + (1.0 - beta) * texts.roll(1, dims=0), dim=1)


def t2i_discriminator_loss(
    discriminator: Net,
    real: torch.Tensor,
    texts: torch.Tensor,
    fake: torch.Tensor,
    *,
    objective: Objective,
    wrong_weight: float = 0.5,
    gp_weight: float | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The discriminator's loss on one batch: matching-aware objective (+ the objective's gradient penalty).

    Args:
        discriminator: Called as ``d(x, texts, wrong_texts) -> (right, wrong)`` and ``d(x, texts)``
            (a :class:`~metaxfer.crossmodal.networks.MatchingDiscriminator`, or a function calling one with other
            parameters).
        real: Real images in [-1, 1], one per class of the batch.
        texts: Their descriptions' embeddings.
        fake: Images generated from ``texts`` (detached here).
        objective: From :func:`metaxfer.gan.create_objective`.
        wrong_weight: See :func:`matching_aware_d_loss`.
        gp_weight: WGAN-GP weight (default: the objective's); the penalty uses the right descriptions.
        augment: Differentiable augmentation applied to real and generated images before the discriminator (e.g.
            :func:`~metaxfer.crossmodal.augment.diff_augment`); the penalty sees un-augmented images.
        rng: Source of the penalty's interpolation weights.

    Returns:
        ``(loss, metrics)``: floats ``loss``, ``real_score``, ``wrong_score``, ``fake_score`` (and ``gp``).
    """
    wrong = mismatched_texts(texts)
    seen_real = real if augment is None else augment(real)
    seen_fake = fake.detach() if augment is None else augment(fake.detach())
    real_right, real_wrong = discriminator(seen_real, texts, wrong)
    fake_right = discriminator(seen_fake, texts)
    loss = matching_aware_d_loss(real_right, real_wrong, fake_right, d_loss=objective.d_loss, wrong_weight=wrong_weight)
    terms = {"real_score": real_right.mean(), "wrong_score": real_wrong.mean(), "fake_score": fake_right.mean()}
    weight = objective.gradient_penalty if gp_weight is None else gp_weight
    if weight > 0:
        gp = gradient_penalty(lambda x: discriminator(x, texts), real, fake, generator=rng)
        loss = loss + weight * gp
        terms["gp"] = gp
    return loss, to_floats({"loss": loss, **terms})


def t2i_generator_loss(
    generator: Net,
    discriminator: Net,
    texts: torch.Tensor,
    *,
    latent_dim: int,
    objective: Objective,
    fake: torch.Tensor | None = None,
    interpolation_weight: float = 0.0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The generator's loss: the objective on its images scored with their descriptions, plus GAN-INT's term.

    Freeze the discriminator's parameters around the backward pass (the engine methods do).

    Args:
        generator: Called as ``g(z, texts)``.
        discriminator: Called as ``d(x, texts)``.
        texts: Description embeddings.
        latent_dim: Size of the noise.
        objective: From :func:`metaxfer.gan.create_objective`.
        fake: Images already generated from ``texts`` (with their graph), instead of generating here.
        interpolation_weight: Weight of the loss on interpolated descriptions (0: off; 1 in GAN-INT).
        augment: The discriminator's differentiable augmentation (as in :func:`t2i_discriminator_loss`).
        rng: Source of noise.

    Returns:
        ``(loss, metrics)``: floats ``loss``, ``fake_score`` and, when used, ``interp_score``.
    """
    n = texts.shape[0]
    if fake is None:
        fake = generator(randn(n, latent_dim, generator=rng, device=texts.device), texts)
    def seen(x: torch.Tensor) -> torch.Tensor:
        return x if augment is None else augment(x)

    scores = discriminator(seen(fake), texts)
    loss = objective.g_loss(scores)
    terms = {"fake_score": scores.mean()}
    if interpolation_weight > 0:
        mixed = interpolate_texts(texts)
        mixed_fake = generator(randn(n, latent_dim, generator=rng, device=texts.device), mixed)
        mixed_scores = discriminator(seen(mixed_fake), mixed)
        loss = loss + interpolation_weight * objective.g_loss(mixed_scores)
        terms["interp_score"] = mixed_scores.mean()
    return loss, to_floats({"loss": loss, **terms})

"""Discriminator and generator steps for noise → image GANs (unconditional, class-conditional, DAGAN).

Two layers, so that both a hand-written loop and the training engine can use them:

- :func:`discriminator_loss` / :func:`generator_loss` compute the loss tensor and float metrics and touch no
  optimiser (the engine back-propagates and steps itself);
- :func:`d_step` / :func:`g_step` add ``zero_grad`` → ``backward`` → ``step`` (and the EMA update), and
  :func:`gan_step` runs one discriminator and one generator update that share a single generator forward pass,
  as the usual DCGAN loop does.

The *condition* is whatever the networks are conditioned on: ``None`` (unconditional), class labels (N,) int64
(class-conditional; projection or auxiliary-classifier discriminators), or the source images of a DAGAN. The
generator is called as ``generator(z, condition)`` and the discriminator as ``discriminator(x, condition)`` (or
``discriminator.scores_and_classes(x, condition)`` when it has that method, which auxiliary classifiers need).

Example:
    >>> import torch
    >>> from metaxfer.gan import DCGANGenerator, DCGANDiscriminator, create_objective
    >>> g, d = DCGANGenerator(image_size=16, width=8), DCGANDiscriminator(image_size=16, width=8)
    >>> opt_g, opt_d = torch.optim.Adam(g.parameters(), 2e-4), torch.optim.Adam(d.parameters(), 2e-4)
    >>> metrics = gan_step(g, d, torch.rand(4, 1, 16, 16) * 2 - 1, g_optimizer=opt_g, d_optimizer=opt_d,
    ...                    objective=create_objective("nonsaturating"))
    >>> sorted(metrics)[:3]
    ['d/fake_score', 'd/loss', 'd/real_score']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metaxfer.gan.losses import auxiliary_class_loss
from metaxfer.gan.objectives import Objective
from metaxfer.gan.utils import (
    EMA,
    check_gradient_penalty,
    frozen_parameters,
    gradient_penalty,
    r1_penalty,
    randint,
    randn,
    to_floats,
)

__all__ = [
    "discriminator_loss",
    "generator_loss",
    "d_step",
    "g_step",
    "gan_step",
    "generate",
    "scores_and_classes",
]


def scores_and_classes(
    discriminator: nn.Module, x: torch.Tensor, condition: Any = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The discriminator's scores and, for an auxiliary classifier, its class logits.

    Args:
        discriminator: A :class:`~metaxfer.gan.networks.Discriminator` or any module called as ``d(x, condition)``.
        x: Images.
        condition: Labels, condition images, or ``None``.

    Returns:
        ``(scores, class_logits or None)``.
    """
    method = getattr(discriminator, "scores_and_classes", None)
    if method is not None:
        return method(x, condition)
    return (discriminator(x) if condition is None else discriminator(x, condition)), None


def generate(
    generator: nn.Module,
    n: int,
    condition: Any = None,
    *,
    rng: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, Any]:
    """Draw noise and run the generator (with gradients, in its current mode).

    For a class-conditional generator and ``condition=None``, the classes are drawn uniformly.

    Args:
        generator: Has ``latent_dim`` (and ``num_classes`` when class-conditional); called as ``g(z, condition)``.
        n: Number of images.
        condition: Labels (N,), condition images (N, C, H, W), or ``None``.
        rng: Source of the noise (and of drawn labels).
        device: Where the noise lives (default: the generator's device).

    Returns:
        ``(images, condition)``; the condition is the one used (drawn labels included).

    Shape:
        images: (n, C, H, W) in [-1, 1].
    """
    if device is None:
        device = next(generator.parameters()).device
    num_classes = int(getattr(generator, "num_classes", 0))
    if condition is None and num_classes:
        condition = randint(num_classes, n, generator=rng, device=device)
    z = randn(n, generator.latent_dim, generator=rng, device=device)  # type: ignore[arg-type]
    return generator(z, condition), condition


def discriminator_loss(
    generator: nn.Module,
    discriminator: nn.Module,
    real: torch.Tensor,
    condition: Any = None,
    *,
    objective: Objective,
    fake: torch.Tensor | None = None,
    fake_condition: Any = None,
    gp_weight: float | None = None,
    r1_gamma: float = 0.0,
    aux_weight: float = 1.0,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The discriminator's loss on one batch: objective + optional gradient penalty, R1 and auxiliary terms.

    Args:
        generator: Makes the fakes when ``fake`` is not given (run without gradients).
        discriminator: The network to train.
        real: Real images in [-1, 1].
        condition: The real images' condition (labels, DAGAN source images) or ``None``; fakes generated here use
            it too.
        objective: From :func:`~metaxfer.gan.objectives.create_objective`.
        fake: Generated images to use instead of generating (detached here).
        fake_condition: The condition of ``fake`` (default: ``condition``).
        gp_weight: Weight of the WGAN-GP penalty (default: the objective's, 10 for ``wgan-gp``, else 0); the
            interpolated images are scored with the real images' condition.
        r1_gamma: Weight γ of the R1 penalty (added as ``γ/2 · R1``; 0: off).
        aux_weight: Weight of the auxiliary-classifier loss (real and fake), if the discriminator has that head.
        rng: Source of noise and of the penalty's interpolation weights.

    Returns:
        ``(loss, metrics)``: the scalar loss and floats ``loss``, ``real_score``, ``fake_score`` and, when used,
        ``gp``, ``r1``, ``aux``, ``aux_acc`` (accuracy of the class head on real images).

    Shape:
        ``real``: (N, C, H, W); ``condition``: (N,) labels or (N, C', H, W) images.

    References:
        Gulrajani et al. 2017 (gradient penalty); Mescheder et al. 2018 (R1); Odena et al. 2017 (AC-GAN).
    """
    gp_weight = objective.gradient_penalty if gp_weight is None else gp_weight
    check_gradient_penalty(discriminator, gp_weight)
    if fake is None:
        with torch.no_grad():
            fake, fake_condition = generate(generator, real.shape[0], condition, rng=rng, device=real.device)
    else:
        fake = fake.detach()
        fake_condition = condition if fake_condition is None else fake_condition
    if r1_gamma > 0:
        real = real.detach().requires_grad_(True)
    real_scores, real_logits = scores_and_classes(discriminator, real, condition)
    fake_scores, fake_logits = scores_and_classes(discriminator, fake, fake_condition)
    loss = objective.d_loss(real_scores, fake_scores)
    terms: dict[str, torch.Tensor] = {"real_score": real_scores.mean(), "fake_score": fake_scores.mean()}
    if gp_weight > 0:
        gp = gradient_penalty(lambda x: scores_and_classes(discriminator, x, condition)[0], real, fake, generator=rng)
        loss = loss + gp_weight * gp
        terms["gp"] = gp
    if r1_gamma > 0:
        r1 = r1_penalty(real_scores, real)
        loss = loss + 0.5 * r1_gamma * r1
        terms["r1"] = r1
    if real_logits is not None and fake_logits is not None and aux_weight > 0:
        aux = auxiliary_class_loss(real_logits, condition) + auxiliary_class_loss(fake_logits, fake_condition)
        loss = loss + aux_weight * aux
        terms["aux"] = aux
        terms["aux_acc"] = (real_logits.argmax(dim=1) == condition).float().mean()
    return loss, to_floats({"loss": loss, **terms})


def generator_loss(
    generator: nn.Module,
    discriminator: nn.Module,
    condition: Any = None,
    *,
    objective: Objective,
    batch_size: int | None = None,
    fake: torch.Tensor | None = None,
    aux_weight: float = 1.0,
    rng: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The generator's loss on one batch (freeze the discriminator around the backward pass; :func:`g_step` does).

    Args:
        generator: The network to train.
        discriminator: Scores the fakes.
        condition: Labels or DAGAN source images for the fakes; for a class-conditional generator ``None`` draws
            labels uniformly.
        objective: From :func:`~metaxfer.gan.objectives.create_objective`.
        batch_size: Number of fakes (default: the size of ``condition``).
        fake: Generated images (with their graph) to score instead of generating.
        aux_weight: Weight of the auxiliary-classifier loss on the fakes.
        rng: Source of noise and labels.
        device: Where the noise lives.

    Returns:
        ``(loss, metrics)``: the scalar loss and floats ``loss``, ``fake_score`` and, when used, ``aux``.

    Raises:
        ValueError: Neither ``batch_size``, ``condition`` nor ``fake`` tells how many images to make.
    """
    if fake is None:
        n = batch_size if batch_size is not None else (len(condition) if condition is not None else None)
        if n is None:
            raise ValueError("generator_loss needs batch_size (or a condition, or fake images) to know how many fakes")
        fake, condition = generate(generator, n, condition, rng=rng, device=device)
    scores, logits = scores_and_classes(discriminator, fake, condition)
    loss = objective.g_loss(scores)
    terms: dict[str, torch.Tensor] = {"fake_score": scores.mean()}
    if logits is not None and aux_weight > 0:
        aux = auxiliary_class_loss(logits, condition)
        loss = loss + aux_weight * aux
        terms["aux"] = aux
    return loss, to_floats({"loss": loss, **terms})


def d_step(
    generator: nn.Module,
    discriminator: nn.Module,
    real: torch.Tensor,
    condition: Any = None,
    *,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    fake: torch.Tensor | None = None,
    fake_condition: Any = None,
    gp_weight: float | None = None,
    r1_gamma: float = 0.0,
    aux_weight: float = 1.0,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One discriminator update: ``zero_grad``, :func:`discriminator_loss`, ``backward``, ``step``.

    Args:
        generator: Makes the fakes (without gradients) unless ``fake`` is passed.
        discriminator: The network to update.
        real: Real images in [-1, 1].
        condition: Labels / DAGAN source images of ``real``, or ``None``.
        optimizer: The discriminator's optimiser.
        objective: From :func:`~metaxfer.gan.objectives.create_objective`.
        fake: Generated images to use instead of generating.
        fake_condition: Their condition (default: ``condition``).
        gp_weight: Gradient-penalty weight (default: the objective's).
        r1_gamma: R1 weight (0: off).
        aux_weight: Auxiliary-classifier weight.
        rng: Source of noise and of the penalty's interpolation weights.

    Returns:
        The float metrics of :func:`discriminator_loss`.

    Shape:
        ``real``: (N, C, H, W); ``condition``: (N,) or (N, C', H, W).
    """
    optimizer.zero_grad(set_to_none=True)
    loss, metrics = discriminator_loss(
        generator,
        discriminator,
        real,
        condition,
        objective=objective,
        fake=fake,
        fake_condition=fake_condition,
        gp_weight=gp_weight,
        r1_gamma=r1_gamma,
        aux_weight=aux_weight,
        rng=rng,
    )
    loss.backward()
    optimizer.step()
    return metrics


def g_step(
    generator: nn.Module,
    discriminator: nn.Module,
    condition: Any = None,
    *,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    batch_size: int | None = None,
    fake: torch.Tensor | None = None,
    aux_weight: float = 1.0,
    ema: EMA | None = None,
    rng: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """One generator update with the discriminator frozen (its weight gradients are never computed).

    Args:
        generator: The network to update.
        discriminator: Scores the fakes.
        condition: Labels / DAGAN source images, or ``None`` (class-conditional: labels drawn uniformly).
        optimizer: The generator's optimiser.
        objective: From :func:`~metaxfer.gan.objectives.create_objective`.
        batch_size: Number of fakes when there is no condition.
        fake: Generated images (with their graph) to score instead of generating.
        aux_weight: Auxiliary-classifier weight.
        ema: A moving average of the generator to update after the step.
        rng: Source of noise and labels.
        device: Where the noise lives (default: the generator's device).

    Returns:
        The float metrics of :func:`generator_loss`.
    """
    optimizer.zero_grad(set_to_none=True)
    with frozen_parameters(discriminator):
        loss, metrics = generator_loss(
            generator,
            discriminator,
            condition,
            objective=objective,
            batch_size=batch_size,
            fake=fake,
            aux_weight=aux_weight,
            rng=rng,
            device=device,
        )
        loss.backward()
    optimizer.step()
    if ema is not None:
        ema.update(generator)
    return metrics


def gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    real: torch.Tensor,
    condition: Any = None,
    *,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    objective: Objective,
    gp_weight: float | None = None,
    r1_gamma: float = 0.0,
    aux_weight: float = 1.0,
    ema: EMA | None = None,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One discriminator update then one generator update, sharing one generator forward pass.

    The fakes are made once (with their graph), scored detached for the discriminator, then scored again by the
    updated discriminator for the generator — the usual DCGAN loop. Fakes use the real batch's condition.

    Args:
        generator: The generator.
        discriminator: The discriminator.
        real: Real images in [-1, 1].
        condition: Labels / DAGAN source images of ``real``, or ``None``.
        g_optimizer: The generator's optimiser.
        d_optimizer: The discriminator's optimiser.
        objective: From :func:`~metaxfer.gan.objectives.create_objective`.
        gp_weight: Gradient-penalty weight (default: the objective's).
        r1_gamma: R1 weight (0: off).
        aux_weight: Auxiliary-classifier weight.
        ema: A moving average of the generator to update.
        rng: Source of noise.

    Returns:
        The metrics of both steps, prefixed ``d/`` and ``g/``.

    Shape:
        ``real``: (N, C, H, W); ``condition``: (N,) or (N, C', H, W).
    """
    fake, fake_condition = generate(generator, real.shape[0], condition, rng=rng, device=real.device)
    d_metrics = d_step(
        generator,
        discriminator,
        real,
        condition,
        optimizer=d_optimizer,
        objective=objective,
        fake=fake,
        fake_condition=fake_condition,
        gp_weight=gp_weight,
        r1_gamma=r1_gamma,
        aux_weight=aux_weight,
        rng=rng,
    )
    g_metrics = g_step(
        generator,
        discriminator,
        fake_condition,
        optimizer=g_optimizer,
        objective=objective,
        fake=fake,
        aux_weight=aux_weight,
        ema=ema,
    )
    return {**{f"d/{k}": v for k, v in d_metrics.items()}, **{f"g/{k}": v for k, v in g_metrics.items()}}

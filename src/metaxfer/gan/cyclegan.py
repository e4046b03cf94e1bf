"""CycleGAN: unpaired translation between two domains A and B, with CyCADA's task-consistency term as an option.

Two ResNet translators (``g_ab``: A → B, ``g_ba``: B → A) and two PatchGAN discriminators (``d_a``, ``d_b``).
The generators minimise, for both directions,

    adversarial (least squares by default) + cycle_weight · |g_ba(g_ab(a)) - a|₁ + identity_weight · |g_ba(a) - a|₁
    [+ task_weight · CE(f(g_ab(a)), y_a) + task_weight · CE(f(g_ba(b)), argmax f(b))]

where ``f`` is a frozen classifier trained on the labelled source domain A (CyCADA's semantic consistency: a
translated digit must still be read as the same digit). The discriminators see fakes through an
:class:`~metaxfer.gan.utils.ImagePool`, and their loss is halved, as in the reference implementation.

Example:
    >>> import torch
    >>> from metaxfer.gan import create_objective
    >>> model = CycleGAN(1, 1, width=8, blocks=1, d_width=8)
    >>> g_opt = torch.optim.Adam(model.generator_parameters(), 2e-4, betas=(0.5, 0.999))
    >>> d_opt = torch.optim.Adam(model.discriminator_parameters(), 2e-4, betas=(0.5, 0.999))
    >>> pools = (ImagePool(50), ImagePool(50))
    >>> a, b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    >>> metrics = cyclegan_step(model, a, b, g_optimizer=g_opt, d_optimizer=d_opt,
    ...                         objective=create_objective("least-squares"), pools=pools)
    >>> "g/cycle" in metrics and "d/loss" in metrics
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

import torch
from torch import nn

from metaxfer.errors import MetaxferError
from metaxfer.gan.losses import cycle_consistency_loss, identity_loss, task_consistency_loss
from metaxfer.gan.networks import Discriminator, NormName, norm_layer
from metaxfer.gan.objectives import Objective
from metaxfer.gan.utils import (
    ImagePool,
    apply_spectral_norm,
    check_gradient_penalty,
    frozen_parameters,
    gradient_penalty,
    init_weights,
    to_floats,
)

__all__ = [
    "ResnetTranslator",
    "PatchDiscriminator",
    "CycleGAN",
    "Translations",
    "cyclegan_generator_loss",
    "cyclegan_discriminator_loss",
    "cyclegan_g_step",
    "cyclegan_d_step",
    "cyclegan_step",
]


# ---------------------------------------------------------------------------------------------------- networks
class _ResidualBlock(nn.Module):
    """x + (reflect-pad → conv3 → norm → ReLU → reflect-pad → conv3 → norm)(x)."""

    def __init__(self, channels: int, norm: NormName) -> None:
        super().__init__()
        bias = norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels, affine=norm != "instance"),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels, affine=norm != "instance"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetTranslator(nn.Module):
    """Image-to-image ResNet generator: 7×7 conv, stride-2 downsampling, residual blocks, transposed-conv
    upsampling, 7×7 conv and ``tanh``.

    Args:
        in_channels: Channels of the input domain.
        out_channels: Channels of the output domain.
        width: Channels of the first layer (they double at each downsampling).
        blocks: Residual blocks at the lowest resolution (6 for up to 128×128 in CycleGAN, 9 above).
        downsamplings: Stride-2 steps (the side must be divisible by ``2**downsamplings``).
        norm: ``instance`` (no affine, as in CycleGAN), ``batch``, ``layer`` or ``none``.

    Shape:
        (N, in_channels, H, W) → (N, out_channels, H, W), values in [-1, 1].

    References:
        J. Johnson, A. Alahi, L. Fei-Fei. Perceptual Losses for Real-Time Style Transfer and Super-Resolution. ECCV
        2016; J.-Y. Zhu et al. ICCV 2017 (appendix 7.2).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        *,
        width: int = 64,
        blocks: int = 6,
        downsamplings: int = 2,
        norm: NormName = "instance",
    ) -> None:
        super().__init__()
        if blocks < 0 or downsamplings < 0:
            raise ValueError(f"ResnetTranslator: blocks and downsamplings must be >= 0, got {blocks}, {downsamplings}")
        self.downsamplings = downsamplings
        bias, affine = norm != "batch", norm != "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, width, 7, bias=bias),
            norm_layer(norm, width, affine=affine),
            nn.ReLU(inplace=True),
        ]
        c = width
        for _ in range(downsamplings):
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), norm_layer(norm, 2 * c, affine=affine), nn.ReLU(True)]
            c *= 2
        layers += [_ResidualBlock(c, norm) for _ in range(blocks)]
        for _ in range(downsamplings):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm_layer(norm, c // 2, affine=affine),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate images (see the class docstring for shapes)."""
        step = 2**self.downsamplings
        if x.shape[-1] % step or x.shape[-2] % step:
            raise ValueError(
                f"ResnetTranslator with {self.downsamplings} downsamplings needs sides divisible by {step}, got "
                f"{tuple(x.shape[-2:])}; resize the domain (metaxfer.data.transforms.Resize) first"
            )
        return self.body(x)


class PatchDiscriminator(Discriminator):
    """PatchGAN discriminator: one score per overlapping patch (70×70 pixels at ``layers=3`` on large images).

    Args:
        channels: Input channels.
        width: Channels of the first layer (doubling, capped at 8×).
        layers: Stride-2 convolutions.
        norm: ``instance`` (as in CycleGAN), ``batch``, ``layer`` or ``none``.
        spectral_norm: Spectrally normalise every layer.
        image_size: If given, checked to leave at least one patch.

    Shape:
        (N, channels, H, W) → (N, 1, H', W') with H' = H / 2**layers - 2.

    References:
        P. Isola et al. Image-to-Image Translation with Conditional Adversarial Networks. CVPR 2017.
    """

    def __init__(
        self,
        channels: int = 3,
        *,
        width: int = 64,
        layers: int = 3,
        norm: NormName = "instance",
        spectral_norm: bool = False,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"PatchDiscriminator: layers must be >= 1, got {layers}")
        if image_size is not None and image_size // 2**layers < 3:
            raise ValueError(
                f"PatchDiscriminator with {layers} stride-2 layers needs images of at least {3 * 2**layers} pixels, "
                f"got {image_size}; use fewer layers"
            )
        self.num_classes, self.conditioning = 0, "none"
        self.embed = self.classifier = None
        bias = norm == "none"
        body: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for i in range(1, layers + 1):
            c_out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            body += [nn.Conv2d(c, c_out, 4, stride, 1, bias=bias), norm_layer(norm, c_out), nn.LeakyReLU(0.2, True)]
            c = c_out
        self.body = nn.Sequential(*body)
        self.head = nn.Conv2d(c, 1, 4, 1, 1)
        init_weights(self, scheme="normal", gain=0.02)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image → last feature map. Shape: (N, C, H, W) → (N, F, h, w)."""
        return self.body(x)

    def forward_head(
        self, features: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feature map → patch scores (N, 1, H', W') (``labels`` are ignored: unconditional)."""
        return self.head(features), None


class CycleGAN(nn.Module):
    """The four networks of a CycleGAN, in one module (one state dict for checkpoints).

    Args:
        channels_a: Channels of domain A.
        channels_b: Channels of domain B.
        width: First-layer channels of the translators.
        blocks: Residual blocks of the translators.
        downsamplings: Stride-2 steps of the translators.
        d_width: First-layer channels of the discriminators.
        d_layers: Stride-2 layers of the discriminators.
        norm: Normalisation of all four networks (``instance`` in CycleGAN).
        spectral_norm: Spectrally normalise the discriminators.

    Attributes:
        g_ab, g_ba: The translators A → B and B → A.
        d_a, d_b: The discriminators of domains A and B.
    """

    def __init__(
        self,
        channels_a: int = 3,
        channels_b: int = 3,
        *,
        width: int = 64,
        blocks: int = 6,
        downsamplings: int = 2,
        d_width: int = 64,
        d_layers: int = 3,
        norm: NormName = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.channels_a, self.channels_b = channels_a, channels_b
        kw = {"width": width, "blocks": blocks, "downsamplings": downsamplings, "norm": norm}
        self.g_ab = init_weights(ResnetTranslator(channels_a, channels_b, **kw), scheme="normal")
        self.g_ba = init_weights(ResnetTranslator(channels_b, channels_a, **kw), scheme="normal")
        dkw = {"width": d_width, "layers": d_layers, "norm": norm, "spectral_norm": spectral_norm}
        self.d_a = PatchDiscriminator(channels_a, **dkw)
        self.d_b = PatchDiscriminator(channels_b, **dkw)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of both translators (for one generator optimiser)."""
        yield from self.g_ab.parameters()
        yield from self.g_ba.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of both discriminators (for one discriminator optimiser)."""
        yield from self.d_a.parameters()
        yield from self.d_b.parameters()

    @torch.no_grad()
    def translate(self, images: torch.Tensor, *, direction: Literal["ab", "ba"] = "ab") -> torch.Tensor:
        """Translate a batch without gradients, in the networks' current mode.

        Args:
            images: Images in [-1, 1] of the source domain.
            direction: ``ab`` (A → B) or ``ba``.

        Returns:
            The translated images in [-1, 1].

        Shape:
            (N, C_src, H, W) → (N, C_dst, H, W).
        """
        if direction not in ("ab", "ba"):
            raise ValueError(f"direction must be 'ab' or 'ba', got {direction!r}")
        return (self.g_ab if direction == "ab" else self.g_ba)(images)


class Translations(NamedTuple):
    """The generated images of one generator step (detached), for the discriminator step."""

    fake_a: torch.Tensor
    fake_b: torch.Tensor


# ---------------------------------------------------------------------------------------------------- losses
def _check_task_classifier(model: CycleGAN, classifier: nn.Module) -> None:
    if model.channels_a != model.channels_b:
        raise MetaxferError(
            f"the task-consistency term applies one classifier to both domains, which needs the same number of "
            f"channels; got A: {model.channels_a}, B: {model.channels_b}. Convert one domain with "
            "metaxfer.data.transforms.ToChannels first"
        )
    if any(p.requires_grad for p in classifier.parameters()):
        raise MetaxferError(
            "the task classifier must be frozen (it is a fixed, pretrained source classifier in CyCADA): call "
            "classifier.requires_grad_(False).eval() before training"
        )


def cyclegan_generator_loss(
    model: CycleGAN,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    *,
    objective: Objective,
    cycle_weight: float = 10.0,
    identity_weight: float = 5.0,
    task_classifier: nn.Module | None = None,
    task_weight: float = 1.0,
    labels_a: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float], Translations]:
    """The translators' loss on one batch of each domain (freeze the discriminators around its backward pass).

    Args:
        model: The four networks.
        real_a: Images of domain A in [-1, 1].
        real_b: Images of domain B in [-1, 1].
        objective: Adversarial objective (``least-squares`` in CycleGAN).
        cycle_weight: Weight of each cycle-consistency term (10 in CycleGAN).
        identity_weight: Weight of each identity term (0.5 × 10 in the reference code; 0: off; needs
            ``channels_a == channels_b``).
        task_classifier: CyCADA's frozen source classifier on [-1, 1] images (``None``: no task term).
        task_weight: Weight of each task-consistency term.
        labels_a: True labels of ``real_a`` for the task term (default: the classifier's own predictions).

    Returns:
        ``(loss, metrics, translations)``: metrics ``loss``, ``adv``, ``cycle`` and, when used, ``identity``,
        ``task``; the detached fakes for :func:`cyclegan_discriminator_loss`.

    Shape:
        ``real_a``: (N, C_a, H, W); ``real_b``: (M, C_b, H, W); ``labels_a``: (N,).

    References:
        J.-Y. Zhu et al. ICCV 2017; J. Hoffman et al. CyCADA. ICML 2018.
    """
    fake_b = model.g_ab(real_a)
    fake_a = model.g_ba(real_b)
    adv = objective.g_loss(model.d_b(fake_b)) + objective.g_loss(model.d_a(fake_a))
    cycle = cycle_consistency_loss(model.g_ba(fake_b), real_a) + cycle_consistency_loss(model.g_ab(fake_a), real_b)
    loss = adv + cycle_weight * cycle
    terms = {"adv": adv, "cycle": cycle}
    if identity_weight > 0:
        if model.channels_a != model.channels_b:
            raise MetaxferError(
                f"the identity loss feeds B images to g_ab, which needs the same channels in both domains (A: "
                f"{model.channels_a}, B: {model.channels_b}); set identity_weight=0"
            )
        ident = identity_loss(model.g_ab(real_b), real_b) + identity_loss(model.g_ba(real_a), real_a)
        loss = loss + identity_weight * ident
        terms["identity"] = ident
    if task_classifier is not None and task_weight > 0:
        _check_task_classifier(model, task_classifier)
        with torch.no_grad():
            target_a = labels_a if labels_a is not None else task_classifier(real_a).argmax(dim=1)
            target_b = task_classifier(real_b).argmax(dim=1)
        task = task_consistency_loss(task_classifier(fake_b), target_a) + task_consistency_loss(
            task_classifier(fake_a), target_b
        )
        loss = loss + task_weight * task
        terms["task"] = task
    return loss, to_floats({"loss": loss, **terms}), Translations(fake_a.detach(), fake_b.detach())


def cyclegan_discriminator_loss(
    model: CycleGAN,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fakes: Translations,
    *,
    objective: Objective,
    pools: tuple[ImagePool, ImagePool] | None = None,
    gp_weight: float | None = None,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Both discriminators' loss: ½·objective for each domain (+ gradient penalty for ``wgan-gp``).

    Args:
        model: The four networks.
        real_a: Images of domain A.
        real_b: Images of domain B.
        fakes: The generator step's translations.
        objective: Adversarial objective.
        pools: Image pools (A, B) the fakes pass through (``None``: use the latest fakes only).
        gp_weight: Gradient-penalty weight (default: the objective's).
        rng: Source of the penalty's interpolation weights.

    Returns:
        ``(loss, metrics)``: ``loss``, ``loss_a``, ``loss_b``, ``real_score``, ``fake_score`` (means over both
        domains) and ``gp`` when used.
    """
    fake_a, fake_b = fakes
    if pools is not None:
        fake_a, fake_b = pools[0].query(fake_a), pools[1].query(fake_b)
    gp_weight = objective.gradient_penalty if gp_weight is None else gp_weight
    real_sa, fake_sa = model.d_a(real_a), model.d_a(fake_a.detach())
    real_sb, fake_sb = model.d_b(real_b), model.d_b(fake_b.detach())
    loss_a = 0.5 * objective.d_loss(real_sa, fake_sa)
    loss_b = 0.5 * objective.d_loss(real_sb, fake_sb)
    loss = loss_a + loss_b
    terms = {
        "loss_a": loss_a,
        "loss_b": loss_b,
        "real_score": 0.5 * (real_sa.mean() + real_sb.mean()),
        "fake_score": 0.5 * (fake_sa.mean() + fake_sb.mean()),
    }
    if gp_weight > 0:
        check_gradient_penalty(model.d_a, gp_weight)
        check_gradient_penalty(model.d_b, gp_weight)
        gp = gradient_penalty(model.d_a, real_a, fake_a, generator=rng) + gradient_penalty(
            model.d_b, real_b, fake_b, generator=rng
        )
        loss = loss + 0.5 * gp_weight * gp
        terms["gp"] = gp
    return loss, to_floats({"loss": loss, **terms})


# ---------------------------------------------------------------------------------------------------- steps
def cyclegan_g_step(
    model: CycleGAN,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    cycle_weight: float = 10.0,
    identity_weight: float = 5.0,
    task_classifier: nn.Module | None = None,
    task_weight: float = 1.0,
    labels_a: torch.Tensor | None = None,
) -> tuple[dict[str, float], Translations]:
    """One update of both translators with the discriminators frozen.

    Args:
        model: The four networks.
        real_a: Images of domain A in [-1, 1].
        real_b: Images of domain B in [-1, 1].
        optimizer: Over :meth:`CycleGAN.generator_parameters`.
        objective: Adversarial objective (``least-squares`` in CycleGAN).
        cycle_weight: See :func:`cyclegan_generator_loss`.
        identity_weight: See :func:`cyclegan_generator_loss`.
        task_classifier: See :func:`cyclegan_generator_loss` (CyCADA).
        task_weight: See :func:`cyclegan_generator_loss`.
        labels_a: See :func:`cyclegan_generator_loss`.

    Returns:
        ``(metrics, translations)``.
    """
    optimizer.zero_grad(set_to_none=True)
    with frozen_parameters(model.d_a, model.d_b):
        loss, metrics, fakes = cyclegan_generator_loss(
            model,
            real_a,
            real_b,
            objective=objective,
            cycle_weight=cycle_weight,
            identity_weight=identity_weight,
            task_classifier=task_classifier,
            task_weight=task_weight,
            labels_a=labels_a,
        )
        loss.backward()
    optimizer.step()
    return metrics, fakes


def cyclegan_d_step(
    model: CycleGAN,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fakes: Translations,
    *,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    pools: tuple[ImagePool, ImagePool] | None = None,
    gp_weight: float | None = None,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One update of both discriminators.

    Args:
        model: The four networks.
        real_a: Images of domain A.
        real_b: Images of domain B.
        fakes: From :func:`cyclegan_g_step`.
        optimizer: Over :meth:`CycleGAN.discriminator_parameters`.
        objective: Adversarial objective.
        pools: See :func:`cyclegan_discriminator_loss`.
        gp_weight: See :func:`cyclegan_discriminator_loss`.
        rng: See :func:`cyclegan_discriminator_loss`.

    Returns:
        The float metrics.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, metrics = cyclegan_discriminator_loss(
        model, real_a, real_b, fakes, objective=objective, pools=pools, gp_weight=gp_weight, rng=rng
    )
    loss.backward()
    optimizer.step()
    return metrics


def cyclegan_step(
    model: CycleGAN,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    *,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    objective: Objective,
    pools: tuple[ImagePool, ImagePool] | None = None,
    cycle_weight: float = 10.0,
    identity_weight: float = 5.0,
    task_classifier: nn.Module | None = None,
    task_weight: float = 1.0,
    labels_a: torch.Tensor | None = None,
    gp_weight: float | None = None,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One CycleGAN iteration in the reference order: translators first, then discriminators on pooled fakes.

    Args:
        model: The four networks.
        real_a: Images of domain A in [-1, 1].
        real_b: Images of domain B in [-1, 1].
        g_optimizer: Over :meth:`CycleGAN.generator_parameters`.
        d_optimizer: Over :meth:`CycleGAN.discriminator_parameters`.
        objective: Adversarial objective (``least-squares`` in CycleGAN).
        pools: Image pools for A and B fakes.
        cycle_weight: See :func:`cyclegan_generator_loss`.
        identity_weight: See :func:`cyclegan_generator_loss`.
        task_classifier: See :func:`cyclegan_generator_loss` (CyCADA).
        task_weight: See :func:`cyclegan_generator_loss`.
        labels_a: See :func:`cyclegan_generator_loss`.
        gp_weight: See :func:`cyclegan_discriminator_loss`.
        rng: See :func:`cyclegan_discriminator_loss`.

    Returns:
        Metrics of both steps, prefixed ``g/`` and ``d/``.

    Shape:
        ``real_a``: (N, C_a, H, W); ``real_b``: (M, C_b, H, W).
    """
    g_metrics, fakes = cyclegan_g_step(
        model,
        real_a,
        real_b,
        optimizer=g_optimizer,
        objective=objective,
        cycle_weight=cycle_weight,
        identity_weight=identity_weight,
        task_classifier=task_classifier,
        task_weight=task_weight,
        labels_a=labels_a,
    )
    d_metrics = cyclegan_d_step(
        model, real_a, real_b, fakes, optimizer=d_optimizer, objective=objective, pools=pools, gp_weight=gp_weight,
        rng=rng,
    )
    return {**{f"g/{k}": v for k, v in g_metrics.items()}, **{f"d/{k}": v for k, v in d_metrics.items()}}

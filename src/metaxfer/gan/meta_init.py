"""A GAN whose initialisation is meta-learned over source tasks, so that a few steps on K images of a new class (or a
new domain) give a generator for it: Reptile, as in FIGR, and first-order MAML.

A *task* is a small set of images: those of one class, or of one group of classes (an alphabet, a few random
classes). The inner loop is ordinary alternating GAN training of a copy of the weights on the task's images:
``d`` then ``g`` updates with plain SGD or Adam (fresh moments per task). Everything is functional: the networks are
called with parameter dictionaries through :func:`torch.func.functional_call`; nothing clones a module.

Outer updates, written as losses whose gradient is the meta-gradient (any optimiser then applies them):

* ``reptile``: ``½ Σ_t ‖θ − φ_t‖² / T`` has gradient ``θ − mean_t φ_t``; SGD with learning rate ε (no momentum)
  is exactly Reptile's ``θ ← θ + ε · mean_t (φ_t − θ)``, for the generator and the discriminator together.
* ``fomaml``: after the inner loop on a task's support images, the GAN losses on its query images (new noise) are
  differentiated at the adapted weights φ_t: ``g_t = (∇_{φ_G} L_G, ∇_{φ_D} L_D)``; the surrogate
  ``Σ_t ⟨θ, stopgrad(g_t)⟩ / T`` has gradient ``mean_t g_t``, the first-order MAML meta-gradient.

Example:
    >>> model = MetaInitGAN(image_size=28, channels=1, latent_dim=32, width=16, d_width=16)
    >>> tasks = GANTaskSampler(domain.images, domain.labels, shots=5, queries=5, seed=0)
    >>> opt = torch.optim.SGD(model.parameters(), lr=1.0)
    >>> for _ in range(100):
    ...     model.outer_step([tasks.sample() for _ in range(4)], optimizer=opt, algorithm="reptile", rng=noise)
    >>> adapted = model.adapt(new_class_images, steps=10)       # uint8 (K, C, H, W)
    >>> images = adapted.sample(16, generator=torch.Generator().manual_seed(0))   # uint8 (16, C, H, W)

References:
    L. Clouâtre, M. Demers. FIGR: Few-shot Image Generation with Reptile. arXiv:1901.02199, 2019;
    A. Nichol, J. Achiam, J. Schulman. On First-Order Meta-Learning Algorithms. arXiv:1803.02999, 2018;
    C. Finn, P. Abbeel, S. Levine. Model-Agnostic Meta-Learning. ICML 2017.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from metaxfer.errors import DataFormatError, MetaxferError
from metaxfer.gan.networks import DCGANDiscriminator, DCGANGenerator, NormName
from metaxfer.gan.objectives import create_objective
from metaxfer.gan.utils import check_gradient_penalty, gan_to_uint8, gradient_penalty, randn, uint8_to_gan

__all__ = [
    "OUTER_ALGORITHMS",
    "INNER_OPTIMIZERS",
    "ParamDict",
    "GANParams",
    "InnerOptimizer",
    "InnerResult",
    "AdaptedGenerator",
    "MetaInitGAN",
    "GANTask",
    "GANTaskSampler",
    "check_images",
    "training_mode",
    "adam_update_",
]

log = logging.getLogger(__name__)

#: Outer update rules of :class:`MetaInitGAN`.
OUTER_ALGORITHMS: tuple[str, ...] = ("reptile", "fomaml")
#: Inner-loop optimisers.
INNER_OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")

ParamDict = dict[str, torch.Tensor]
OuterAlgorithm = Literal["reptile", "fomaml"]


def check_images(images: torch.Tensor, *, who: str, shape: tuple[int, int, int] | None = None) -> None:
    """Refuse anything but uint8 images (N >= 1, C, H, W), optionally of one (C, H, W).

    Raises:
        DataFormatError: Wrong type, dtype, rank, emptiness or shape; the message says what to pass.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataFormatError(
            f"{who} expects uint8 images shaped (N, C, H, W) like Domain.images or Episode.support_x, got {got}; "
            "convert float images in [-1, 1] with metaxfer.gan.gan_to_uint8"
        )
    if images.shape[0] == 0:
        raise DataFormatError(f"{who} got no images: pass at least one")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise DataFormatError(
            f"{who}: the networks take images shaped {tuple(shape)}, got {tuple(images.shape[1:])}; bring them to "
            "that format first (metaxfer.data.transforms.match_format)"
        )


@contextmanager
def training_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in training mode inside the block (batch statistics in batch norm) and restore their modes."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.train()
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


# ---------------------------------------------------------------------------------------------------- parameters
@dataclass
class GANParams:
    """Generator and discriminator weights as parameter dictionaries (names as in the modules).

    Attributes:
        g: Generator parameters.
        d: Discriminator parameters.
    """

    g: ParamDict
    d: ParamDict

    def detached(self) -> GANParams:
        """Copies cut from any graph (and not requiring gradients)."""
        return GANParams({n: p.detach().clone() for n, p in self.g.items()},
                         {n: p.detach().clone() for n, p in self.d.items()})

    def leaves(self) -> GANParams:
        """Fresh leaf copies that require gradients (the starting point of an inner loop)."""
        return GANParams({n: p.detach().clone().requires_grad_(True) for n, p in self.g.items()},
                         {n: p.detach().clone().requires_grad_(True) for n, p in self.d.items()})


@dataclass(frozen=True)
class InnerOptimizer:
    """The inner loop's update rule, applied in place to private leaf copies of the weights.

    ``sgd``: ``p ← p − lr · g``. ``adam``: the update of :class:`torch.optim.Adam` (no weight decay, no AMSGrad),
    with moments that start at zero for every task.

    Attributes:
        kind: ``sgd`` or ``adam``.
        lr: Step size.
        betas: Adam's moment decays.
        eps: Adam's denominator term.
    """

    kind: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.kind not in INNER_OPTIMIZERS:
            raise ValueError(f"inner optimizer must be one of {', '.join(INNER_OPTIMIZERS)}, got {self.kind!r}")
        if not self.lr > 0:
            raise ValueError(f"inner learning rate must be > 0, got {self.lr}")

    def init_state(self, params: ParamDict) -> dict[str, ParamDict]:
        """Zero moments for ``params`` (empty for SGD)."""
        if self.kind == "sgd":
            return {}
        return {"exp_avg": {n: torch.zeros_like(p) for n, p in params.items()},
                "exp_avg_sq": {n: torch.zeros_like(p) for n, p in params.items()}}

    @torch.no_grad()
    def step_(self, params: ParamDict, grads: Sequence[torch.Tensor], state: dict[str, ParamDict], *, step: int,
              lr: float | None = None) -> None:
        """Update ``params`` in place.

        Args:
            params: The weights (leaf tensors; their order matches ``grads``).
            grads: Their gradients.
            state: From :meth:`init_state`, updated in place.
            step: 1 for the first update of this state (Adam's bias correction).
            lr: Step size instead of ``self.lr``.
        """
        rate = self.lr if lr is None else lr
        if self.kind == "sgd":
            for p, g in zip(params.values(), grads, strict=True):
                p.sub_(g, alpha=rate)
            return
        adam_update_(list(params.values()), list(grads), list(state["exp_avg"].values()),
                     list(state["exp_avg_sq"].values()), step=step, lr=rate, betas=self.betas, eps=self.eps)


@torch.no_grad()
def adam_update_(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    exp_avg: Sequence[torch.Tensor],
    exp_avg_sq: Sequence[torch.Tensor],
    *,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> None:
    """One Adam update in place, the same arithmetic as :class:`torch.optim.Adam` (no decay, no AMSGrad).

    ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``, ``p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)``.

    Args:
        params: Tensors to update.
        grads: Their gradients.
        exp_avg: First moments (updated).
        exp_avg_sq: Second moments (updated).
        step: The update's number ``t``, from 1.
        lr: Step size.
        betas: ``(β₁, β₂)``.
        eps: ``ε``.

    References:
        D. P. Kingma, J. Ba. Adam: A Method for Stochastic Optimization. ICLR 2015.
    """
    b1, b2 = betas
    bc1, bc2 = 1 - b1**step, 1 - b2**step
    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq, strict=True):
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / bc2**0.5).add_(eps)
        p.addcdiv_(m, denom, value=-lr / bc1)


@dataclass
class InnerResult:
    """What :meth:`MetaInitGAN.inner_loop` returns.

    Attributes:
        params: The adapted weights (leaf tensors that require gradients).
        d_losses: Discriminator loss before each step.
        g_losses: Generator loss at each step.
    """

    params: GANParams
    d_losses: list[float] = field(default_factory=list)
    g_losses: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- adapted G
class AdaptedGenerator:
    """A generator architecture with adapted weights: draws images of the class it was adapted to.

    Batch-norm statistics are recomputed for the adapted weights over ``stats_samples`` noise vectors, so images are
    drawn in eval mode and one image never depends on the others drawn with it.

    Args:
        network: The generator architecture (its own weights are not used).
        params: The adapted weights by name.
        stats_samples: Noise vectors whose activations give the batch-norm statistics.
        stats_seed: Seed of that noise.
    """

    def __init__(self, network: nn.Module, params: ParamDict, *, stats_samples: int = 128, stats_seed: int = 0) -> None:
        self.network = network
        self.params = {n: p.detach() for n, p in params.items()}
        self.latent_dim = int(network.latent_dim)  # type: ignore[arg-type]
        self.image_shape = tuple(network.image_shape)  # type: ignore[arg-type]
        self.buffers = self._batch_norm_statistics(stats_samples, stats_seed)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @torch.no_grad()
    def _batch_norm_statistics(self, n: int, seed: int) -> ParamDict:
        buffers = {name: b.detach().clone() for name, b in self.network.named_buffers()}
        norms = [m for m in self.network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return buffers
        for name in buffers:  # start from empty statistics; momentum None averages the one pass below exactly
            if name.endswith("running_mean") or name.endswith("num_batches_tracked"):
                buffers[name].zero_()
            elif name.endswith("running_var"):
                buffers[name].fill_(1.0)
        momenta = [m.momentum for m in norms]
        was_training = self.network.training
        try:
            for m in norms:
                m.momentum = None
            self.network.train()
            z = randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed), device=self.device)
            functional_call(self.network, {**self.params, **buffers}, (z,))
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            self.network.train(was_training)
        return buffers

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] for noise ``z``. Shape: (N, latent_dim) → (N, C, H, W)."""
        was_training = self.network.training
        self.network.eval()
        try:
            return functional_call(self.network, {**self.params, **self.buffers}, (z.to(self.device),))
        finally:
            self.network.train(was_training)

    def sample(self, n: int, *, generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
        """Draw ``n`` images.

        Args:
            n: How many.
            generator: Source of the noise (a CPU generator: the result does not depend on the device).
            batch_size: Images per forward pass.

        Returns:
            uint8 (n, C, H, W) on the CPU.
        """
        if n < 0:
            raise ValueError(f"cannot draw {n} images")
        z = randn(n, self.latent_dim, generator=generator)
        parts = [gan_to_uint8(self(z[s : s + batch_size])).cpu() for s in range(0, n, batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, *self.image_shape, dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------------- the model
class MetaInitGAN(nn.Module):
    """A small unconditional DCGAN (generator and discriminator) whose weights are an initialisation to adapt.

    Args:
        image_size: Side of the images (even, >= 8; 28 → 14 → 7, 32 → 16 → 8 → 4, ...).
        channels: 1 or 3.
        latent_dim: Size of the noise ``z``.
        width: Generator width (:class:`~metaxfer.gan.networks.DCGANGenerator`).
        d_width: Discriminator width (:class:`~metaxfer.gan.networks.DCGANDiscriminator`).
        d_norm: Normalisation of the discriminator: ``layer`` (default; a batch of K = 1 real image is fine),
            ``instance``, ``none`` or ``batch``.
        objective: A registered GAN objective (:func:`~metaxfer.gan.objectives.create_objective`).
        gp_weight: Gradient-penalty weight (default: the objective's, 10 for ``wgan-gp``).
        inner_steps: Inner (adaptation) steps during meta-training.
        inner_lr: Inner step size.
        inner_optimizer: ``adam`` (default, β = (0.5, 0.999) as in DCGAN) or ``sgd``.
        batch_size: Generated images per inner step (the real batch is all of the task's images, or a random
            ``batch_size`` of them when there are more).

    Shape:
        Task images: uint8 (K, channels, image_size, image_size).
    """

    def __init__(
        self,
        *,
        image_size: int = 28,
        channels: int = 1,
        latent_dim: int = 32,
        width: int = 16,
        d_width: int = 16,
        d_norm: NormName = "layer",
        objective: str = "nonsaturating",
        gp_weight: float | None = None,
        inner_steps: int = 10,
        inner_lr: float = 1e-3,
        inner_optimizer: str = "adam",
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        if inner_steps < 1 or batch_size < 1:
            raise ValueError(f"MetaInitGAN needs inner_steps >= 1 and batch_size >= 1, got {inner_steps}, {batch_size}")
        self.generator = DCGANGenerator(latent_dim, image_size=image_size, channels=channels, width=width)
        self.discriminator = DCGANDiscriminator(image_size=image_size, channels=channels, width=d_width, norm=d_norm)
        self.objective = create_objective(objective)
        self.gp_weight = self.objective.gradient_penalty if gp_weight is None else float(gp_weight)
        check_gradient_penalty(self.discriminator, self.gp_weight)
        self.inner_steps = int(inner_steps)
        self.inner = InnerOptimizer(inner_optimizer, float(inner_lr))
        self.batch_size = int(batch_size)
        self.image_shape: tuple[int, int, int] = (channels, image_size, image_size)
        self.latent_dim = int(latent_dim)

    # ------------------------------------------------------------------------------------------------ plumbing
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def initial_params(self) -> GANParams:
        """The meta-parameters θ as parameter dictionaries (the live ``nn.Parameter`` s)."""
        return GANParams(dict(self.generator.named_parameters()), dict(self.discriminator.named_parameters()))

    def _buffer_copies(self, module: nn.Module) -> ParamDict:
        # private copies: batch-norm statistics of an inner loop never change the module's own buffers
        return {n: b.detach().clone() for n, b in module.named_buffers()}

    def _as_gan(self, images: torch.Tensor, who: str) -> torch.Tensor:
        check_images(images, who=who, shape=self.image_shape)
        ref = next(self.parameters())
        if ref.dtype == torch.float32:
            return uint8_to_gan(images).to(ref.device)
        return images.to(device=ref.device, dtype=ref.dtype) * (2.0 / 255.0) - 1.0  # e.g. float64, without float32

    def _noise(self, n: int, rng: torch.Generator | None) -> torch.Tensor:
        ref = next(self.parameters())
        return randn(n, self.latent_dim, generator=rng, device=ref.device).to(ref.dtype)

    def _real_batch(self, real: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        if real.shape[0] <= self.batch_size:
            return real
        idx = torch.randperm(real.shape[0], generator=rng)[: self.batch_size]
        return real[idx.to(real.device)]

    # ------------------------------------------------------------------------------------------------ losses
    def d_loss(self, params: GANParams, real: torch.Tensor, fake: torch.Tensor, *, d_buffers: ParamDict,
               rng: torch.Generator | None = None) -> torch.Tensor:
        """The objective's discriminator loss (plus the gradient penalty) at ``params.d`` on float images."""
        d_params = {**params.d, **d_buffers}
        fake = fake.detach()
        loss = self.objective.d_loss(functional_call(self.discriminator, d_params, (real,)),
                                     functional_call(self.discriminator, d_params, (fake,)))
        if self.gp_weight > 0:
            paired = real[torch.arange(fake.shape[0], device=real.device) % real.shape[0]]
            critic = lambda x: functional_call(self.discriminator, d_params, (x,))  # noqa: E731
            loss = loss + self.gp_weight * gradient_penalty(critic, paired, fake, generator=rng)
        return loss

    def g_loss(self, params: GANParams, fake: torch.Tensor, *, d_buffers: ParamDict) -> torch.Tensor:
        """The objective's generator loss of ``fake`` (with their graph) scored at ``params.d``."""
        return self.objective.g_loss(functional_call(self.discriminator, {**params.d, **d_buffers}, (fake,)))

    def generate(self, params: GANParams, z: torch.Tensor, *, g_buffers: ParamDict) -> torch.Tensor:
        """Images of the generator at ``params.g`` (training mode: batch statistics) for noise ``z``."""
        return functional_call(self.generator, {**params.g, **g_buffers}, (z,))

    # ------------------------------------------------------------------------------------------------ inner loop
    def inner_loop(
        self,
        real: torch.Tensor,
        *,
        steps: int | None = None,
        lr: float | None = None,
        start: GANParams | None = None,
        rng: torch.Generator | None = None,
    ) -> InnerResult:
        """Alternating GAN training of a copy of the weights on one task's images.

        Each step draws ``batch_size`` noise vectors from ``rng``, updates the discriminator on the real batch
        against those fakes, then the generator on the same fakes scored by the updated discriminator.

        Args:
            real: The task's images, float in [-1, 1] (see :func:`~metaxfer.gan.utils.uint8_to_gan`).
            steps: Number of steps (default: ``inner_steps``).
            lr: Step size (default: the inner optimiser's).
            start: Weights to start from (default: θ, the module's own).
            rng: Source of the noise (and of the real batch when the task has more than ``batch_size`` images).

        Returns:
            The adapted weights and the losses.

        Shape:
            ``real``: (K, C, H, W).
        """
        steps = self.inner_steps if steps is None else int(steps)
        if steps < 0:
            raise ValueError(f"inner steps must be >= 0, got {steps}")
        params = (start if start is not None else self.initial_params()).leaves()
        g_buffers, d_buffers = self._buffer_copies(self.generator), self._buffer_copies(self.discriminator)
        g_state, d_state = self.inner.init_state(params.g), self.inner.init_state(params.d)
        result = InnerResult(params)
        with torch.enable_grad(), training_mode(self.generator, self.discriminator):
            for step in range(1, steps + 1):
                z = self._noise(self.batch_size, rng)
                batch = self._real_batch(real, rng)
                fake = self.generate(params, z, g_buffers=g_buffers)
                d_loss = self.d_loss(params, batch, fake, d_buffers=d_buffers, rng=rng)
                d_grads = torch.autograd.grad(d_loss, list(params.d.values()))
                self.inner.step_(params.d, d_grads, d_state, step=step, lr=lr)
                g_loss = self.g_loss(params, fake, d_buffers=d_buffers)
                g_grads = torch.autograd.grad(g_loss, list(params.g.values()))
                self.inner.step_(params.g, g_grads, g_state, step=step, lr=lr)
                result.d_losses.append(float(d_loss.detach()))
                result.g_losses.append(float(g_loss.detach()))
        return result

    # ------------------------------------------------------------------------------------------------ outer losses
    def reptile_loss(self, tasks: Sequence[GANTask | torch.Tensor], *, rng: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """Reptile's surrogate ``½ Σ_t ‖θ − φ_t‖² / T`` (gradient ``θ − mean_t φ_t``) over G and D.

        Args:
            tasks: Tasks (their support images are used) or uint8 image tensors.
            rng: Source of the inner loops' noise.

        Returns:
            ``(loss, metrics)``: metrics ``d_loss`` / ``g_loss`` (first inner step, mean over tasks),
            ``d_loss_end`` / ``g_loss_end`` (last step) and ``distance`` (mean ‖φ_t − θ‖).
        """
        theta = self.initial_params()
        total: torch.Tensor | float = 0.0
        metrics: list[dict[str, float]] = []
        for task in _tasks(tasks):
            result = self.inner_loop(self._as_gan(task.support, "MetaInitGAN.reptile_loss"), rng=rng)
            phi = result.params.detached()
            sq = sum(((theta.g[n] - phi.g[n]) ** 2).sum() for n in phi.g) + sum(
                ((theta.d[n] - phi.d[n]) ** 2).sum() for n in phi.d)
            total = total + 0.5 * sq
            metrics.append(_inner_metrics(result) | {"distance": float(sq.detach().sqrt())})
        return total / len(metrics), _mean(metrics)  # type: ignore[return-value]

    def fomaml_loss(self, tasks: Sequence[GANTask], *, rng: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, dict[str, float]]:
        """First-order MAML's surrogate ``Σ_t ⟨θ, stopgrad(g_t)⟩ / T`` (gradient: the mean query gradient).

        ``g_t`` holds ∇ of the generator loss with respect to the adapted generator and ∇ of the discriminator loss
        with respect to the adapted discriminator, both on the task's query images and fresh noise, at the weights
        the inner loop reached on its support images.

        Args:
            tasks: Tasks with support and query images.
            rng: Source of the noise.

        Returns:
            ``(loss, metrics)``: metrics of the inner loops plus ``query_d_loss`` and ``query_g_loss``.

        Raises:
            MetaxferError: A task has no query images.
        """
        theta = self.initial_params()
        total: torch.Tensor | float = 0.0
        metrics: list[dict[str, float]] = []
        for task in _tasks(tasks):
            if task.query is None or task.query.shape[0] == 0:
                raise MetaxferError("fomaml needs query images in every task: sample tasks with queries >= 1")
            result = self.inner_loop(self._as_gan(task.support, "MetaInitGAN.fomaml_loss"), rng=rng)
            g_grads, d_grads, q = self.query_gradients(result.params, self._as_gan(task.query, "query"), rng=rng)
            dot = sum((theta.g[n] * g).sum() for n, g in g_grads.items()) + sum(
                (theta.d[n] * g).sum() for n, g in d_grads.items())
            total = total + dot
            metrics.append(_inner_metrics(result) | q)
        return total / len(metrics), _mean(metrics)  # type: ignore[return-value]

    def query_gradients(self, params: GANParams, query: torch.Tensor, *, rng: torch.Generator | None = None
                        ) -> tuple[ParamDict, ParamDict, dict[str, float]]:
        """Gradients of the generator and discriminator losses on query images at ``params`` (first order).

        Returns:
            ``(generator gradients, discriminator gradients, {"query_d_loss", "query_g_loss"})``.
        """
        g_buffers, d_buffers = self._buffer_copies(self.generator), self._buffer_copies(self.discriminator)
        with torch.enable_grad(), training_mode(self.generator, self.discriminator):
            z = self._noise(self.batch_size, rng)
            fake = self.generate(params, z, g_buffers=g_buffers)
            d_loss = self.d_loss(params, self._real_batch(query, rng), fake, d_buffers=d_buffers, rng=rng)
            d_grads = torch.autograd.grad(d_loss, list(params.d.values()))
            g_loss = self.g_loss(params, fake, d_buffers=d_buffers)
            g_grads = torch.autograd.grad(g_loss, list(params.g.values()))
        return (dict(zip(params.g, g_grads, strict=True)), dict(zip(params.d, d_grads, strict=True)),
                {"query_d_loss": float(d_loss.detach()), "query_g_loss": float(g_loss.detach())})

    def meta_loss(self, tasks: Sequence[GANTask], *, algorithm: OuterAlgorithm, rng: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
        """:meth:`reptile_loss` or :meth:`fomaml_loss` by name.

        Raises:
            ValueError: Unknown algorithm (the message lists the valid ones).
        """
        if algorithm == "reptile":
            return self.reptile_loss(tasks, rng=rng)
        if algorithm == "fomaml":
            return self.fomaml_loss(tasks, rng=rng)
        raise ValueError(f"unknown outer algorithm {algorithm!r}; choose one of {', '.join(OUTER_ALGORITHMS)}")

    def outer_step(self, tasks: Sequence[GANTask], *, optimizer: torch.optim.Optimizer, algorithm: OuterAlgorithm,
                   rng: torch.Generator | None = None) -> dict[str, float]:
        """One outer update with ``optimizer`` over ``self.parameters()`` (SGD with lr ε, no momentum: Reptile).

        Returns:
            The metrics of :meth:`meta_loss`.
        """
        optimizer.zero_grad(set_to_none=True)
        loss, metrics = self.meta_loss(tasks, algorithm=algorithm, rng=rng)
        loss.backward()
        optimizer.step()
        return metrics

    # ------------------------------------------------------------------------------------------------ adaptation
    def adapt(
        self,
        images_k: torch.Tensor,
        *,
        steps: int | None = None,
        lr: float | None = None,
        generator: torch.Generator | None = None,
        stats_samples: int = 128,
    ) -> AdaptedGenerator:
        """A generator for the class (or domain) of ``images_k``: the inner loop run from θ on those images.

        Args:
            images_k: uint8 (K, C, H, W): the K shots.
            steps: Adaptation steps (default: ``inner_steps``).
            lr: Step size (default: the inner optimiser's).
            generator: Source of the noise (default: a fixed seed, so the same images give the same generator).
            stats_samples: Noise vectors for the adapted generator's batch-norm statistics.

        Returns:
            The adapted generator (θ itself is not changed).

        Raises:
            DataFormatError: ``images_k`` is not uint8 (K, C, H, W) of the networks' format.
        """
        real = self._as_gan(images_k, "MetaInitGAN.adapt")
        rng = generator if generator is not None else torch.Generator().manual_seed(0)
        result = self.inner_loop(real, steps=steps, lr=lr, rng=rng)
        return AdaptedGenerator(self.generator, result.params.g, stats_samples=stats_samples,
                                stats_seed=int(torch.randint(2**31 - 1, (1,), generator=rng)))

    def unadapted(self, *, stats_samples: int = 128) -> AdaptedGenerator:
        """θ's own generator as an :class:`AdaptedGenerator` (zero adaptation steps)."""
        return AdaptedGenerator(self.generator, dict(self.generator.named_parameters()), stats_samples=stats_samples)


def _inner_metrics(result: InnerResult) -> dict[str, float]:
    if not result.d_losses:
        return {}
    return {"d_loss": result.d_losses[0], "g_loss": result.g_losses[0], "d_loss_end": result.d_losses[-1],
            "g_loss_end": result.g_losses[-1]}


def _mean(items: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = items[0].keys() if items else ()
    return {k: sum(m[k] for m in items) / len(items) for k in keys}


# ---------------------------------------------------------------------------------------------------- tasks
@dataclass
class GANTask:
    """The images of one generation task.

    Attributes:
        support: uint8 (K, C, H, W): what the inner loop trains on.
        query: uint8 (Q, C, H, W) for first-order MAML's outer loss, or ``None``.
        classes: The domain classes the images come from.
    """

    support: torch.Tensor
    query: torch.Tensor | None = None
    classes: list[int] = field(default_factory=list)


def _tasks(tasks: Sequence[GANTask | torch.Tensor]) -> list[GANTask]:
    out = [t if isinstance(t, GANTask) else GANTask(t) for t in tasks]
    if not out:
        raise MetaxferError("the meta-batch is empty: pass at least one task")
    return out


class GANTaskSampler:
    """Draws generation tasks from labelled images: one class per task, or one group of classes.

    Args:
        images: uint8 (N, C, H, W).
        labels: int64 (N,) class of each image.
        shots: Support images per task (what the inner loop sees; K at adaptation time).
        queries: Query images per task (first-order MAML's outer loss; 0 for Reptile).
        task: ``class`` (the images of one class) or ``group`` (the images of a group of classes).
        groups: With ``task="group"``: the group of each class (e.g. ``domain.groups["alphabet"]``); ``None``
            makes groups of ``classes_per_task`` random classes per task.
        classes_per_task: Classes of a random group.
        seed: Seed of the sampler's own generator (used when :meth:`sample` is given none).

    Raises:
        MetaxferError: No class (or group) has ``shots + queries`` images, or a bad argument.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        shots: int,
        queries: int = 0,
        task: str = "class",
        groups: Sequence[str] | None = None,
        classes_per_task: int = 2,
        seed: int = 0,
    ) -> None:
        check_images(images, who="GANTaskSampler")
        if labels.shape != (images.shape[0],):
            raise DataFormatError(f"GANTaskSampler: {images.shape[0]} images but labels shaped {tuple(labels.shape)}")
        if shots < 1 or queries < 0:
            raise MetaxferError(f"GANTaskSampler needs shots >= 1 and queries >= 0, got {shots}, {queries}")
        if task not in ("class", "group"):
            raise MetaxferError(f"task must be 'class' or 'group', got {task!r}")
        if classes_per_task < 1:
            raise MetaxferError(f"classes_per_task must be >= 1, got {classes_per_task}")
        self.images, self.labels = images, labels.cpu()
        self.shots, self.queries, self.task = shots, queries, task
        self.classes_per_task = classes_per_task
        self.generator = torch.Generator().manual_seed(seed)
        need = shots + queries
        num_classes = int(self.labels.max()) + 1
        members = [torch.nonzero(self.labels == c).flatten() for c in range(num_classes)]
        if task == "class" or groups is None:
            units = [[c] for c in range(num_classes) if len(members[c])]
        else:
            if len(groups) != num_classes:
                raise MetaxferError(f"groups lists {len(groups)} classes, the labels have {num_classes}")
            by_group: dict[str, list[int]] = {}
            for c, g in enumerate(groups):
                by_group.setdefault(str(g), []).append(c)
            units = [by_group[g] for g in sorted(by_group)]
        self.random_groups = task == "group" and groups is None
        if self.random_groups:
            self.pool = [c for c in range(num_classes) if len(members[c])]
            if len(self.pool) < classes_per_task:
                raise MetaxferError(f"random groups of {classes_per_task} classes need that many classes; "
                                    f"there are {len(self.pool)}")
            self.units: list[torch.Tensor] = []
        else:
            self.units = [torch.cat([members[c] for c in unit]) for unit in units]
            self.unit_classes = units
            keep = [i for i, u in enumerate(self.units) if len(u) >= need]
            if not keep:
                raise MetaxferError(
                    f"no {task} has the {need} images a task needs (shots={shots}, queries={queries}): lower them"
                )
            self.units = [self.units[i] for i in keep]
            self.unit_classes = [units[i] for i in keep]
        self.members = members

    def __len__(self) -> int:
        return len(self.units) if not self.random_groups else len(self.pool)

    def sample(self, generator: torch.Generator | None = None) -> GANTask:
        """Draw one task (from the sampler's own generator unless one is given)."""
        g = generator if generator is not None else self.generator
        if self.random_groups:
            pick = torch.randperm(len(self.pool), generator=g)[: self.classes_per_task].tolist()
            classes = [self.pool[i] for i in pick]
            pool = torch.cat([self.members[c] for c in classes])
        else:
            i = int(torch.randint(len(self.units), (1,), generator=g))
            pool, classes = self.units[i], list(self.unit_classes[i])
        need = self.shots + self.queries
        order = torch.randperm(len(pool), generator=g)
        if len(pool) >= need:
            chosen = pool[order[:need]]
        else:  # a random group smaller than a task: draw with replacement
            chosen = pool[torch.randint(len(pool), (need,), generator=g)]
        support = self.images[chosen[: self.shots]]
        query = self.images[chosen[self.shots :]] if self.queries else None
        return GANTask(support=support, query=query, classes=classes)

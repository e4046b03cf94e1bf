"""The GAN helpers, each written once: gradient penalty, R1, image pool, weight init, spectral norm, EMA, noise.

Images: the networks work on float images in [-1, 1]; :func:`uint8_to_gan` and :func:`gan_to_uint8` convert
from and to the uint8 images of a :class:`~metaxfer.data.domain.Domain` (they call
:func:`metaxfer.data.transforms.to_float` / :func:`~metaxfer.data.transforms.to_uint8`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from metaxfer.data.transforms import to_float, to_uint8
from metaxfer.errors import MetaxferError

__all__ = [
    "GAN_RANGE",
    "uint8_to_gan",
    "gan_to_uint8",
    "randn",
    "randint",
    "gradient_penalty",
    "r1_penalty",
    "ImagePool",
    "init_weights",
    "apply_spectral_norm",
    "frozen_parameters",
    "to_floats",
    "has_batch_norm",
    "check_gradient_penalty",
    "EMA",
]

log = logging.getLogger(__name__)

#: The value range of every network input and generator output.
GAN_RANGE: tuple[float, float] = (-1.0, 1.0)

InitScheme = Literal["dcgan", "normal", "xavier", "kaiming", "orthogonal"]
_INIT_SCHEMES = ("dcgan", "normal", "xavier", "kaiming", "orthogonal")


# ---------------------------------------------------------------------------------------------------- images, noise
def uint8_to_gan(images: torch.Tensor) -> torch.Tensor:
    """uint8 domain images (0..255) → float32 in [-1, 1], the range the networks use.

    Args:
        images: uint8 tensor, e.g. ``domain.images``.

    Returns:
        float32 tensor of the same shape.

    Shape:
        Any (usually (N, C, H, W)).
    """
    return to_float(images, range=GAN_RANGE)


def gan_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (a generator's output) → uint8 0..255, clamped, rounded and detached.

    Args:
        x: Floating-point tensor.

    Returns:
        uint8 tensor of the same shape, ready for :func:`metaxfer.data.grid.image_grid`.

    Shape:
        Any (usually (N, C, H, W)).
    """
    return to_uint8(x, range=GAN_RANGE)


def _device_of(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


def randn(
    *shape: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device``, drawn from ``generator`` even when it lives elsewhere.

    Args:
        shape: The tensor's shape.
        generator: Source of randomness (``None``: the global one); a CPU generator may feed CUDA tensors.
        device: Where the result lives (default: the generator's device, or CPU).

    Returns:
        float32 tensor.
    """
    dev = _device_of(generator, device)
    if generator is None or generator.device == dev:
        return torch.randn(shape, generator=generator, device=dev)
    return torch.randn(shape, generator=generator, device=generator.device).to(dev, non_blocking=True)


def randint(
    high: int, *shape: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Integers uniform in ``[0, high)``, e.g. random class labels for a conditional generator.

    Args:
        high: Exclusive upper bound.
        shape: The tensor's shape.
        generator: Source of randomness (``None``: the global one).
        device: Where the result lives (default: the generator's device, or CPU).

    Returns:
        int64 tensor.
    """
    dev = _device_of(generator, device)
    if generator is None or generator.device == dev:
        return torch.randint(high, shape, generator=generator, device=dev)
    return torch.randint(high, shape, generator=generator, device=generator.device).to(dev, non_blocking=True)


# ---------------------------------------------------------------------------------------------------- penalties
def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    target: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(‖∇ₓ D(x̂)‖₂ - target)²]`` at random points ``x̂`` between real and fake images.

    The graph is kept (``create_graph=True``), so the penalty can be added to the critic loss and
    back-propagated. The critic must not use batch normalisation (each example's gradient must depend on that
    example only); use layer/instance norm or none.

    Args:
        critic: Maps images to scores, e.g. ``lambda x: disc(x, labels)``.
        real: Real images.
        fake: Generated images (detached inside).
        target: The wanted gradient norm (1 in WGAN-GP).
        generator: Source of the interpolation weights.

    Returns:
        Scalar tensor. Zero for a linear critic whose weight has norm ``target``.

    Shape:
        ``real``, ``fake``: (N, ...) with the same shape; ``critic`` returns (N,) or (N, ...) scores.

    References:
        I. Gulrajani et al. Improved Training of Wasserstein GANs. NeurIPS 2017.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient_penalty needs real and fake batches of the same shape, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}; generate as many fakes as there are real images"
        )
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=generator, device=generator.device if generator is not None else real.device)
    alpha = alpha.to(device=real.device, dtype=real.dtype)
    mixed = torch.lerp(real.detach(), fake.detach(), alpha).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).square().sum(dim=1).add(1e-12).sqrt()
    return (norms - target).square().mean()


def r1_penalty(scores: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """R1 penalty ``E[‖∇ₓ D(x)‖²]`` on real images (multiply by ``γ/2`` when adding it to the loss).

    Args:
        scores: Discriminator outputs computed from ``images``.
        images: The real images, with ``requires_grad=True`` set before the forward pass.

    Returns:
        Scalar tensor, with the graph kept for back-propagation.

    Shape:
        ``scores``: (N,) or (N, ...); ``images``: (N, C, H, W).

    Raises:
        ValueError: ``images`` does not require gradients.

    References:
        L. Mescheder, A. Geiger, S. Nowozin. Which Training Methods for GANs do actually Converge? ICML 2018.
    """
    if not images.requires_grad:
        raise ValueError("r1_penalty needs images.requires_grad_(True) before the discriminator's forward pass")
    (grad,) = torch.autograd.grad(scores.sum(), images, create_graph=True)
    return grad.flatten(1).square().sum(dim=1).mean()


# ---------------------------------------------------------------------------------------------------- image pool
class ImagePool:
    """A history of generated images: the discriminator sees a mix of current and older fakes.

    While the pool is not full, every image is stored and returned unchanged. Afterwards, each image is, with
    probability ½, swapped with a random stored one (the stored one is returned) and otherwise returned as is.

    Args:
        size: How many images to keep (0 disables the pool: :meth:`query` returns its input).
        seed: Seed of the pool's own ``torch.Generator``.

    References:
        A. Shrivastava et al. Learning from Simulated and Unsupervised Images through Adversarial Training. CVPR
        2017; used with size 50 in CycleGAN (Zhu et al., ICCV 2017).
    """

    def __init__(self, size: int = 50, *, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"ImagePool size must be >= 0, got {size}")
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.images: torch.Tensor | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Store ``images`` and return as many images for the discriminator.

        Args:
            images: A batch of generated images (detached inside).

        Returns:
            A batch of the same shape: a mix of ``images`` and earlier ones.

        Shape:
            (N, C, H, W) → (N, C, H, W).
        """
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = images.new_empty(self.size, *images.shape[1:])
        elif self.images.shape[1:] != images.shape[1:]:
            raise ValueError(
                f"ImagePool holds images shaped {tuple(self.images.shape[1:])}, got {tuple(images.shape[1:])}; "
                "use one pool per domain"
            )
        n = images.shape[0]
        out = images.clone()
        swap = (torch.rand(n, generator=self.generator) < 0.5).tolist()
        slots = torch.randint(self.size, (n,), generator=self.generator).tolist()
        for i in range(n):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.count += 1
            elif swap[i]:
                out[i] = self.images[slots[i]]
                self.images[slots[i]] = images[i]
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stored images, the fill count and the generator state, as plain tensors."""
        state = {"count": torch.tensor(self.count), "generator": self.generator.get_state()}
        if self.images is not None:
            state["images"] = self.images[: self.count].detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor], *, device: torch.device | str | None = None) -> None:
        """Restore :meth:`state_dict`'s output.

        Args:
            state: What :meth:`state_dict` returned.
            device: Where to keep the images (default: CPU).
        """
        count = int(state["count"])
        if count > self.size:
            raise ValueError(f"ImagePool state holds {count} images but this pool's size is {self.size}")
        self.generator.set_state(state["generator"])
        self.count = count
        if "images" in state:
            stored = state["images"].to(device or "cpu")
            self.images = stored.new_empty(self.size, *stored.shape[1:])
            self.images[:count] = stored
        else:
            self.images = None


# ---------------------------------------------------------------------------------------------------- module helpers
def _weight_of(module: nn.Module) -> torch.Tensor | None:
    """The trainable weight tensor of ``module`` (under a spectral-norm parametrisation, the original)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original  # type: ignore[union-attr,return-value]
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, torch.Tensor) else None


@torch.no_grad()
def init_weights(module: nn.Module, *, scheme: InitScheme = "dcgan", gain: float = 0.02) -> nn.Module:
    """Initialise every convolution, linear and normalisation layer of ``module`` in place.

    ``dcgan`` / ``normal``: weights ~ N(0, ``gain``); normalisation scales ~ N(1, ``gain``) (``dcgan``) or 1
    (``normal``). ``xavier`` / ``orthogonal``: that init with ``gain``. ``kaiming``: He init for ReLU (``gain``
    unused). Biases and normalisation shifts become 0. Embeddings are left as they are.

    Args:
        module: The network (its submodules are visited).
        scheme: One of ``dcgan``, ``normal``, ``xavier``, ``kaiming``, ``orthogonal``.
        gain: Standard deviation (``dcgan``, ``normal``) or gain (``xavier``, ``orthogonal``).

    Returns:
        ``module``.

    References:
        A. Radford, L. Metz, S. Chintala. Unsupervised Representation Learning with Deep Convolutional GANs. ICLR
        2016 (the N(0, 0.02) init, also used by CycleGAN).
    """
    if scheme not in _INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(_INIT_SCHEMES)}")
    for m in module.modules():
        weight = _weight_of(m)
        if weight is None:
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme in ("dcgan", "normal"):
                nn.init.normal_(weight, 0.0, gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(weight, nonlinearity="relu")
            else:
                nn.init.orthogonal_(weight, gain=gain)
        elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            if scheme == "dcgan":
                nn.init.normal_(weight, 1.0, gain)
            else:
                nn.init.ones_(weight)
        else:
            continue
        bias = getattr(m, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)
    return module


_SPECTRAL_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every convolution, linear and embedding layer of ``module`` (in place).

    Uses :func:`torch.nn.utils.parametrizations.spectral_norm` (one power iteration per training forward); the
    state dict then holds ``parametrizations.weight.original`` and the power-iteration vectors, all plain tensors.

    Args:
        module: The network.

    Returns:
        ``module``.

    References:
        T. Miyato et al. Spectral Normalization for Generative Adversarial Networks. ICLR 2018.
    """
    targets = [m for m in module.modules() if isinstance(m, _SPECTRAL_TYPES) and not parametrize.is_parametrized(m)]
    for m in targets:
        spectral_norm(m)
    return module


class frozen_parameters:  # noqa: N801 - used like a function: `with frozen_parameters(d):`
    """Context manager: parameters of ``modules`` stop tracking gradients inside, and get their flags back after.

    Args:
        modules: The modules to freeze (e.g. the discriminators during a generator update).
    """

    def __init__(self, *modules: nn.Module) -> None:
        self.params = [p for m in modules for p in m.parameters()]
        self.flags: list[bool] = []

    def __enter__(self) -> frozen_parameters:
        self.flags = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.params, self.flags, strict=True):
            p.requires_grad_(flag)


def to_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detached scalar tensors → Python floats, with one device synchronisation for all of them.

    Args:
        values: Name → scalar tensor.

    Returns:
        Name → float.
    """
    if not values:
        return {}
    numbers = torch.stack([v.detach().float().reshape(()) for v in values.values()]).tolist()
    return dict(zip(values, numbers, strict=True))


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` contains a batch-norm layer (which a gradient penalty cannot be used with)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def check_gradient_penalty(discriminator: nn.Module, weight: float) -> None:
    """Refuse a gradient penalty on a discriminator with batch norm (each example's gradient would depend on the
    whole batch, which invalidates the penalty).

    Args:
        discriminator: The critic.
        weight: The penalty's weight (nothing is checked when it is 0).

    Raises:
        MetaxferError: ``weight > 0`` and the discriminator has a batch-norm layer; the message says how to fix it.
    """
    if weight > 0 and has_batch_norm(discriminator):
        raise MetaxferError(
            f"a gradient penalty (weight {weight}) is not valid with a batch-norm discriminator: build it with "
            "norm='layer', 'instance' or 'none' (or set the penalty's weight to 0)"
        )


# ---------------------------------------------------------------------------------------------------- EMA
class EMA:
    """An exponential moving average of a network's weights (usually the generator's), for sampling.

    After each optimiser step, :meth:`update` moves every averaged parameter a fraction ``1 - decay`` of the way
    to the live one; buffers (batch-norm statistics, spectral-norm vectors) are copied. Sample from
    ``ema.module`` (kept in eval mode, never trained).

    Args:
        model: The network to average (copied; left unchanged).
        decay: Weight of the old average, in [0, 1).
        warmup: If positive, the effective decay is ``min(decay, (1 + t) / (warmup + t))`` at update ``t``, so
            early averages are not dominated by the random initial weights.

    References:
        T. Karras et al. Progressive Growing of GANs. ICLR 2018; Y. Yazıcı et al. The Unusual Effectiveness of
        Averaging in GAN Training. ICLR 2019.
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999, warmup: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        if warmup < 0:
            raise ValueError(f"EMA warmup must be >= 0, got {warmup}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        if self.warmup <= 0:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (self.warmup + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights.

        Args:
            model: The live network, with the same architecture as the averaged copy.
        """
        ema_params = list(self.module.parameters())
        live_params = list(model.parameters())
        if len(ema_params) != len(live_params):
            raise MetaxferError(
                f"EMA.update got a network with {len(live_params)} parameter tensors, the average has "
                f"{len(ema_params)}; pass the same network the EMA was created from"
            )
        torch._foreach_lerp_(ema_params, [p.detach() for p in live_params], 1.0 - self.current_decay())
        for ema_b, live_b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(live_b)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (``module``) and the update count, as plain tensors."""
        return {"module": self.module.state_dict(), "num_updates": torch.tensor(self.num_updates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])

"""A small classifier trained on the domain in question, used as the feature extractor of FID and KID.

Inception weights cannot be had offline, and an ImageNet network does not suit 28×28 glyphs anyway. Instead,
:func:`train_feature_extractor` trains :class:`FeatureNet` (five 3×3 convolutions with batch norm, two max-pools,
global average pooling: 128-d features) to classify a domain's classes, and the features of its penultimate layer
are compared. Scores computed with different extractors are not comparable: every result carries the extractor's
:attr:`FeatureExtractor.description`.

Example:
    >>> from metaxfer.data import create_domain
    >>> domain = create_domain("synthetic", num_classes=4, per_class=30, size=16, cache=False)
    >>> extractor = train_feature_extractor(domain, epochs=3, seed=0)
    >>> extractor.features(domain.images[:5]).shape
    torch.Size([5, 128])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.domain import Domain
from metaxfer.data.transforms import to_float
from metaxfer.errors import DataFormatError

__all__ = [
    "FeatureNet",
    "FeatureExtractor",
    "train_classifier",
    "classifier_accuracy",
    "train_feature_extractor",
    "FEATURE_RANGE",
]

log = logging.getLogger(__name__)

#: Value range the feature network sees (the same as the GAN networks').
FEATURE_RANGE: tuple[float, float] = (-1.0, 1.0)


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class FeatureNet(nn.Module):
    """Small CNN classifier with a features/head split: 32-32-pool-64-64-pool-128 convolutions, global average
    pooling (128-d features), linear head.

    Args:
        channels: Input channels.
        num_classes: Number of classes.
        width: Channels of the first layers (features are ``4 * width``-d).

    Shape:
        (N, channels, H, W) float in [-1, 1], H, W >= 4 → features (N, 4·width) → logits (N, num_classes).
    """

    def __init__(self, channels: int, num_classes: int, *, width: int = 32) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"FeatureNet needs at least 2 classes, got {num_classes}")
        self.channels, self.num_classes, self.width = channels, num_classes, width
        self.body = nn.Sequential(
            *_conv(channels, width),
            *_conv(width, width),
            nn.MaxPool2d(2),
            *_conv(width, 2 * width),
            *_conv(2 * width, 2 * width),
            nn.MaxPool2d(2),
            *_conv(2 * width, 4 * width),
        )
        self.head = nn.Linear(4 * width, num_classes)

    @property
    def feature_dim(self) -> int:
        """Size of the feature vector."""
        return 4 * self.width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images → globally average-pooled features. Shape: (N, C, H, W) → (N, 4·width)."""
        return self.body(x).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features → class logits. Shape: (N, 4·width) → (N, num_classes)."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images → class logits. Shape: (N, C, H, W) → (N, num_classes)."""
        return self.forward_head(self.forward_features(x))


def _check_batch(images: torch.Tensor, labels: torch.Tensor | None, *, who: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataFormatError(
            f"{who} expects uint8 images shaped (N, C, H, W) like Domain.images, got {got}; convert generator "
            "output with metaxfer.gan.gan_to_uint8"
        )
    if labels is not None and labels.shape != (images.shape[0],):
        raise DataFormatError(f"{who}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    width: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> FeatureNet:
    """Train a :class:`FeatureNet` with Adam and cross-entropy (cosine learning-rate decay, no augmentation).

    The global random state is left untouched: initialisation and shuffling use ``seed`` only. At the end the
    batch-norm statistics are recomputed over the training images, so eval mode is right after few steps too.

    Args:
        images: uint8 training images.
        labels: int64 classes in ``[0, num_classes)``.
        num_classes: Number of classes.
        epochs: Passes over the data.
        batch_size: Examples per step.
        lr: Initial learning rate.
        weight_decay: L2 weight decay.
        width: Width of the network.
        seed: Seed of the initialisation and the shuffling.
        device: Where to train.

    Returns:
        The trained network, in eval mode.

    Shape:
        ``images`` (N, C, H, W), ``labels`` (N,).
    """
    _check_batch(images, labels, who="train_classifier")
    if images.shape[0] == 0:
        raise DataFormatError("train_classifier got no images")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise DataFormatError(f"labels must lie in [0, {num_classes}), got {int(labels.min())}..{int(labels.max())}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(images.shape[1], num_classes, width=width).to(device)
    shuffle = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    steps_per_epoch = -(-n // batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    x_all = to_float(images, range=FEATURE_RANGE).to(device)
    y_all = labels.to(device)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=shuffle).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if idx.numel() < 2:  # batch norm cannot train on one example
                continue
            loss = F.cross_entropy(net(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * idx.numel()
        log.debug("train_classifier epoch %d/%d: loss %.4f", epoch + 1, epochs, float(total) / n)
    _recompute_batch_norm(net, x_all, batch_size=max(batch_size, 256))
    return net.eval()


@torch.no_grad()
def _recompute_batch_norm(net: nn.Module, x: torch.Tensor, *, batch_size: int) -> None:
    """Set batch-norm running statistics to their exact averages over ``x`` with the final weights.

    After few training steps the exponential running averages still remember the initial weights, and the
    classifier would be wrong in eval mode; this pass makes eval mode match the trained network.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    net.train()
    for start in range(0, x.shape[0], batch_size):
        net(x[start : start + batch_size])
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


@torch.no_grad()
def _batched(net: nn.Module, images: torch.Tensor, fn: str, batch_size: int) -> torch.Tensor:
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        outs = [
            getattr(net, fn)(to_float(images[s : s + batch_size], range=FEATURE_RANGE).to(device)).cpu()
            for s in range(0, images.shape[0], batch_size)
        ]
    finally:
        net.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def classifier_accuracy(
    net: FeatureNet, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512
) -> tuple[float, list[float]]:
    """Accuracy of ``net`` on uint8 images, overall and per class.

    Args:
        net: A trained classifier.
        images: uint8 images (N, C, H, W).
        labels: Their classes (N,).
        batch_size: Images per forward pass.

    Returns:
        ``(accuracy, per_class)``; a class absent from ``labels`` gets ``nan``.
    """
    _check_batch(images, labels, who="classifier_accuracy")
    if images.shape[0] == 0:
        raise DataFormatError("classifier_accuracy got no images")
    pred = _batched(net, images, "forward", batch_size).argmax(dim=1)
    correct = (pred == labels.cpu()).double()
    k = net.num_classes
    hits = torch.zeros(k, dtype=torch.float64).index_add_(0, labels.cpu(), correct)
    counts = torch.bincount(labels.cpu(), minlength=k).double()
    per_class = torch.where(counts > 0, hits / counts.clamp_min(1), torch.full_like(hits, float("nan")))
    return float(correct.mean()), per_class.tolist()


@dataclass
class FeatureExtractor:
    """A trained :class:`FeatureNet` and what it was trained on; FID/KID use its 128-d penultimate features.

    Attributes:
        network: The classifier (eval mode).
        domain: Name of the domain it was trained on.
        image_shape: (C, H, W) it accepts.
        held_out_accuracy: Accuracy on the examples held out from its training (``nan`` if none were).
        epochs: Training epochs.
        seed: Training seed.
    """

    network: FeatureNet
    domain: str
    image_shape: tuple[int, int, int]
    held_out_accuracy: float = float("nan")
    epochs: int = 0
    seed: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """Which feature extractor this is, in words (recorded next to every score)."""
        c, h, w = self.image_shape
        return (
            f"metaxfer FeatureNet (5 conv layers, {self.network.feature_dim}-d globally pooled penultimate features), "
            f"trained on domain {self.domain!r} ({self.network.num_classes} classes, {c}×{h}×{w}) for {self.epochs} "
            f"epochs with seed {self.seed}; held-out accuracy {self.held_out_accuracy:.3f}"
        )

    def features(self, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Penultimate-layer features of uint8 images.

        Args:
            images: uint8 images shaped like the extractor's domain.
            batch_size: Images per forward pass.

        Returns:
            float64 features on the CPU.

        Shape:
            (N, C, H, W) → (N, feature_dim).

        Raises:
            DataFormatError: Not uint8, or not the shape of the domain the extractor was trained on.
        """
        _check_batch(images, None, who="FeatureExtractor.features")
        if tuple(images.shape[1:]) != self.image_shape:
            raise DataFormatError(
                f"the feature extractor was trained on {self.domain!r} images shaped {self.image_shape}, got "
                f"{tuple(images.shape[1:])}; convert them with metaxfer.data.transforms.match_format(...) or train "
                "an extractor on this domain"
            )
        return _batched(self.network, images, "forward_features", batch_size).double()

    def state_dict(self) -> dict[str, Any]:
        """The network's weights and the extractor's description fields, as plain tensors and data."""
        return {
            "network": self.network.state_dict(),
            "domain": self.domain,
            "image_shape": list(self.image_shape),
            "num_classes": self.network.num_classes,
            "width": self.network.width,
            "held_out_accuracy": self.held_out_accuracy,
            "epochs": self.epochs,
            "seed": self.seed,
            "info": dict(self.info),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FeatureExtractor:
        """Rebuild an extractor from :meth:`state_dict`'s output."""
        shape = tuple(int(v) for v in state["image_shape"])
        net = FeatureNet(shape[0], int(state["num_classes"]), width=int(state["width"]))
        net.load_state_dict(state["network"])
        return cls(
            network=net.eval(),
            domain=str(state["domain"]),
            image_shape=shape,  # type: ignore[arg-type]
            held_out_accuracy=float(state["held_out_accuracy"]),
            epochs=int(state["epochs"]),
            seed=int(state["seed"]),
            info=dict(state.get("info", {})),
        )


def train_feature_extractor(
    domain: Domain,
    *,
    epochs: int = 10,
    held_out: float = 0.2,
    seed: int = 0,
    device: torch.device | str = "cpu",
    **train_options: Any,
) -> FeatureExtractor:
    """Train the feature extractor of FID/KID on ``domain`` and measure it on a held-out part.

    Args:
        domain: The domain whose real and generated images will be compared.
        epochs: Training epochs.
        held_out: Fraction of each class kept out of training to measure the accuracy (0: train on all).
        seed: Seed of the split, the initialisation and the shuffling.
        device: Where to train.
        **train_options: Further keyword arguments of :func:`train_classifier` (``batch_size``, ``lr``, ``width``).

    Returns:
        The :class:`FeatureExtractor`; its ``description`` names the network, the domain and the accuracy.
    """
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out must lie in [0, 1), got {held_out}")
    g = torch.Generator().manual_seed(seed)
    test_mask = torch.zeros(len(domain), dtype=torch.bool)
    if held_out > 0:
        for k in range(domain.num_classes):
            idx = torch.nonzero(domain.labels == k).flatten()
            n_test = int(round(held_out * idx.numel())) if idx.numel() > 1 else 0
            test_mask[idx[torch.randperm(idx.numel(), generator=g)[:n_test]]] = True
    train_idx, test_idx = torch.nonzero(~test_mask).flatten(), torch.nonzero(test_mask).flatten()
    net = train_classifier(
        domain.images[train_idx],
        domain.labels[train_idx],
        num_classes=domain.num_classes,
        epochs=epochs,
        seed=seed,
        device=device,
        **train_options,
    )
    acc = float("nan")
    if test_idx.numel():
        acc, _ = classifier_accuracy(net, domain.images[test_idx], domain.labels[test_idx])
    extractor = FeatureExtractor(
        network=net,
        domain=domain.name,
        image_shape=domain.image_shape,
        held_out_accuracy=acc,
        epochs=epochs,
        seed=seed,
        info={"train_examples": int(train_idx.numel()), "held_out_examples": int(test_idx.numel())},
    )
    log.info("feature extractor: %s", extractor.description)
    return extractor

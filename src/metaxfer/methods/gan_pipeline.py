"""The transfer pipeline of the GAN methods: train a target classifier on real, translated or generated data and
measure it on the real target test set.

The GAN methods (:mod:`metaxfer.methods.gan`) call :func:`compare_training_sets` at their last evaluation: one
:class:`~metaxfer.methods.classifier.SmallCNN` per training set (e.g. source only, translated source, target oracle)
and seed, trained with the same settings, tested on the same real target images. Each result carries a 95%
confidence interval: over seeds (Student t) when there are two or more, else over test examples (Wilson score
interval of a binomial proportion); the ``ci`` field names which.

The module also brings two domains to one image format (:func:`common_format`) and splits a domain per class
(:func:`per_class_split`), the pieces the recipes need.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from metaxfer.data.domain import Domain, create_domain
from metaxfer.data.transforms import Compose, OptdigitsStyle, Resize, ToChannels, Transform, apply_to_domain
from metaxfer.engine.config import option
from metaxfer.errors import MetaxferError
from metaxfer.methods.classifier import SmallCNN

__all__ = [
    "TransferConfig",
    "TrainingSet",
    "fit_classifier",
    "accuracy",
    "wilson_interval",
    "mean_interval",
    "compare_training_sets",
    "judge_generated",
    "classic_variants",
    "common_format",
    "per_class_split",
    "load_domain",
    "merge_styles",
]

log = logging.getLogger(__name__)

#: Conversions a recipe may name before the common resize (``source_style`` / ``target_style``).
STYLES = ("none", "optdigits")


@dataclass
class TransferConfig:
    """The ``transfer`` subsection of a GAN method: the classifiers trained and tested after the GAN."""

    enabled: bool = option(False, help="train and test the target classifiers at the last evaluation")
    steps: int = option(300, ge=1, help="training steps of each classifier")
    batch_size: int = option(64, ge=1, help="classifier batch size")
    lr: float = option(3e-3, gt=0.0, help="classifier learning rate (Adam, cosine decay)")
    width: int = option(16, ge=1, help="SmallCNN width")
    blocks: int = option(2, ge=1, le=4, help="SmallCNN blocks")
    seeds: int = option(1, ge=1, help="classifier seeds per training set (>= 2: CI over seeds)")
    generated_per_class: int = option(50, ge=0, help="generated images per class added to the real ones")
    real_share: float = option(0.0, ge=0.0, le=1.0,
                               help="share of each batch drawn from the real images of a set that mixes real and "
                                    "generated ones (0: every image alike)")


@dataclass
class TrainingSet:
    """One training set of the comparison: uint8 images (N, C, H, W) and int64 labels (N,).

    ``real`` is the number of leading images that are real when the rest are generated (``None``: not a mix); with
    :attr:`TransferConfig.real_share` > 0 each batch draws that share from them.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    real: int | None = None


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    width: int = 16,
    blocks: int = 2,
    seed: int = 0,
    device: torch.device | str = "cpu",
    real: int | None = None,
    real_share: float = 0.0,
) -> SmallCNN:
    """Train a :class:`SmallCNN` with Adam (cosine decay) and cross-entropy; the global RNG is left untouched.

    Args:
        images: uint8 training images.
        labels: Their classes in ``[0, num_classes)``.
        num_classes: Outputs of the network.
        steps: Optimiser steps.
        batch_size: Images per step (at most the number of images).
        lr: Peak learning rate.
        width: Channels of the first block.
        blocks: Conv blocks.
        seed: Seed of the initialisation and of the batches.
        device: Where to train.
        real: The first ``real`` images are real, the rest generated (``None``: no such split).
        real_share: With ``real``, the share of each batch drawn from the real images (at least one image of each
            kind); 0 draws every image alike.

    Returns:
        The trained network, in eval mode.

    Shape:
        images (N, C, H, W), labels (N,).
    """
    with torch.enable_grad():
        return _fit(images, labels, num_classes=num_classes, steps=steps, batch_size=batch_size, lr=lr, width=width,
                    blocks=blocks, seed=seed, device=device, real=real, real_share=real_share)


def _batch_indices(n: int, bs: int, *, real: int | None, real_share: float, generator: torch.Generator) -> torch.Tensor:
    """``bs`` random indices into ``n`` images, ``real_share`` of them among the first ``real`` when both are set."""
    if real is None or real_share <= 0.0 or not 0 < real < n:
        return torch.randint(n, (bs,), generator=generator)
    k = min(bs - 1, max(1, round(real_share * bs)))
    return torch.cat([torch.randint(real, (k,), generator=generator),
                      torch.randint(real, n, (bs - k,), generator=generator)])


def _fit(images: torch.Tensor, labels: torch.Tensor, *, num_classes: int, steps: int, batch_size: int, lr: float,
         width: int, blocks: int, seed: int, device: torch.device | str, real: int | None = None,
         real_share: float = 0.0) -> SmallCNN:
    if len(images) == 0:
        raise MetaxferError("fit_classifier got no training images; check the shots / split options of the recipe")
    if real is not None and not 0 <= real <= len(images):
        raise MetaxferError(f"fit_classifier: real={real} is not a count of the {len(images)} training images")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallCNN(in_channels=images.shape[1], num_classes=num_classes, width=width, blocks=blocks).to(device)
    x, y = _to_float(images).to(device), labels.to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bs = min(batch_size, len(x))
    net.train()
    for _ in range(steps):
        idx = _batch_indices(len(x), bs, real=real, real_share=real_share, generator=gen).to(device)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512) -> float:
    """Share of ``images`` that ``net`` (in its current mode) labels correctly."""
    device = next(net.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        pred = net(_to_float(images[i : i + batch_size]).to(device)).argmax(1).cpu()
        correct += int((pred == labels[i : i + batch_size]).sum())
    return correct / max(1, len(images))


def wilson_interval(successes: float, n: int, *, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion ``successes / n``.

    References:
        E. B. Wilson. Probable inference, the law of succession, and statistical inference. JASA 1927.
    """
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: list[float]) -> tuple[float, float]:
    """95% Student-t interval of the mean of ``values`` (two or more)."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        raise ValueError("mean_interval needs two or more values")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def compare_training_sets(
    sets: list[TrainingSet],
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int,
    cfg: TransferConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Train one classifier per training set and seed and test each on the same real target images.

    Args:
        sets: The training sets, e.g. source only, translated, target oracle.
        test_images: uint8 real target test images.
        test_labels: Their classes.
        num_classes: Number of classes.
        cfg: Classifier settings and number of seeds.
        seed: First classifier seed (seeds ``seed .. seed + cfg.seeds - 1``; every set uses the same ones).
        device: Where to train.

    Returns:
        ``{set name: {"acc": mean accuracy, "ci_low", "ci_high", "ci": "t over seeds" | "wilson over test examples",
        "per_seed": [...], "train_examples": N, "test_examples": M}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for s in sets:
        accs = []
        for k in range(cfg.seeds):
            net = fit_classifier(s.images, s.labels, num_classes=num_classes, steps=cfg.steps,
                                 batch_size=cfg.batch_size, lr=cfg.lr, width=cfg.width, blocks=cfg.blocks,
                                 seed=seed + k, device=device, real=s.real, real_share=cfg.real_share)
            accs.append(accuracy(net, test_images, test_labels))
        mean = sum(accs) / len(accs)
        if len(accs) >= 2:
            low, high = mean_interval(accs)
            low, high = max(low, 0.0), min(high, 1.0)  # an accuracy lies in [0, 1]; few seeds make t wide
            how = "t over seeds"
        else:
            low, high = wilson_interval(mean * len(test_labels), len(test_labels))
            how = "wilson over test examples"
        out[s.name] = {"acc": mean, "ci_low": low, "ci_high": high, "ci": how, "per_seed": accs,
                       "train_examples": len(s.labels), "test_examples": len(test_labels)}
        log.info("transfer %s: acc %.3f [%.3f, %.3f] (%s)", s.name, mean, low, high, how)
    return out


def _same_class_spread(images: torch.Tensor, labels: torch.Tensor, *, cap: int = 64) -> float:
    """Mean L1 distance (pixels in [0, 1]) between two different images of one class, averaged over the classes that
    have two or more (at most ``cap`` images of each are compared); NaN when none has."""
    spreads = []
    for c in labels.unique():
        x = images[labels == c][:cap].flatten(1).float().div(255.0)
        n = len(x)
        if n >= 2:
            spreads.append(float(torch.cdist(x, x, p=1.0).sum()) / (n * (n - 1) * x.shape[1]))
    return sum(spreads) / len(spreads) if spreads else float("nan")


def judge_generated(
    real_images: torch.Tensor,
    real_labels: torch.Tensor,
    made: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    cfg: TransferConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float]]:
    """How faithful to their class and how varied made images are, judged against real images of those classes.

    A judge (a classifier with ``cfg``'s settings) trains on half of each class's real images (a class with one
    image trains only) and labels the other half, which gives the accuracy that faithful images would reach, and
    every set of made images. The spread is the mean L1 distance between two images of one class: made images that
    only copy their model show a small one.

    Args:
        real_images: uint8 real images of the classes (e.g. the target test split: the judge is a measure, and
            nothing is chosen by it).
        real_labels: Their classes.
        made: ``{name: (uint8 images, the class each was made for)}``, e.g. GAN samples, DAGAN variants.
        num_classes: Number of classes.
        cfg: Classifier settings (``steps``, ``width``, ...; one seed).
        seed: Seed of the split and of the judge.
        device: Where to train.

    Returns:
        ``{"real": {"acc", "spread"}, name: {"acc", "spread"}, ...}``; accuracies in [0, 1]; ``spread`` is left out
        of a set in which no class has two images.

    Raises:
        MetaxferError: No class has two real images, so nothing is left to check the judge with.
    """
    g = torch.Generator().manual_seed(seed)
    fit, held = [], []
    for c in range(num_classes):
        idx = torch.nonzero(real_labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        half = (len(idx) + 1) // 2
        fit.append(idx[:half])
        held.append(idx[half:])
    fit_idx, held_idx = torch.cat(fit), torch.cat(held)
    if len(held_idx) == 0:
        raise MetaxferError("judge_generated needs a class with two or more real images to check its judge on")
    judge = fit_classifier(real_images[fit_idx], real_labels[fit_idx], num_classes=num_classes, steps=cfg.steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, width=cfg.width, blocks=cfg.blocks, seed=seed,
                           device=device)

    def measures(images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        spread = _same_class_spread(images, labels)
        return {"acc": accuracy(judge, images, labels), **({} if math.isnan(spread) else {"spread": spread})}

    out = {"real": {"acc": accuracy(judge, real_images[held_idx], real_labels[held_idx]),
                    "spread": _same_class_spread(real_images, real_labels)}}  # a class has two: held_idx is not empty
    for name, (images, labels) in made.items():
        out[name] = measures(images, labels)
    log.info("judge: %s", "; ".join(f"{k} {v}" for k, v in out.items()))
    return out


def classic_variants(images: torch.Tensor, labels: torch.Tensor, *, per_image: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_image`` classic augmentations of every image (small shifts, zooms and rotations, contrast and
    brightness, blur and noise: :func:`metaxfer.data.augment.augment_images`), the baseline a generator of
    variants has to beat.

    Returns:
        uint8 images and their labels, ordered image by image like :func:`metaxfer.gan.dagan.augment`.

    Shape:
        (N, C, H, W), (N,) → (N·per_image, C, H, W), (N·per_image,).
    """
    from metaxfer.data.augment import augment_images
    from metaxfer.gan.utils import gan_to_uint8

    x = _to_float(images.repeat_interleave(per_image, dim=0))
    return gan_to_uint8(augment_images(x, generator=torch.Generator().manual_seed(seed))), labels.repeat_interleave(per_image)


def load_domain(name: str, options: Mapping[str, Any], *, role: str) -> Domain:
    """``create_domain(name, **options)`` with an error naming the recipe key when ``name`` is empty."""
    if not name:
        raise MetaxferError(f"the {role} domain is not set; name a registered domain (metaxfer data list) in the recipe")
    return create_domain(name, **dict(options))


def _style(name: str, *, role: str) -> list[Transform]:
    if name not in STYLES:
        raise MetaxferError(f"{role} style {name!r} is unknown; choose one of: {', '.join(STYLES)}")
    return [OptdigitsStyle()] if name == "optdigits" else []


def common_format(
    source: Domain, target: Domain, *, size: int, channels: int, source_style: str = "none", target_style: str = "none"
) -> tuple[Domain, Domain]:
    """Bring two domains to one image format: an optional style conversion, then channels and a square resize.

    Downscaling uses area averaging; upscaling (e.g. optdigits 8×8 → 16×16) is bilinear.

    Args:
        source: The source domain.
        target: The target domain.
        size: Common side in pixels.
        channels: Common channels (1 or 3).
        source_style: ``none`` or ``optdigits`` (:class:`~metaxfer.data.transforms.OptdigitsStyle`) for the source.
        target_style: The same for the target.

    Returns:
        ``(source, target)`` converted; classes must agree by ``class_keys``.

    Raises:
        MetaxferError: The two domains do not have the same classes in the same order.
    """
    if list(source.class_keys) != list(target.class_keys):
        raise MetaxferError(
            f"source {source.name!r} and target {target.name!r} do not share their classes in the same order "
            f"(class_keys {list(source.class_keys)[:5]}... vs {list(target.class_keys)[:5]}...); pick domains with the "
            "same classes, e.g. two digit domains or two emoji styles"
        )
    out = []
    for dom, style, role in ((source, source_style, "source"), (target, target_style, "target")):
        steps = _style(style, role=role)
        shape = (dom.image_shape[0], dom.image_shape[1], dom.image_shape[2])
        if style == "optdigits":
            shape = (1, 8, 8)
        if channels < shape[0]:
            steps.append(ToChannels(channels))
        if (shape[1], shape[2]) != (size, size):
            steps.append(Resize(size, mode="area"))
        if channels > shape[0]:
            steps.append(ToChannels(channels))
        out.append(apply_to_domain(dom, Compose(steps), name=f"{dom.name}@{channels}x{size}") if steps else dom)
    return out[0], out[1]


def per_class_split(labels: torch.Tensor, *, shots: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Take ``shots`` random examples of every class for training and leave the rest for testing.

    Args:
        labels: int64 (N,).
        shots: Training examples per class (each class keeps at least one test example).
        seed: Seed of the choice.

    Returns:
        ``(train_indices, test_indices)``, sorted.

    Raises:
        MetaxferError: A class has ``shots`` examples or fewer, so none would be left to test.
    """
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) <= shots:
            raise MetaxferError(f"class {c} has {len(idx)} examples, not more than shots={shots}; lower the shots")
        idx = idx[torch.randperm(len(idx), generator=g)]
        train.append(idx[:shots])
        test.append(idx[shots:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def merge_styles(domain: Domain, others: list[str], options: Mapping[str, Any]) -> Domain:
    """Add the images of other domains with the same classes (e.g. the OpenMoji drawings of the Twemoji classes).

    Args:
        domain: The first domain.
        others: Registered names of further domains, built with the same ``options``.
        options: Their build options.

    Returns:
        One domain holding every image, labelled by the shared classes; ``instances["style"]`` names each
        image's domain.

    Raises:
        MetaxferError: A domain does not have the same classes in the same order.
    """
    if not others:
        return domain
    images, labels = [domain.images], [domain.labels]
    styles = [domain.name] * len(domain)
    for name in others:
        other = load_domain(name, options, role="extra style")
        if list(other.class_keys) != list(domain.class_keys) or other.image_shape != domain.image_shape:
            raise MetaxferError(
                f"domain {name!r} cannot be merged with {domain.name!r}: the classes (class_keys) or the image shape "
                f"{other.image_shape} vs {domain.image_shape} differ; merge only styles of the same classes"
            )
        images.append(other.images)
        labels.append(other.labels)
        styles += [name] * len(other)
    return dataclasses.replace(domain, name="+".join([domain.name, *others]), images=torch.cat(images),
                               labels=torch.cat(labels), instances={"style": styles})

"""One interface to enlarge a few-shot episode's support set with generated images, and its implementations.

Every augmenter takes the K real shots of each class of an episode and returns ``per_class`` new images per class,
grouped by class like :attr:`~metaxfer.data.episodes.Episode.support_x`; :func:`augment_episode` puts them after
each class's real shots. All randomness comes from the ``torch.Generator`` passed in, so a seeded generator gives
the same images every time.

=================================== ===========================================================================
:class:`ClassicAugmenter`           classic augmentations of the shots (shifts, zooms, rotations, contrast, blur,
                                    noise): no GAN, the baseline the generated images have to beat
:class:`ScratchGANAugmenter`        a small GAN trained from a fresh random initialisation on each class's K shots
:class:`DAGANAugmenter`             a trained DAGAN generator (:mod:`metaxfer.gan.dagan`) turning each shot into
                                    variants
:class:`MetaGANAugmenter`           a meta-learned initialisation (:mod:`metaxfer.gan.meta_init`, Reptile or
                                    first-order MAML) adapted on each class's K shots
:class:`FinetuneGANAugmenter`       the same adaptation from a plain GAN pre-trained on all source images
=================================== ===========================================================================

:func:`load_augmenter` builds one from a trained run folder (``meta-gan`` or ``dagan`` method).

Example:
    >>> augmenter = load_augmenter("runs/metagan-digits-20260101-120000")          # best checkpoint
    >>> bigger = augment_episode(episode, augmenter, per_class=10, generator=torch.Generator().manual_seed(0))
    >>> bigger.shots == episode.shots + 10
    True
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from metaxfer.data.augment import augment_images
from metaxfer.data.episodes import Episode
from metaxfer.errors import DataFormatError, EpisodeError, MetaxferError
from metaxfer.gan.dagan import DAGANGenerator
from metaxfer.gan.dagan import augment as dagan_augment
from metaxfer.gan.meta_init import MetaInitGAN, check_images
from metaxfer.gan.utils import gan_to_uint8, init_weights, uint8_to_gan

__all__ = [
    "SupportAugmenter",
    "check_support",
    "augment_episode",
    "ClassicAugmenter",
    "ScratchGANAugmenter",
    "DAGANAugmenter",
    "InitAdaptAugmenter",
    "MetaGANAugmenter",
    "FinetuneGANAugmenter",
    "load_augmenter",
]

log = logging.getLogger(__name__)


@runtime_checkable
class SupportAugmenter(Protocol):
    """What the main job calls to enlarge a support set.

    Attributes:
        name: Short name for tables and logs (``scratch-gan``, ``dagan``, ``meta-gan``, ``finetune-gan``).
    """

    name: str

    def augment(self, support_x: torch.Tensor, support_y: torch.Tensor, *, per_class: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated images for an episode's support set.

        Args:
            support_x: uint8 (S, C, H, W), grouped by class as in :class:`~metaxfer.data.episodes.Episode`.
            support_y: int64 (S,) episode labels in [0, N), grouped (all of class 0 first, then class 1, ...).
            per_class: Images to generate per class (>= 1).
            generator: Source of all randomness (a CPU generator).

        Returns:
            Only the generated images, uint8 (per_class·N, C, H, W) grouped by class, and their labels (int64).
        """
        ...


def check_support(support_x: torch.Tensor, support_y: torch.Tensor, *, per_class: int, who: str) -> list[int]:
    """Validate an augmenter's input and return the number of shots of each class.

    Raises:
        DataFormatError: ``support_x`` is not uint8 (S, C, H, W), or ``support_y`` is not int64 (S,).
        EpisodeError: The labels are not grouped by class over ``0..N-1``, or ``per_class < 1``; the message says
            how to fix it.
    """
    check_images(support_x, who=who)
    if not isinstance(support_y, torch.Tensor) or support_y.dtype != torch.int64 or support_y.shape != (
            support_x.shape[0],):
        got = f"{support_y.dtype} {tuple(support_y.shape)}" if isinstance(support_y, torch.Tensor) else type(support_y)
        raise DataFormatError(f"{who}: support_y must be int64 labels shaped ({support_x.shape[0]},) like "
                              f"Episode.support_y, got {got}")
    if not isinstance(per_class, int) or per_class < 1:
        raise EpisodeError(f"{who}: per_class must be an int >= 1 (generated images per class), got {per_class!r}; "
                           "to add no images, do not augment the episode")
    y = support_y.cpu()
    ways = int(y.max()) + 1 if y.numel() else 0
    grouped = bool((y[1:] >= y[:-1]).all()) and int(y.min()) == 0 and torch.unique(y).numel() == ways
    if not grouped:
        raise EpisodeError(
            f"{who}: support_y must be grouped by class over 0..N-1 like Episode.support_y (all rows of class 0, "
            f"then class 1, ...), got {y.tolist()[:20]}; sort the support set first: order = torch.argsort(y, "
            "stable=True); x, y = x[order], y[order]"
        )
    return torch.bincount(y, minlength=ways).tolist()


def _per_class(support_x: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
    return list(support_x.split(counts))


def augment_episode(episode: Episode, augmenter: SupportAugmenter, *, per_class: int,
                    generator: torch.Generator, made_weight: float = 1.0) -> Episode:
    """The episode with ``per_class`` generated images added to each class of its support set.

    Each class keeps its real shots first, followed by its generated images, so the result is grouped by class
    with ``K + per_class`` shots; the query set and the episode's classes are unchanged.

    Args:
        episode: The episode (its support set grouped by class).
        augmenter: Any :class:`SupportAugmenter`.
        per_class: Generated images per class.
        generator: Source of the augmenter's randomness.
        made_weight: Weight of each generated image against a real shot's 1 (``Episode.support_weight``; only
            algorithms that weigh support images accept an episode with weights). With 1 (the default) the episode
            gets no weights, unless it had some (its real shots then keep theirs).

    Returns:
        A new :class:`~metaxfer.data.episodes.Episode`.

    Raises:
        EpisodeError: The augmenter returned images of another shape, dtype or order, or ``made_weight`` is not a
            positive finite number.
    """
    if not isinstance(made_weight, (int, float)) or not math.isfinite(made_weight) or made_weight <= 0:
        raise EpisodeError(f"augment_episode: made_weight must be a positive number (the weight of a generated "
                           f"image against a real shot's 1), got {made_weight!r}")
    counts = check_support(episode.support_x, episode.support_y, per_class=per_class, who="augment_episode")
    fake_x, fake_y = augmenter.augment(episode.support_x, episode.support_y, per_class=per_class, generator=generator)
    ways = len(counts)
    expected_y = torch.arange(ways).repeat_interleave(per_class)
    if (not isinstance(fake_x, torch.Tensor) or fake_x.dtype != torch.uint8
            or tuple(fake_x.shape) != (ways * per_class, *episode.support_x.shape[1:])
            or not torch.equal(fake_y.cpu(), expected_y)):
        raise EpisodeError(
            f"augmenter {getattr(augmenter, 'name', type(augmenter).__name__)!r} returned "
            f"{getattr(fake_x, 'dtype', None)} {tuple(getattr(fake_x, 'shape', ()))} images; expected uint8 "
            f"({ways * per_class}, {', '.join(map(str, episode.support_x.shape[1:]))}) grouped by class with labels "
            "0..N-1 each repeated per_class times"
        )
    real_parts, fake_parts = _per_class(episode.support_x, counts), list(fake_x.cpu().split(per_class))
    weighted = made_weight != 1 or episode.support_weight is not None
    real_w = (episode.support_weight.cpu().float() if episode.support_weight is not None
              else torch.ones(episode.support_y.shape)).split(counts)
    xs, ys, ws = [], [], []
    for k in range(ways):
        xs += [real_parts[k], fake_parts[k]]
        ys.append(torch.full((counts[k] + per_class,), k, dtype=torch.int64))
        ws += [real_w[k], torch.full((per_class,), float(made_weight))]
    return Episode(
        support_x=torch.cat(xs), support_y=torch.cat(ys), query_x=episode.query_x, query_y=episode.query_y,
        classes=episode.classes, class_keys=list(episode.class_keys), domain=episode.domain,
        query_domain=episode.query_domain, support_weight=torch.cat(ws) if weighted else None,
    )


def _labels(ways: int, per_class: int) -> torch.Tensor:
    return torch.arange(ways).repeat_interleave(per_class)


# ---------------------------------------------------------------------------------------------------- adapt an init
class InitAdaptAugmenter:
    """Adapt one GAN initialisation on each class's shots (:meth:`MetaInitGAN.adapt`) and sample from it.

    Args:
        model: The initialisation (meta-learned or pre-trained); it is not changed.
        steps: Adaptation steps per class (default: the model's ``inner_steps``).
        lr: Adaptation step size (default: the model's inner rate).
        name: Name for tables and logs.
    """

    name: str = "adapted-gan"

    def __init__(self, model: MetaInitGAN, *, steps: int | None = None, lr: float | None = None,
                 name: str | None = None) -> None:
        self.model = model
        self.steps = model.inner_steps if steps is None else int(steps)
        self.lr = lr
        if name is not None:
            self.name = name
        if self.steps < 0:
            raise ValueError(f"adaptation steps must be >= 0, got {self.steps}")

    def _model_for_class(self, generator: torch.Generator) -> MetaInitGAN:
        return self.model

    def augment(self, support_x: torch.Tensor, support_y: torch.Tensor, *, per_class: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`SupportAugmenter.augment`."""
        counts = check_support(support_x, support_y, per_class=per_class, who=f"{self.name} augmenter")
        if tuple(support_x.shape[1:]) != self.model.image_shape:
            raise DataFormatError(
                f"{self.name} augmenter: its GAN makes {self.model.image_shape} images, the support set has "
                f"{tuple(support_x.shape[1:])}; bring the episode to the model's format (match_format)"
            )
        out = []
        for shots in _per_class(support_x, counts):
            model = self._model_for_class(generator)
            adapted = model.adapt(shots, steps=self.steps, lr=self.lr, generator=generator)
            out.append(adapted.sample(per_class, generator=generator))
        return torch.cat(out), _labels(len(counts), per_class)


class MetaGANAugmenter(InitAdaptAugmenter):
    """:class:`InitAdaptAugmenter` from a meta-learned initialisation (``meta-gan`` run, Reptile or FO-MAML)."""

    name = "meta-gan"


class FinetuneGANAugmenter(InitAdaptAugmenter):
    """:class:`InitAdaptAugmenter` from a GAN pre-trained on all source images (``meta-gan`` run with
    ``metagan.algorithm: pretrain``): the baseline the meta-learned initialisation is compared with."""

    name = "finetune-gan"


class ScratchGANAugmenter(InitAdaptAugmenter):
    """A fresh GAN per class, from a random (DCGAN) initialisation drawn from the generator, trained on the shots.

    Args:
        image_size: Side of the images.
        channels: Their channels.
        steps: Training steps per class.
        lr: Step size (Adam).
        **model_options: Further :class:`~metaxfer.gan.meta_init.MetaInitGAN` options (``width``, ``latent_dim``,
            ``objective``, ``batch_size``, ...).
    """

    name = "scratch-gan"

    def __init__(self, *, image_size: int = 28, channels: int = 1, steps: int = 20, lr: float = 2e-3,
                 **model_options: Any) -> None:
        super().__init__(MetaInitGAN(image_size=image_size, channels=channels, inner_lr=lr, **model_options),
                         steps=steps, lr=lr)
        self._state = {k: v.clone() for k, v in self.model.state_dict().items()}

    def _model_for_class(self, generator: torch.Generator) -> MetaInitGAN:
        seed = int(torch.randint(2**62, (1,), generator=generator))
        self.model.load_state_dict(self._state)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            init_weights(self.model.generator, scheme="dcgan")
            init_weights(self.model.discriminator, scheme="dcgan")
        return self.model


class ClassicAugmenter:
    """Classic augmentations of each shot (:func:`metaxfer.data.augment.augment_images`; shots are used in turn,
    shot ``j % K`` for image j): what a few-shot learner gets without any generator.

    Args:
        **options: Options of :func:`~metaxfer.data.augment.augment_images` (``shift``, ``rotate``, ``noise``, ...).
    """

    name = "classic"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def augment(self, support_x: torch.Tensor, support_y: torch.Tensor, *, per_class: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`SupportAugmenter.augment`."""
        counts = check_support(support_x, support_y, per_class=per_class, who="classic augmenter")
        picks = []
        start = 0
        for k in counts:
            picks.append(start + torch.arange(per_class) % k)
            start += k
        made = augment_images(uint8_to_gan(support_x[torch.cat(picks)].cpu()), generator=generator, **self.options)
        return gan_to_uint8(made), _labels(len(counts), per_class)


# ---------------------------------------------------------------------------------------------------- DAGAN
class DAGANAugmenter:
    """Variants of each shot from a trained DAGAN generator (shots are used in turn: shot ``j % K`` for image j).

    Args:
        generator: A trained :class:`~metaxfer.gan.dagan.DAGANGenerator` (e.g. a ``dagan`` run's EMA copy).
    """

    name = "dagan"

    def __init__(self, generator: DAGANGenerator) -> None:
        self.generator = generator

    def augment(self, support_x: torch.Tensor, support_y: torch.Tensor, *, per_class: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`SupportAugmenter.augment`."""
        counts = check_support(support_x, support_y, per_class=per_class, who="dagan augmenter")
        if tuple(support_x.shape[1:]) != tuple(self.generator.image_shape):
            raise DataFormatError(f"dagan augmenter: the generator takes {tuple(self.generator.image_shape)} images, "
                                  f"the support set has {tuple(support_x.shape[1:])}")
        out = []
        for shots in _per_class(support_x, counts):
            k = shots.shape[0]
            per_image = -(-per_class // k)
            made, _ = dagan_augment(self.generator, shots, torch.zeros(k, dtype=torch.int64), per_image=per_image,
                                    include_originals=False, rng=generator)
            j = torch.arange(per_class)
            out.append(made[(j % k) * per_image + j // k])  # shot 0's first variant, shot 1's first, ...
        return torch.cat(out), _labels(len(counts), per_class)


# ---------------------------------------------------------------------------------------------------- from runs
def _dagan_from_state(cfg: Any, state: dict[str, torch.Tensor]) -> DAGANGenerator:
    mc = cfg.dagan
    channels = int(state["stem.0.weight"].shape[1])
    noise_out = int(state["noise.weight"].shape[0])
    steps = sum(1 for k in state if k.startswith("down.") and k.endswith(".0.weight"))
    base = round((noise_out / mc.noise_channels) ** 0.5)
    g = DAGANGenerator(mc.latent_dim, image_size=base * 2**steps, channels=channels, width=mc.width,
                       noise_channels=mc.noise_channels)
    g.load_state_dict(state)
    return g.eval()


def load_augmenter(
    run_dir: str | Path,
    *,
    checkpoint: str = "best",
    device: str | torch.device = "cpu",
    steps: int | None = None,
    lr: float | None = None,
) -> SupportAugmenter:
    """An augmenter from a trained run folder.

    ``meta-gan`` runs give a :class:`MetaGANAugmenter` (``metagan.algorithm`` reptile or fomaml) or a
    :class:`FinetuneGANAugmenter` (``pretrain``); ``dagan`` runs a :class:`DAGANAugmenter` (the EMA generator).

    Args:
        run_dir: The run folder.
        checkpoint: ``best`` (the best evaluation's checkpoint; the newest if none is marked), ``last``, or a
            checkpoint folder.
        device: Where the networks run.
        steps: Adaptation steps per class (``meta-gan`` runs; default: the run's ``metagan.eval_inner_steps``).
        lr: Adaptation step size (default: the run's inner rate).

    Raises:
        MetaxferError: The run is of another method (the message names those that work).
        CheckpointError: No checkpoint, or a damaged one.
    """
    from metaxfer.engine import checkpoint as ckpt_mod
    from metaxfer.engine.config import config_to_dict, load_config
    from metaxfer.engine.runs import Run

    run = Run.open(run_dir)
    cfg = load_config(run.config_path)
    if cfg.method not in ("meta-gan", "dagan"):
        raise MetaxferError(f"{run_dir} is a {cfg.method!r} run; augmenters come from 'meta-gan' runs "
                            "(metagan.algorithm reptile, fomaml or pretrain) or 'dagan' runs")
    path, _ = ckpt_mod.resolve_checkpoint(run.checkpoints, checkpoint)
    ckpt = ckpt_mod.load_checkpoint(path, config=config_to_dict(cfg))
    if cfg.method == "dagan":
        return DAGANAugmenter(_dagan_from_state(cfg, ckpt.state["modules"]["g_ema"]).to(device))
    from metaxfer.methods.meta_gan import build_model

    facts = ckpt.state["method"]["model"]
    mc = cfg.metagan  # type: ignore[attr-defined]
    model = build_model(mc, channels=int(facts["channels"]), image_size=int(facts["image_size"]))
    model.load_state_dict(ckpt.state["modules"]["model"])
    model.to(device).eval()
    steps = steps if steps is not None else (mc.eval_inner_steps or mc.inner_steps)
    cls = FinetuneGANAugmenter if mc.algorithm == "pretrain" else MetaGANAugmenter
    log.info("augmenter %s from %s (step %d), %d adaptation steps", cls.name, path, ckpt.step, steps)
    return cls(model, steps=steps, lr=lr)

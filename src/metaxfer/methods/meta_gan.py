"""``meta-gan``: meta-learn a GAN initialisation over source tasks (Reptile as in FIGR, or first-order MAML), or
pre-train the same GAN plainly on all source images (the fine-tuning baseline), through the engine.

The source is built like the ``meta`` method's (``data.domain`` plus ``metagan.source`` transforms and extra domains,
split by ``metagan.split``); a task is the images of one source training class, or of one group of classes
(``metagan.task: group`` with ``group_by`` a class grouping such as ``alphabet``, or random groups of
``classes_per_task`` classes). Per iteration:

* ``reptile`` / ``fomaml``: one outer update on ``tasks_per_batch`` tasks. The engine owns the outer optimiser
  (``train.optimizer``, ``train.lr``): it back-propagates the surrogate of :mod:`metaxfer.gan.meta_init`. Reptile's
  interpolation ``θ ← θ + ε · mean_t (φ_t − θ)`` is exact with ``train.optimizer: sgd``, ``train.momentum: 0`` and
  ``train.lr`` = ε; with Adam the Reptile direction is rescaled per parameter.
* ``pretrain``: one discriminator and one generator step of ordinary GAN training on a batch (``data.batch_size``)
  of all source training images, Adam with β₁ = ``metagan.beta1``.

Evaluation (``eval/fid``, the headline, and ``eval/kid``, ``eval/class_acc``, ``eval/class_acc_unadapted``,
``eval/fid_unadapted``): for up to ``eval_classes`` classes of the source's validation part, adapt the generator on
``eval_shots`` images of the class (``eval_inner_steps`` steps) and draw ``eval_samples`` images; FID/KID of all
of them against the class's other images, on features of a network trained on those classes' images
(:mod:`metaxfer.metrics`), and ``class_acc`` = how often that network puts a sample in the class it was adapted to.
The same numbers for the unadapted generator show what adaptation adds. Samples: one row per validation class, a real
shot first, then images of the adapted generator. ``metaxfer.gan.support.load_augmenter(run)`` turns the run into a
support-set augmenter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from metaxfer.data.domain import Domain
from metaxfer.engine.config import ConfigError, ExperimentConfig, option
from metaxfer.engine.methods import Method, Step, StepOutput, register_method
from metaxfer.engine.optim import optimizer_for
from metaxfer.errors import MetaxferError
from metaxfer.gan.meta_init import INNER_OPTIMIZERS, GANTaskSampler, MetaInitGAN
from metaxfer.gan.objectives import GAN_OBJECTIVES
from metaxfer.gan.steps import discriminator_loss, generate, generator_loss
from metaxfer.gan.utils import frozen_parameters, uint8_to_gan
from metaxfer.methods.classifier import EpochSampler
from metaxfer.methods.crossdomain import SourceConfig, SourceData, SplitConfig, TargetConfig, build_source

__all__ = ["MetaGANConfig", "MetaGANInit", "build_model", "model_facts", "ALGORITHMS"]

log = logging.getLogger(__name__)

#: ``metagan.algorithm`` values.
ALGORITHMS: tuple[str, ...] = ("reptile", "fomaml", "pretrain")


@dataclass
class MetaGANConfig:
    """The ``metagan:`` section: outer rule, tasks, inner loop, networks, evaluation and the source data."""

    algorithm: str = option("reptile", choices=ALGORITHMS,
                            help="reptile (FIGR), fomaml, or pretrain (plain GAN on all source images)")
    task: str = option("class", choices=("class", "group"), help="a task is one class, or a group of classes")
    group_by: str = option("", help="task=group: a class grouping of the source (e.g. alphabet); empty: random groups")
    classes_per_task: int = option(2, ge=1, help="classes of a random group (task=group, no group_by)")
    tasks_per_batch: int = option(4, ge=1, help="tasks per outer update")
    shots: int = option(5, ge=1, help="images per task the inner loop trains on (K)")
    queries: int = option(5, ge=1, help="query images per task (fomaml's outer loss)")
    inner_steps: int = option(10, ge=1, help="inner GAN steps per task")
    inner_lr: float = option(0.01, gt=0.0, help="inner step size")
    inner_optimizer: str = option("adam", choices=INNER_OPTIMIZERS, help="inner update rule (fresh moments per task)")
    eval_inner_steps: int = option(0, ge=0, help="adaptation steps at evaluation and in augmenters; 0: inner_steps")
    batch_size: int = option(16, ge=1, help="generated images per inner step")
    latent_dim: int = option(32, ge=1, help="size of the noise z")
    width: int = option(16, ge=1, help="generator width")
    d_width: int = option(16, ge=1, help="discriminator width")
    d_norm: str = option("layer", choices=("layer", "instance", "none", "batch"), help="discriminator normalisation")
    objective: str = option("nonsaturating", help="GAN objective: minimax, nonsaturating, least-squares, hinge, wgan-gp")
    gp_weight: float = option(-1.0, help="gradient-penalty weight; negative: the objective's default")
    beta1: float = option(0.5, ge=0.0, lt=1.0, help="Adam beta1 of the outer (train.optimizer adam) and pretrain steps")
    eval_shots: int = option(5, ge=1, help="K of the evaluation's adaptation")
    eval_classes: int = option(10, ge=2, help="validation classes evaluated")
    eval_samples: int = option(50, ge=2, help="generated images per evaluated class")
    feature_epochs: int = option(3, ge=1, help="epochs of the FID/KID feature network")
    kid_subsets: int = option(20, ge=1, help="KID subsets")
    source: SourceConfig = option(default_factory=SourceConfig)
    split: SplitConfig = option(default_factory=SplitConfig)
    target: TargetConfig = option(default_factory=TargetConfig)

    def __post_init__(self) -> None:
        if self.objective not in GAN_OBJECTIVES:
            raise ConfigError(f"config key 'metagan.objective': {GAN_OBJECTIVES.unknown_message(self.objective)}")


def build_model(mc: MetaGANConfig, *, channels: int, image_size: int) -> MetaInitGAN:
    """The :class:`~metaxfer.gan.meta_init.MetaInitGAN` a ``metagan:`` section describes.

    Raises:
        ConfigError: A bad combination (e.g. a gradient penalty with a batch-norm discriminator).
    """
    try:
        return MetaInitGAN(image_size=image_size, channels=channels, latent_dim=mc.latent_dim, width=mc.width,
                           d_width=mc.d_width, d_norm=mc.d_norm,  # type: ignore[arg-type]
                           objective=mc.objective, gp_weight=None if mc.gp_weight < 0 else mc.gp_weight,
                           inner_steps=mc.inner_steps, inner_lr=mc.inner_lr, inner_optimizer=mc.inner_optimizer,
                           batch_size=mc.batch_size)
    except (MetaxferError, ValueError) as exc:
        raise ConfigError(f"metagan: {exc}") from None


def model_facts(source: SourceData) -> dict[str, int]:
    """Image channels and side of the source (stored in checkpoints, so a model is rebuilt without the data).

    Raises:
        ConfigError: Images that are not square with an even side >= 8 (the message says which transform to add).
    """
    c, h, w = source.image_shape
    if h != w or h % 2 or h < 8:
        raise ConfigError(f"meta-gan: the source images are {h}×{w}; the GAN needs square images with an even side "
                          ">= 8: add {name: Resize, size: 28} to metagan.source.transforms")
    return {"channels": c, "image_size": h}


def _eval_classes(domain: Domain, *, count: int, need: int) -> list[int]:
    """Up to ``count`` classes with at least ``need`` images, spread evenly over the domain's classes."""
    ok = torch.nonzero(domain.class_counts() >= need).flatten()
    if len(ok) == 0:
        raise MetaxferError(f"no class of {domain.name!r} has the {need} images evaluation needs (eval_shots + 2): "
                            "lower metagan.eval_shots")
    pick = torch.linspace(0, len(ok) - 1, min(count, len(ok))).round().long().unique()
    return ok[pick].tolist()


@register_method("meta-gan")
class MetaGANInit(Method):
    """A meta-learned (or plainly pre-trained) GAN initialisation for few-shot generation; see the module docstring.

    Metrics: ``meta/d_loss``, ``meta/g_loss`` (first inner step), ``meta/d_loss_end``, ``meta/g_loss_end``,
    ``meta/distance`` (Reptile) or ``meta/query_*`` (FO-MAML); ``d/loss``, ``g/loss`` (pretrain); ``eval/fid``
    (headline), ``eval/kid``, ``eval/class_acc``, ``eval/fid_unadapted``, ``eval/class_acc_unadapted``.
    """

    section = "metagan"
    Config = MetaGANConfig
    headline = ("eval/fid", "min")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        mc: MetaGANConfig = self.method_cfg
        self.source = build_source(cfg.data.domain, cfg.data.options, mc.source, mc.split, seed=cfg.data.split_seed)
        self.facts = model_facts(self.source)
        self.model = build_model(mc, **self.facts).to(device)
        self.modules = {"model": self.model}
        self.task_generator = torch.Generator().manual_seed(cfg.seed)
        self.noise = torch.Generator().manual_seed(cfg.seed + 1)
        train = self.source.train
        self.pretraining = mc.algorithm == "pretrain"
        if self.pretraining:
            self.batches = EpochSampler(len(train), batch_size=cfg.data.batch_size, generator=self.task_generator)
            self.train_x = uint8_to_gan(train.images)
            self.optimizers = {"d": self._optimizer(self.model.discriminator.parameters()),
                               "g": self._optimizer(self.model.generator.parameters())}
        else:
            groups = None
            if mc.task == "group" and mc.group_by:
                if mc.group_by not in train.groups:
                    raise ConfigError(f"config key 'metagan.group_by' is {mc.group_by!r}; {train.name!r} has the "
                                      f"groupings: {', '.join(train.groups) or 'none'}")
                groups = train.groups[mc.group_by]
            queries = mc.queries if mc.algorithm == "fomaml" else 0
            self.tasks = GANTaskSampler(train.images, train.labels, shots=mc.shots, queries=queries, task=mc.task,
                                        groups=groups, classes_per_task=mc.classes_per_task, seed=cfg.seed)
            self.optimizers = {"meta": self._optimizer(self.model.parameters())}
            if mc.algorithm == "reptile" and not (cfg.train.optimizer == "sgd" and cfg.train.momentum == 0):
                log.info("meta-gan: Reptile's interpolation is exact with train.optimizer=sgd train.momentum=0 "
                         "(now %s)", cfg.train.optimizer)
        self._fake: torch.Tensor | None = None
        self._extractor: Any = None
        val = self.source.val
        self.eval_class_ids = _eval_classes(val, count=mc.eval_classes, need=mc.eval_shots + 2)
        log.info("meta-gan (%s) on %s; evaluation on %d classes of %s", mc.algorithm, train.describe(),
                 len(self.eval_class_ids), val.name)

    def _optimizer(self, params: Any) -> torch.optim.Optimizer:
        train = self.cfg.train
        if train.optimizer == "adam":
            return torch.optim.Adam(params, lr=train.lr, betas=(self.method_cfg.beta1, 0.999),
                                    weight_decay=train.weight_decay)
        return optimizer_for(params, train)

    # ------------------------------------------------------------------------------------------------ steps
    def steps(self) -> list[Step]:
        if self.pretraining:
            return [Step("d", self.d_step, optimizer="d"), Step("g", self.g_step, optimizer="g")]
        return [Step("meta", self.meta_step, optimizer="meta")]

    def meta_step(self, iteration: int) -> StepOutput:
        """The outer surrogate of ``tasks_per_batch`` source tasks; the engine back-propagates it and steps."""
        mc: MetaGANConfig = self.method_cfg
        tasks = [self.tasks.sample(self.task_generator) for _ in range(mc.tasks_per_batch)]
        loss, metrics = self.model.meta_loss(tasks, algorithm=mc.algorithm, rng=self.noise)  # type: ignore[arg-type]
        return StepOutput(loss, metrics)

    def d_step(self, iteration: int) -> StepOutput:
        """Pre-training: the discriminator's loss on a batch of source images and fakes (kept for the g step)."""
        idx = self.batches.next()
        real = self.train_x[idx].to(self.device)
        g, d = self.model.generator, self.model.discriminator
        fake, _ = generate(g, len(idx), rng=self.noise, device=self.device)
        self._fake = fake
        loss, metrics = discriminator_loss(g, d, real, objective=self.model.objective, fake=fake.detach(),
                                           gp_weight=self.model.gp_weight, rng=self.noise)
        return StepOutput(loss, metrics)

    def g_step(self, iteration: int) -> StepOutput:
        """Pre-training: the generator's loss on the last d step's fakes, scored by the updated discriminator."""
        with frozen_parameters(self.model.discriminator):
            loss, metrics = generator_loss(self.model.generator, self.model.discriminator,
                                           objective=self.model.objective, fake=self._fake, rng=self.noise)
        self._fake = None
        return StepOutput(loss, metrics)

    # ------------------------------------------------------------------------------------------------ evaluation
    @property
    def adapt_steps(self) -> int:
        mc: MetaGANConfig = self.method_cfg
        return mc.eval_inner_steps or mc.inner_steps

    def _eval_split(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(shots, held-out images) of each evaluated validation class, fixed by the run's seed."""
        val, k = self.source.val, self.method_cfg.eval_shots
        g = torch.Generator().manual_seed(self.cfg.seed + 101)
        out = []
        for c in self.eval_class_ids:
            idx = torch.nonzero(val.labels == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            out.append((val.images[idx[:k]], val.images[idx[k:]]))
        return out

    def adapted_samples(self, n: int, *, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``n`` images of the generator adapted to each of the E evaluated classes, and ``n·E`` of the unadapted one.

        Returns:
            ``(E uint8 (n, C, H, W) tensors, unadapted uint8 (n·E, C, H, W))``.
        """
        rng = torch.Generator().manual_seed(seed)
        per_class = []
        for shots, _ in self._eval_split():
            adapted = self.model.adapt(shots.to(self.device), steps=self.adapt_steps, generator=rng)
            per_class.append(adapted.sample(n, generator=rng))
        return per_class, self.model.unadapted().sample(n * len(per_class), generator=rng)

    def evaluate(self) -> dict[str, float]:
        from metaxfer.metrics import classifier_accuracy, generation_scores, train_feature_extractor

        mc: MetaGANConfig = self.method_cfg
        split = self._eval_split()
        if self._extractor is None:  # a network for the evaluated classes only, trained on all their images
            classes = self.source.val.select_classes(self.eval_class_ids, name=f"{self.source.val.name}-eval")
            with torch.random.fork_rng(devices=[]):
                self._extractor = train_feature_extractor(classes, epochs=mc.feature_epochs, held_out=0.0,
                                                          seed=self.cfg.seed, device=self.device)
        fakes, unadapted = self.adapted_samples(mc.eval_samples, seed=self.cfg.seed + 7)
        real = torch.cat([held for _, held in split])
        labels = torch.arange(len(fakes)).repeat_interleave(mc.eval_samples)
        scores = generation_scores(real, torch.cat(fakes), extractor=self._extractor, subsets=mc.kid_subsets,
                                   seed=self.cfg.seed)
        base = generation_scores(real, unadapted, extractor=self._extractor, subsets=mc.kid_subsets,
                                 seed=self.cfg.seed)
        acc, _ = classifier_accuracy(self._extractor.network, torch.cat(fakes), labels)
        base_acc, _ = classifier_accuracy(self._extractor.network, unadapted, labels)
        return {"fid": scores.fid, "kid": scores.kid, "class_acc": acc, "fid_unadapted": base.fid,
                "class_acc_unadapted": base_acc}

    def samples(self) -> torch.Tensor:
        cols = self.sample_columns
        split = self._eval_split()[:8]
        rng = torch.Generator().manual_seed(self.cfg.seed + 3)
        rows = []
        for shots, _ in split:
            adapted = self.model.adapt(shots.to(self.device), steps=self.adapt_steps, generator=rng)
            rows += [shots[:1], adapted.sample(cols - 1, generator=rng)]
        return torch.cat(rows)

    # ------------------------------------------------------------------------------------------------ state
    def generators(self) -> dict[str, torch.Generator]:
        return {"tasks": self.task_generator, "noise": self.noise}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": dict(self.facts)}
        if self.pretraining:
            state["batches"] = self.batches.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if dict(state.get("model", {})) != self.facts:
            raise ConfigError(f"the checkpoint's model was built for {state.get('model')}, this source gives "
                              f"{self.facts}: the data changed since the run started")
        if self.pretraining:
            self.batches.load_state_dict(state["batches"])

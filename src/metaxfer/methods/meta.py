"""``meta``: few-shot meta-learning (and its baselines) through the engine, on a cross-domain protocol.

One method covers every algorithm of :mod:`metaxfer.meta`; the ``meta:`` config section names the algorithm and
its options, the episodes, and the cross-domain data (:mod:`metaxfer.methods.crossdomain`). Per iteration:

* meta-learners (MAML, FOMAML, Meta-SGD, ANIL, Reptile, ProtoNet, Matching Networks, Meta-LSTM): one outer update
  on a meta-batch of ``meta_batch`` episodes from the source's training classes, drawn from a seeded generator that
  is checkpointed (so resuming is exact). The engine owns the outer optimiser (``train.optimizer``, ``train.lr``,
  ``train.grad_clip``, the schedule): it back-propagates :meth:`~metaxfer.meta.MetaAlgorithm.meta_loss`. For
  Reptile that loss is the surrogate whose SGD step is exactly Reptile's interpolation (``train.optimizer: sgd``,
  ``train.momentum: 0``, ``train.lr`` = ε);
* ``baseline`` / ``baseline++``: one supervised pre-training step on a batch (``data.batch_size``) of source
  training images labelled with their class (Chen et al. 2019);
* ``scratch``: nothing to learn; the step does nothing, so ``train.steps: 1`` is enough (or skip training: ``metaxfer
  evaluate --config RECIPE --algorithm scratch``).

With several processes (``torchrun``, :mod:`metaxfer.engine.distributed`), every process draws the same global
meta-batch from the shared generator and computes the meta-loss of its contiguous slice of episodes; the engine sums
``share × meta-gradient`` over the processes, which is the meta-gradient of the whole meta-batch (Reptile's
surrogate included). Baseline pre-training shards its batch the same way.

Evaluation during training (``eval/acc``, the headline that picks the best checkpoint) is the mean accuracy on fixed
*source validation* episodes. The final, target evaluation is ``metaxfer evaluate --model RUN``
(:mod:`metaxfer.methods.meta_eval`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from metaxfer.data.episodes import EpisodeSampler
from metaxfer.engine.config import ConfigError, ExperimentConfig, option
from metaxfer.engine.methods import Method, Step, StepOutput, register_method
from metaxfer.engine.optim import optimizer_for
from metaxfer.meta import ALGORITHMS, Baseline, MetaAlgorithm, algorithm_options, create_algorithm, evaluate
from metaxfer.methods.classifier import EpochSampler
from metaxfer.methods.crossdomain import (
    SourceConfig,
    SourceData,
    SplitConfig,
    TargetConfig,
    build_source,
    parse_setting,
)
from metaxfer.models import BACKBONES, NORM_MODES

__all__ = ["EvalConfig", "MetaConfig", "MetaLearning", "algorithm_kwargs", "build_algorithm", "model_facts"]

log = logging.getLogger(__name__)

#: Outer-loop options of the algorithms that the engine owns in this method (the ``train:`` section sets them).
ENGINE_OWNED = MappingProxyType({"outer_lr": "train.lr", "optimizer": "train.optimizer",
                                 "weight_decay": "train.weight_decay", "grad_clip": "train.grad_clip"})
#: Options of the ``meta:`` section handed to the algorithms that take them.
_TYPED_OPTIONS = ("inner_lr", "inner_steps", "eval_inner_steps", "first_order", "learn_inner_lr")


@dataclass
class EvalConfig:
    """The fixed target episodes of ``metaxfer evaluate`` (and the validation batch size)."""

    settings: list[str] = option(
        default_factory=lambda: ["5w1s", "5w5s"],
        help="<N>w<K>s[<Q>q][@<group>], e.g. 5w1s, 20w1s, 20w1s1q@alphabet (one-shot runs within one alphabet)",
    )
    episodes: int = option(600, ge=1, help="episodes per setting (the literature's 600)")
    queries: int = option(15, ge=1, help="queries per class when a setting gives none")
    seed: int = option(0, help="seed of the fixed evaluation episodes (recorded with their fingerprint)")
    batch_size: int = option(16, ge=1, help="episodes predicted at once")

    def __post_init__(self) -> None:
        for text in self.settings:
            try:
                parse_setting(text, queries=self.queries)
            except ConfigError as exc:
                raise ConfigError(f"config key 'meta.eval.settings': {exc}") from None


@dataclass
class MetaConfig:
    """The ``meta:`` section: algorithm, backbone, episodes, validation, target evaluation and cross-domain data."""

    algorithm: str = option("protonet", help="a registered algorithm (metaxfer.meta.ALGORITHMS)")
    backbone: str = option("conv4", choices=tuple(BACKBONES.names()), help="a registered backbone")
    backbone_kwargs: dict[str, Any] = option(default_factory=dict, help="backbone options, e.g. {hidden: 32}")
    norm: str = option("support", choices=NORM_MODES, help="batch-norm statistics in episodes")
    inner_lr: float = option(0.4, gt=0.0, help="inner step size (MAML family, ANIL, Reptile; Meta-SGD's initial α)")
    inner_steps: int = option(1, ge=1, help="inner steps during meta-training")
    eval_inner_steps: int = option(0, ge=0, help="inner steps at evaluation; 0: as inner_steps")
    first_order: bool | None = option(None, help="first-order MAML/Meta-SGD/ANIL; null: the algorithm's default")
    learn_inner_lr: bool = option(False, help="MAML/ANIL: learn one rate per parameter tensor and step")
    options: dict[str, Any] = option(
        default_factory=dict, help="other algorithm options, e.g. {fce: true}, {finetune_steps: 100}, {steps: 100}"
    )
    meta_batch: int = option(4, ge=1, help="episodes per outer update")
    ways: int = option(5, ge=2, help="N of the training and validation episodes")
    shots: int = option(1, ge=1, help="K of the training and validation episodes")
    queries: int = option(5, ge=1, help="queries per class in training episodes")
    val_episodes: int = option(100, ge=1, help="fixed source-validation episodes (model selection)")
    val_queries: int = option(0, ge=0, help="queries per class of validation episodes; 0: as queries")
    val_seed: int = option(1, help="seed of the validation episodes")
    eval: EvalConfig = option(default_factory=EvalConfig)
    source: SourceConfig = option(default_factory=SourceConfig)
    split: SplitConfig = option(default_factory=SplitConfig)
    target: TargetConfig = option(default_factory=TargetConfig)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"config key 'meta.algorithm': {ALGORITHMS.unknown_message(self.algorithm)}")
        algorithm_kwargs(self, seed=0)  # unknown or engine-owned options are config errors, before any run starts


def algorithm_kwargs(mc: MetaConfig, *, seed: int) -> dict[str, Any]:
    """The keyword arguments of :func:`~metaxfer.meta.create_algorithm` for ``mc.algorithm`` (options it does not
    take are left out; ``meta.options`` must all be valid).

    Raises:
        ConfigError: ``meta.options`` holds an option the algorithm does not take, or one the engine owns.
    """
    cls = ALGORITHMS.get(mc.algorithm)
    valid = algorithm_options(cls) + (["head_scale"] if issubclass(cls, Baseline) else [])
    if "num_classes" in mc.options:
        raise ConfigError("config key 'meta.options' sets num_classes; it is set for you (the source's training "
                          "classes size Baseline's classifier): remove it")
    owned = sorted(set(mc.options) & set(ENGINE_OWNED))
    if owned:
        raise ConfigError(
            "config key 'meta.options' sets " + ", ".join(owned) + ", which the engine owns here: use "
            + ", ".join(ENGINE_OWNED[k] for k in owned)
        )
    unknown = sorted(set(mc.options) - set(valid))
    if unknown:
        allowed = [v for v in valid if v not in ENGINE_OWNED]
        raise ConfigError(
            f"config key 'meta.options': algorithm {mc.algorithm!r} does not take {', '.join(unknown)}; its options "
            f"are: {', '.join(allowed)}"
        )
    kwargs: dict[str, Any] = {}
    typed = {"inner_lr": mc.inner_lr, "inner_steps": mc.inner_steps,
             "eval_inner_steps": mc.eval_inner_steps or None, "first_order": mc.first_order,
             "learn_inner_lr": mc.learn_inner_lr}
    for name in _TYPED_OPTIONS:
        if name in valid and typed[name] is not None:
            kwargs[name] = typed[name]
    if "seed" in valid:
        kwargs["seed"] = seed
    kwargs.update(mc.options)
    return kwargs


def build_algorithm(mc: MetaConfig, *, in_channels: int, image_size: int, num_classes: int, seed: int) -> MetaAlgorithm:
    """Build the configured algorithm and its backbone.

    Args:
        mc: The ``meta:`` section.
        in_channels: Image channels of the common format.
        image_size: Image side of the common format.
        num_classes: Source training classes (the size of Baseline's pre-training classifier).
        seed: Seed of the algorithms that draw new weights per episode (scratch, Baseline's new heads).

    Raises:
        ConfigError: A bad option or backbone argument (the message lists the valid ones).
    """
    kwargs = algorithm_kwargs(mc, seed=seed)
    if issubclass(ALGORITHMS.get(mc.algorithm), Baseline):
        kwargs["num_classes"] = num_classes
    try:
        return create_algorithm(mc.algorithm, backbone=mc.backbone, ways=mc.ways, in_channels=in_channels,
                                image_size=image_size, norm=mc.norm, backbone_kwargs=dict(mc.backbone_kwargs), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"meta.algorithm {mc.algorithm!r} with backbone {mc.backbone!r}: {exc}") from None


def model_facts(source: SourceData) -> dict[str, int]:
    """What the network's shape depends on besides the config (stored in checkpoints, so a model is rebuilt without
    loading the source): input channels, image side and number of source training classes."""
    c, h, w = source.image_shape
    if h != w:
        raise ConfigError(
            f"the source images are {h}×{w}; the backbones take square images: add "
            f"{{name: Resize, size: {max(h, w)}}} to meta.source.transforms"
        )
    return {"in_channels": c, "image_size": h, "num_classes": source.train.num_classes}


@register_method("meta")
class MetaLearning(Method):
    """Meta-training (or Baseline pre-training) on the source classes, validation on held-out source episodes.

    Metrics: ``meta/loss``, ``meta/acc`` (query loss and accuracy of the meta-batch before the update) or
    ``pretrain/loss``, ``pretrain/acc``; ``eval/acc`` (the headline), ``eval/ci``, ``eval/loss`` on the fixed
    validation episodes.
    """

    section = "meta"
    Config = MetaConfig
    headline = ("eval/acc", "max")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        mc: MetaConfig = self.method_cfg
        self.source = build_source(cfg.data.domain, cfg.data.options, mc.source, mc.split, seed=cfg.data.split_seed)
        self.facts = model_facts(self.source)
        self.algorithm = build_algorithm(mc, seed=cfg.seed, **self.facts).to(device)
        self.modules = {"algorithm": self.algorithm}
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.pretraining = isinstance(self.algorithm, Baseline)
        train = self.source.train
        self.batches: EpochSampler | None = None
        self.sampler: EpisodeSampler | None = None
        if self.pretraining:
            self.batches = EpochSampler(len(train), batch_size=cfg.data.batch_size, generator=self.generator)
        elif self.algorithm.needs_meta_training:
            self.sampler = EpisodeSampler(train, ways=mc.ways, shots=mc.shots, queries=mc.queries,
                                          drop_small_classes=True, seed=cfg.seed)
        if self.algorithm.needs_meta_training:
            params = [p for p in self.algorithm.parameters() if p.requires_grad]
            self.optimizers = {"meta": optimizer_for(params, cfg.train)}
        val = EpisodeSampler(self.source.val, ways=mc.ways, shots=mc.shots, queries=mc.val_queries or mc.queries,
                             drop_small_classes=True)
        self.val_set = val.fixed(mc.val_episodes, seed=mc.val_seed)
        log.info("meta: %s with %s on %s; %d validation episodes (%d classes)", mc.algorithm, mc.backbone,
                 train.describe(), len(self.val_set), len(val.classes))

    def steps(self) -> list[Step]:
        if self.pretraining:
            return [Step("pretrain", self.pretrain_step, optimizer="meta")]
        if self.algorithm.needs_meta_training:
            return [Step("meta", self.meta_step, optimizer="meta")]
        return [Step("scratch", self.scratch_step)]

    def meta_step(self, iteration: int) -> StepOutput:
        """The meta-loss of ``meta_batch`` training episodes; the engine back-propagates it and steps."""
        assert self.sampler is not None
        episodes = [self.sampler.sample(self.generator) for _ in range(self.method_cfg.meta_batch)]
        shard = self.dist.shard(len(episodes), what="meta.meta_batch")
        out = self.algorithm.meta_loss(shard.take(episodes))
        return StepOutput(out.loss, out.metrics, share=shard.share)

    def pretrain_step(self, iteration: int) -> StepOutput:
        """Baseline(++) pre-training: cross-entropy over every source training class on the next batch."""
        assert self.batches is not None
        idx = self.batches.next()
        shard = self.dist.shard(len(idx), what="data.batch_size")
        idx = shard.take(idx)
        out = self.algorithm.supervised_loss(self.source.train.images[idx], self.source.train.labels[idx])
        return StepOutput(out.loss, out.metrics, share=shard.share)

    def scratch_step(self, iteration: int) -> StepOutput:
        """Training from scratch learns each episode at test time: there is nothing to update here."""
        return StepOutput(None, {})

    def evaluate(self) -> dict[str, float]:
        result = evaluate(self.algorithm, self.val_set, batch_size=self.method_cfg.eval.batch_size)
        return {"acc": result.accuracy, "ci": result.ci, "loss": result.loss}

    def generators(self) -> dict[str, torch.Generator]:
        return {"episodes": self.generator}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": dict(self.facts)}
        if self.batches is not None:
            state["batches"] = self.batches.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if dict(state.get("model", {})) != self.facts:
            raise ConfigError(
                f"the checkpoint's model was built for {state.get('model')}, this source gives {self.facts}: the data "
                "changed since the run started (another package version?)"
            )
        if self.batches is not None:
            self.batches.load_state_dict(state["batches"])

"""GAN methods of the engine: ``gan`` (a (class-conditional) GAN on one domain), ``cyclegan`` (unpaired translation
between two domains, optionally with CyCADA's task consistency) and ``dagan`` (data-augmentation GAN for few-shot
classes).

Each method is the :mod:`metaxfer.gan` networks, loss functions and helpers wired to the engine's step functions:
the engine zeroes gradients, back-propagates, clips and steps the optimisers; the methods only compute losses. Steps
of an iteration: ``d`` (``repeat`` = critic steps), ``g``, and ``ema`` (moves the generator's moving average after
the generator's update). All state (networks, the EMA copy, image pools, data positions, noise generators) is
checkpointed, so a resumed run ends exactly like an uninterrupted one on the CPU.

With ``<section>.transfer.enabled``, the last evaluation also trains target classifiers on real, translated or
generated data and tests them on real target test images (:mod:`metaxfer.methods.gan_pipeline`); the accuracies
and their 95% intervals are ``eval/transfer/<set>/acc`` (``ci_low``, ``ci_high``) in ``metrics.jsonl`` and
``summary.json``, and the whole results (per-seed accuracies, interval kind, set sizes) are ``transfer.json`` in the
run folder (written by :meth:`~metaxfer.engine.Method.finish` when the run ends). ``docs/gans.md`` lists the recipes.

With several processes (``torchrun``, :mod:`metaxfer.engine.distributed`) each process takes its slice of the global
batch of real images (``data.batch_size``); noise and gradient-penalty weights come from a stream of its own
(``Distributed.rank_stream``), so the shared generators stay equal on every process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaxfer.data.domain import Domain
from metaxfer.data.transforms import apply_to_domain
from metaxfer.engine.config import ExperimentConfig, option
from metaxfer.engine.files import atomic_write_json
from metaxfer.engine.methods import Method, Step, StepOutput, register_method
from metaxfer.engine.optim import optimizer_for
from metaxfer.errors import MetaxferError
from metaxfer.gan import (
    EMA,
    CycleGAN,
    DAGANGenerator,
    ImagePool,
    PairDiscriminator,
    create_discriminator,
    create_generator,
    create_objective,
    cyclegan_discriminator_loss,
    cyclegan_generator_loss,
    discriminator_loss,
    gan_to_uint8,
    generate,
    generator_loss,
    sample_images,
    sample_pairs,
    uint8_to_gan,
)
from metaxfer.gan.dagan import augment as dagan_augment
from metaxfer.gan.objectives import GAN_OBJECTIVES
from metaxfer.gan.utils import frozen_parameters
from metaxfer.methods.classifier import EpochSampler, stratified_split
from metaxfer.methods.crossdomain import parse_transforms
from metaxfer.methods.gan_pipeline import (
    TrainingSet,
    TransferConfig,
    classic_variants,
    common_format,
    compare_training_sets,
    fit_classifier,
    judge_generated,
    load_domain,
    merge_styles,
    per_class_split,
)

__all__ = ["GANConfig", "CycleGANConfig", "DAGANConfig", "GANMethod", "CycleGANMethod", "DAGANMethod"]

log = logging.getLogger(__name__)

_NORMS = ("batch", "instance", "layer", "none")


def _objectives() -> tuple[str, ...]:
    return tuple(GAN_OBJECTIVES.names())


def _adam(params: Any, cfg: ExperimentConfig, *, lr: float, beta1: float) -> torch.optim.Optimizer:
    """Adam with the GAN's beta1 when ``train.optimizer`` is adam; otherwise the engine's optimiser."""
    rate = lr or cfg.train.lr
    if cfg.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=rate, betas=(beta1, 0.999), weight_decay=cfg.train.weight_decay)
    return optimizer_for(params, cfg.train, lr=rate)


def _split(domain: Domain, cfg: ExperimentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    train, test = stratified_split(domain.labels, test_fraction=cfg.data.test_fraction, seed=cfg.data.split_seed)
    if len(test) == 0:  # one image per class (emoji): evaluate on the training images
        test = train
    return train, test


def _transformed(domain: Domain, specs: list[dict[str, Any]], *, where: str) -> Domain:
    """``domain`` through the transforms a config lists (itself when none)."""
    chain = parse_transforms(specs, where=where)
    if len(chain) == 0:
        return domain
    return apply_to_domain(domain, chain, name="+".join([domain.name, *(type(t).__name__ for t in chain.transforms)]))


def _without_groups(domain: Domain, exclude: dict[str, list[str]]) -> Domain:
    """``domain`` without the classes whose group (e.g. alphabet) is listed in ``exclude``."""
    if not exclude:
        return domain
    drop: set[int] = set()
    for key, values in exclude.items():
        groups = domain.groups.get(key)
        if groups is None:
            raise MetaxferError(f"config key 'dagan.exclude_groups': domain {domain.name!r} has no group {key!r}; its "
                                f"groups: {', '.join(domain.groups) or 'none'}")
        unknown = sorted(set(values) - set(groups))
        if unknown:
            raise MetaxferError(f"config key 'dagan.exclude_groups.{key}': {', '.join(unknown)} not in {domain.name!r}")
        drop |= {c for c, g in enumerate(groups) if g in set(values)}
    return domain.select_classes([c for c in range(domain.num_classes) if c not in drop])


def _square_side(domain: Domain, who: str) -> int:
    _, h, w = domain.image_shape
    if h != w or h % 2 or h < 8:
        raise MetaxferError(
            f"{who}: domain {domain.name!r} has {h}×{w} images; the GAN networks need square images with an even side "
            ">= 8. Set data.options.size (or the recipe's size) to such a value"
        )
    return h


class _FinalEval:
    """Counts completed iterations so that evaluate() knows when it is the last one, and keeps the transfer results
    computed then (they go into checkpoints, and ``finish`` writes them as ``transfer.json``): the classifiers of
    each training set and, where a method judges its made images, the judge's measures."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.results: dict[str, dict[str, Any]] | None = None
        self.judged: dict[str, dict[str, float]] | None = None

    @property
    def final(self) -> bool:
        return self.done >= self.total

    def record(self, results: dict[str, dict[str, Any]],
               judged: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
        """Keep the transfer results of the final evaluation; return them as ``transfer/...`` (and ``judge/...``)
        metrics."""
        self.results, self.judged = results, judged
        out = _transfer_metrics(results)
        for name, measures in (judged or {}).items():
            out.update({f"judge/{name}/{k}": float(v) for k, v in measures.items()})
        return out

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (see :meth:`load`)."""
        return {"done": self.done, "transfer": self.results, "judged": self.judged}

    def load(self, state: dict[str, Any]) -> None:
        self.done = int(state["done"])
        self.results = state.get("transfer")
        self.judged = state.get("judged")

    def write(self, run_dir: Path, *, method: str) -> None:
        """``run_dir/transfer.json``: the final transfer results (nothing when transfer was off or the run stopped
        early, before its final evaluation)."""
        if self.results is None:
            return
        payload = {
            "method": method, "step": self.done,
            "model": "the weights of the final step (the EMA generator for gan and dagan)",
            "ci": "95%: Student t over classifier seeds when seeds >= 2, else Wilson interval over test images",
            "sets": self.results,
        }
        if self.judged is not None:
            payload["judged"] = self.judged
            payload["judge"] = ("a classifier trained on half of each class's real test images; acc: its accuracy on "
                                "the other half (real) and on each set of made images against the class they were "
                                "made for; spread: mean L1 (pixels in [0, 1]) between two images of one class")
        atomic_write_json(Path(run_dir) / "transfer.json", payload)


def _judge(real_images: torch.Tensor, real_labels: torch.Tensor, made: dict[str, tuple[torch.Tensor, torch.Tensor]],
           *, num_classes: int, cfg: TransferConfig, seed: int, device: torch.device) -> dict[str, dict[str, float]] | None:
    """:func:`judge_generated` of the made images against the real test images, or ``None`` (logged) when no class
    has two test images to check the judge with."""
    if len(real_labels) == 0 or int(torch.bincount(real_labels).max()) < 2:
        log.info("judge: no class has two real test images; the made images are not judged")
        return None
    return judge_generated(real_images, real_labels, made, num_classes=num_classes, cfg=cfg, seed=seed, device=device)


def _transfer_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, r in results.items():
        for key in ("acc", "ci_low", "ci_high"):
            out[f"transfer/{name}/{key}"] = float(r[key])
    return out


# ================================================================================================== gan
@dataclass
class GANConfig:
    """The ``gan:`` section of the ``gan`` method."""

    generator: str = option("dcgan", help="generator architecture (dcgan, resnet)")
    discriminator: str = option("dcgan", help="discriminator architecture (dcgan, resnet)")
    latent_dim: int = option(64, ge=1, help="size of the noise z")
    width: int = option(32, ge=1, help="generator width")
    d_width: int = option(32, ge=1, help="discriminator width")
    d_norm: str = option("batch", choices=_NORMS, help="normalisation of the dcgan discriminator")
    conditional: bool = option(True, help="class-conditional generator and discriminator")
    conditioning: str = option("projection", choices=("projection", "auxiliary"), help="how D sees the class")
    spectral_norm: bool = option(False, help="spectral normalisation of the discriminator")
    objective: str = option("nonsaturating", help="GAN objective: minimax, nonsaturating, least-squares, hinge, wgan-gp")
    gp_weight: float = option(-1.0, help="gradient-penalty weight; negative: the objective's default")
    r1_gamma: float = option(0.0, ge=0.0, help="R1 penalty weight")
    d_steps: int = option(1, ge=1, help="discriminator steps per generator step")
    g_lr: float = option(0.0, ge=0.0, help="generator learning rate; 0: train.lr")
    d_lr: float = option(0.0, ge=0.0, help="discriminator learning rate; 0: train.lr")
    beta1: float = option(0.5, ge=0.0, lt=1.0, help="Adam beta1 (0.5 in DCGAN)")
    ema_decay: float = option(0.99, ge=0.0, lt=1.0, help="decay of the generator's moving average")
    ema_warmup: int = option(20, ge=0, help="EMA warm-up updates")
    shots: int = option(0, ge=0, help="real training images per class (0: the whole training split)")
    eval_samples: int = option(500, ge=2, help="generated images for FID/KID")
    feature_epochs: int = option(3, ge=1, help="epochs of the FID/KID feature extractor on the training split")
    kid_subsets: int = option(20, ge=1, help="KID subsets")
    transfer: TransferConfig = option(default_factory=TransferConfig)


@register_method("gan")
class GANMethod(Method):
    """A GAN (class-conditional by default) on ``data.domain``'s training split.

    Metrics: ``d/loss``, ``d/real_score``, ``d/fake_score``, ``g/loss``; ``eval/fid`` (headline), ``eval/kid`` on
    the test split with features of a network trained on the training split. Samples: one row per class (first
    ``sample_columns`` classes... up to 10 rows) drawn by the EMA generator with fixed noise. Transfer (conditional
    only): classifiers trained on ``real``, ``real+generated`` and ``generated`` images, tested on the test split.
    """

    section = "gan"
    Config = GANConfig
    headline = ("eval/fid", "min")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        mc: GANConfig = self.method_cfg
        if mc.objective not in _objectives():
            raise MetaxferError(f"config key 'gan.objective' is {mc.objective!r}; choose one of: {', '.join(_objectives())}")
        if mc.transfer.enabled and not mc.conditional:
            raise MetaxferError("gan.transfer needs labelled generated images: set gan.conditional=true")
        domain = load_domain(cfg.data.domain, cfg.data.options, role="data.domain")
        side = _square_side(domain, "gan")
        train_idx, test_idx = _split(domain, cfg)
        if mc.shots:
            keep, _ = per_class_split(domain.labels[train_idx], shots=mc.shots, seed=cfg.data.split_seed)
            train_idx = train_idx[keep]
        self.domain, self.train_idx = domain, train_idx
        self.train_images, self.train_labels = domain.images[train_idx], domain.labels[train_idx]
        self.test_images, self.test_labels = domain.images[test_idx], domain.labels[test_idx]
        self.train_x = uint8_to_gan(self.train_images).to(device)
        self.train_y = self.train_labels.to(device)
        classes = domain.num_classes if mc.conditional else 0
        g = create_generator(mc.generator, image_size=side, channels=domain.image_shape[0], num_classes=classes,
                             latent_dim=mc.latent_dim, width=mc.width).to(device)
        d_opts: dict[str, Any] = {"width": mc.d_width}
        if mc.discriminator == "dcgan":
            d_opts["norm"] = mc.d_norm
        d = create_discriminator(mc.discriminator, image_size=side, channels=domain.image_shape[0], num_classes=classes,
                                 conditioning=mc.conditioning if classes else None, spectral_norm=mc.spectral_norm,
                                 **d_opts).to(device)
        self.ema = EMA(g, decay=mc.ema_decay, warmup=mc.ema_warmup)
        self.modules = {"g": g, "d": d, "g_ema": self.ema.module}
        self.optimizers = {"g": _adam(g.parameters(), cfg, lr=mc.g_lr, beta1=mc.beta1),
                           "d": _adam(d.parameters(), cfg, lr=mc.d_lr, beta1=mc.beta1)}
        self.objective = create_objective(mc.objective)
        self.gp_weight = None if mc.gp_weight < 0 else mc.gp_weight
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.noise = torch.Generator().manual_seed(cfg.seed + 1)
        self.sampler = EpochSampler(len(train_idx), batch_size=cfg.data.batch_size, generator=self.data_generator)
        self.progress = _FinalEval(cfg.train.steps)
        self._fake: torch.Tensor | None = None
        self._fake_condition: Any = None
        self._extractor: Any = None
        log.info("gan on %s: %d train / %d test images", domain.describe(), len(train_idx), len(test_idx))

    def steps(self) -> list[Step]:
        return [Step("d", self.d_step, optimizer="d", repeat=self.method_cfg.d_steps),
                Step("g", self.g_step, optimizer="g"), Step("ema", self.ema_step)]

    def d_step(self, iteration: int) -> StepOutput:
        """The discriminator's loss on a real batch and fakes (kept, with their graph, for the generator step)."""
        mc: GANConfig = self.method_cfg
        shard = self.dist.shard(self.sampler.batch_size, what="data.batch_size")
        idx = shard.take(self.sampler.next()).to(self.device)
        real = self.train_x[idx]
        cond = self.train_y[idx] if mc.conditional else None
        g, d = self.modules["g"], self.modules["d"]
        with self.dist.rank_stream(self.noise) as noise:
            fake, fake_cond = generate(g, len(idx), cond, rng=noise, device=self.device)
            self._fake, self._fake_condition = fake, fake_cond
            loss, metrics = discriminator_loss(g, d, real, cond, objective=self.objective, fake=fake.detach(),
                                               fake_condition=fake_cond, gp_weight=self.gp_weight,
                                               r1_gamma=mc.r1_gamma, rng=noise)
        return StepOutput(loss, metrics, share=shard.share)

    def g_step(self, iteration: int) -> StepOutput:
        """The generator's loss on the fakes of the last discriminator step, scored by the updated discriminator."""
        g, d = self.modules["g"], self.modules["d"]
        with frozen_parameters(d):  # the graph records D's weights as constants: no gradient is computed for them
            loss, metrics = generator_loss(g, d, self._fake_condition, objective=self.objective, fake=self._fake,
                                           rng=self.noise)
        share = len(self._fake) / self.sampler.batch_size
        self._fake = self._fake_condition = None
        return StepOutput(loss, metrics, share=share)

    def ema_step(self, iteration: int) -> StepOutput:
        """Move the generator's moving average (after the generator's optimiser step)."""
        self.ema.update(self.modules["g"])
        self.progress.done = iteration + 1
        return StepOutput(None, {})

    def _generate(self, n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        rng = torch.Generator().manual_seed(seed)
        classes = self.domain.num_classes if self.method_cfg.conditional else 0
        labels = torch.arange(classes).repeat(n // classes + 1)[:n] if classes else None
        return sample_images(self.ema.module, n, labels=labels, rng=rng)

    def evaluate(self) -> dict[str, float]:
        from metaxfer.metrics import generation_scores, train_feature_extractor

        mc: GANConfig = self.method_cfg
        if self._extractor is None:
            train_domain = self.domain.subset(self.train_idx, name=f"{self.domain.name}-train")
            with torch.random.fork_rng(devices=[]):
                self._extractor = train_feature_extractor(train_domain, epochs=mc.feature_epochs, held_out=0.0,
                                                          seed=self.cfg.seed, device=self.device)
        fake, _ = self._generate(mc.eval_samples, seed=self.cfg.seed + 7)
        scores = generation_scores(self.test_images, fake, extractor=self._extractor, subsets=mc.kid_subsets,
                                   seed=self.cfg.seed)
        out = {"fid": scores.fid, "kid": scores.kid}
        if mc.transfer.enabled and self.progress.final:
            out.update(self.progress.record(*self.transfer()))
        return out

    def transfer(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]] | None]:
        """Classifiers on real, real + generated and generated training images, tested on the real test split; the
        judge's measures of the generated images."""
        t: TransferConfig = self.method_cfg.transfer
        n = t.generated_per_class * self.domain.num_classes
        fake, labels = self._generate(n, seed=self.cfg.seed + 11)
        assert labels is not None
        sets = [TrainingSet("real", self.train_images, self.train_labels),
                TrainingSet("real+generated", torch.cat([self.train_images, fake]), torch.cat([self.train_labels, labels]),
                            real=len(self.train_images)),
                TrainingSet("generated", fake, labels)]
        results = compare_training_sets(sets, self.test_images, self.test_labels, num_classes=self.domain.num_classes,
                                        cfg=t, seed=self.cfg.seed, device=self.device)
        return results, _judge(self.test_images, self.test_labels, {"generated": (fake, labels)},
                               num_classes=self.domain.num_classes, cfg=t, seed=self.cfg.seed, device=self.device)

    def samples(self) -> torch.Tensor:
        cols = self.sample_columns
        if not self.method_cfg.conditional:
            return sample_images(self.ema.module, 4 * cols, rng=torch.Generator().manual_seed(self.cfg.seed + 3))[0]
        classes = min(self.domain.num_classes, 10)
        labels = torch.arange(classes).repeat_interleave(cols)
        return sample_images(self.ema.module, len(labels), labels=labels,
                             rng=torch.Generator().manual_seed(self.cfg.seed + 3))[0]

    def generators(self) -> dict[str, torch.Generator]:
        return {"data": self.data_generator, "noise": self.noise}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "ema_updates": self.ema.num_updates, **self.progress.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.ema.num_updates = int(state["ema_updates"])
        self.progress.load(state)

    def finish(self, run_dir: Path) -> None:
        """Write ``transfer.json`` (when ``gan.transfer.enabled``)."""
        self.progress.write(run_dir, method="gan")


# ================================================================================================== cyclegan
@dataclass
class CycleGANConfig:
    """The ``cyclegan:`` section: the target domain, the common format, the networks and the loss weights."""

    target: str = option("", help="the target domain B (data.domain is the source A)")
    target_options: dict[str, Any] = option(default_factory=dict, help="build options of the target domain")
    size: int = option(0, ge=0, help="common image side; 0: the target's")
    channels: int = option(0, choices=(0, 1, 3), help="common channels; 0: the target's")
    source_style: str = option("none", choices=("none", "optdigits"), help="conversion of the source before resizing")
    target_style: str = option("none", choices=("none", "optdigits"), help="conversion of the target before resizing")
    width: int = option(32, ge=1, help="translator width")
    blocks: int = option(3, ge=1, help="residual blocks of each translator")
    downsamplings: int = option(2, ge=0, help="stride-2 steps of each translator")
    d_width: int = option(32, ge=1, help="PatchGAN width")
    d_layers: int = option(2, ge=1, help="stride-2 layers of each PatchGAN")
    norm: str = option("instance", choices=_NORMS, help="normalisation of all four networks")
    objective: str = option("least-squares", help="adversarial objective")
    cycle_weight: float = option(10.0, ge=0.0, help="cycle-consistency weight")
    identity_weight: float = option(5.0, ge=0.0, help="identity weight")
    task_weight: float = option(0.0, ge=0.0, help="CyCADA task consistency with a frozen source classifier; 0: off")
    pool_size: int = option(50, ge=0, help="image-pool size of each discriminator")
    g_lr: float = option(0.0, ge=0.0, help="translators' learning rate; 0: train.lr")
    d_lr: float = option(0.0, ge=0.0, help="discriminators' learning rate; 0: train.lr")
    beta1: float = option(0.5, ge=0.0, lt=1.0, help="Adam beta1")
    transfer: TransferConfig = option(default_factory=TransferConfig)


@register_method("cyclegan")
class CycleGANMethod(Method):
    """Unpaired translation between ``data.domain`` (A) and ``cyclegan.target`` (B), both brought to one format.

    Metrics: ``g/adv``, ``g/cycle``, ``g/identity`` (``g/task``), ``d/loss``; ``eval/cycle_l1`` (headline: mean
    |x - back(forward(x))| over both directions on test images, in [-1, 1] units) and, when every class has one image
    in each domain (emoji styles), ``eval/paired_l1`` between A→B and the same class drawn in B, next to
    ``eval/unchanged_l1`` (A itself against B). Samples: rows real A, A→B, A→B→A, real B, B→A, B→A→B. Transfer:
    classifiers on ``source`` (labelled A), ``translated`` (A→B with A's labels) and ``oracle`` (labelled B), tested
    on B's test split.
    """

    section = "cyclegan"
    Config = CycleGANConfig
    headline = ("eval/cycle_l1", "min")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        mc: CycleGANConfig = self.method_cfg
        if mc.objective not in _objectives():
            raise MetaxferError(f"config key 'cyclegan.objective' is {mc.objective!r}; choose one of: {', '.join(_objectives())}")
        source = load_domain(cfg.data.domain, cfg.data.options, role="source (data.domain)")
        target = load_domain(mc.target, mc.target_options, role="target (cyclegan.target)")
        size = mc.size or target.image_shape[1]
        channels = mc.channels or target.image_shape[0]
        self.a, self.b = common_format(source, target, size=size, channels=channels, source_style=mc.source_style,
                                       target_style=mc.target_style)
        _square_side(self.b, "cyclegan")
        self.a_train, self.a_test = _split(self.a, cfg)
        self.b_train, self.b_test = _split(self.b, cfg)
        self.xa = uint8_to_gan(self.a.images[self.a_train]).to(device)
        self.xb = uint8_to_gan(self.b.images[self.b_train]).to(device)
        self.ya = self.a.labels[self.a_train].to(device)
        model = CycleGAN(channels, channels, width=mc.width, blocks=mc.blocks, downsamplings=mc.downsamplings,
                         d_width=mc.d_width, d_layers=mc.d_layers, norm=mc.norm).to(device)  # type: ignore[arg-type]
        self.modules = {"cyclegan": model}
        self.optimizers = {"g": _adam(model.generator_parameters(), cfg, lr=mc.g_lr, beta1=mc.beta1),
                           "d": _adam(model.discriminator_parameters(), cfg, lr=mc.d_lr, beta1=mc.beta1)}
        self.objective = create_objective(mc.objective)
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.sampler_a = EpochSampler(len(self.a_train), batch_size=cfg.data.batch_size, generator=self.data_generator)
        self.sampler_b = EpochSampler(len(self.b_train), batch_size=cfg.data.batch_size, generator=self.data_generator)
        self.pools = (ImagePool(mc.pool_size, seed=cfg.seed), ImagePool(mc.pool_size, seed=cfg.seed + 1))
        self.task_classifier: nn.Module | None = None
        if mc.task_weight > 0:
            t = mc.transfer
            self.task_classifier = fit_classifier(
                self.a.images[self.a_train], self.a.labels[self.a_train], num_classes=self.a.num_classes,
                steps=t.steps, batch_size=t.batch_size, lr=t.lr, width=t.width, blocks=t.blocks, seed=cfg.seed,
                device=device).requires_grad_(False).eval()
        self.progress = _FinalEval(cfg.train.steps)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._fakes: Any = None
        self._share = 1.0
        log.info("cyclegan %s (%d train) <-> %s (%d train)", self.a.describe(), len(self.a_train), self.b.describe(),
                 len(self.b_train))

    @property
    def model(self) -> CycleGAN:
        return self.modules["cyclegan"]  # type: ignore[return-value]

    def steps(self) -> list[Step]:
        return [Step("g", self.g_step, optimizer="g"), Step("d", self.d_step, optimizer="d")]

    def g_step(self, iteration: int) -> StepOutput:
        """Both translators' loss (discriminators frozen); the fakes are kept for the discriminator step."""
        mc: CycleGANConfig = self.method_cfg
        shard_a = self.dist.shard(self.sampler_a.batch_size, what="data.batch_size (source A)")
        shard_b = self.dist.shard(self.sampler_b.batch_size, what="data.batch_size (target B)")
        ia = shard_a.take(self.sampler_a.next()).to(self.device)
        ib = shard_b.take(self.sampler_b.next()).to(self.device)
        self._share = 0.5 * (shard_a.share + shard_b.share)
        real_a, real_b = self.xa[ia], self.xb[ib]
        self._batch = (real_a, real_b)
        with frozen_parameters(self.model.d_a, self.model.d_b):
            loss, metrics, self._fakes = cyclegan_generator_loss(
                self.model, real_a, real_b, objective=self.objective, cycle_weight=mc.cycle_weight,
                identity_weight=mc.identity_weight, task_classifier=self.task_classifier, task_weight=mc.task_weight,
                labels_a=self.ya[ia] if self.task_classifier is not None else None)
        return StepOutput(loss, metrics, share=self._share)

    def d_step(self, iteration: int) -> StepOutput:
        """Both discriminators' loss on real images and pooled fakes."""
        assert self._batch is not None
        loss, metrics = cyclegan_discriminator_loss(self.model, *self._batch, self._fakes, objective=self.objective,
                                                    pools=self.pools)
        self._batch = self._fakes = None
        self.progress.done = iteration + 1
        return StepOutput(loss, metrics, share=self._share)

    @torch.no_grad()
    def _translate(self, images: torch.Tensor, direction: str, *, batch_size: int = 256) -> torch.Tensor:
        out = []
        for i in range(0, len(images), batch_size):
            x = uint8_to_gan(images[i : i + batch_size]).to(self.device)
            out.append(self.model.translate(x, direction=direction))  # type: ignore[arg-type]
        return torch.cat(out)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        ea, eb = self.a.images[self.a_test], self.b.images[self.b_test]
        xa, xb = uint8_to_gan(ea).to(self.device), uint8_to_gan(eb).to(self.device)
        fb, fa = self._translate(ea, "ab"), self._translate(eb, "ba")
        cyc = 0.5 * ((self.model.g_ba(fb) - xa).abs().mean() + (self.model.g_ab(fa) - xb).abs().mean())
        out = {"cycle_l1": float(cyc)}
        if len(self.a) == self.a.num_classes and len(self.b) == self.b.num_classes:  # one image per class: pairs
            order_b = torch.argsort(self.b.labels)[self.a.labels]  # the B image of each A image's class
            real_a = uint8_to_gan(self.a.images).to(self.device)
            real_b = uint8_to_gan(self.b.images[order_b]).to(self.device)
            out["paired_l1"] = float((self._translate(self.a.images, "ab") - real_b).abs().mean())
            out["unchanged_l1"] = float((real_a - real_b).abs().mean())
        if self.method_cfg.transfer.enabled and self.progress.final:
            out.update(self.progress.record(*self.transfer()))
        return out

    def transfer(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]] | None]:
        """Classifiers on the labelled source, the translated source and the labelled target (oracle); the judge's
        measures of the source images before and after translation."""
        t: TransferConfig = self.method_cfg.transfer
        src_x, src_y = self.a.images[self.a_train], self.a.labels[self.a_train]
        translated = gan_to_uint8(self._translate(src_x, "ab")).cpu()
        sets = [TrainingSet("source", src_x, src_y), TrainingSet("translated", translated, src_y),
                TrainingSet("oracle", self.b.images[self.b_train], self.b.labels[self.b_train])]
        test_x, test_y = self.b.images[self.b_test], self.b.labels[self.b_test]
        results = compare_training_sets(sets, test_x, test_y, num_classes=self.b.num_classes, cfg=t, seed=self.cfg.seed,
                                         device=self.device)
        return results, _judge(test_x, test_y, {"source": (src_x, src_y), "translated": (translated, src_y)},
                               num_classes=self.b.num_classes, cfg=t, seed=self.cfg.seed, device=self.device)

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        cols = self.sample_columns
        pick_a = self.a_test[torch.linspace(0, len(self.a_test) - 1, cols).long()]
        pick_b = self.b_test[torch.linspace(0, len(self.b_test) - 1, cols).long()]
        was = self.model.training
        self.model.eval()
        try:
            rows = []
            for images, there, back in ((self.a.images[pick_a], "ab", "ba"), (self.b.images[pick_b], "ba", "ab")):
                moved = self._translate(images, there)
                rows += [images, gan_to_uint8(moved).cpu(),
                         gan_to_uint8(self.model.translate(moved, direction=back)).cpu()]  # type: ignore[arg-type]
        finally:
            self.model.train(was)
        return torch.cat(rows)

    def generators(self) -> dict[str, torch.Generator]:
        return {"data": self.data_generator}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler_a": self.sampler_a.state_dict(), "sampler_b": self.sampler_b.state_dict(),
                "pool_a": self.pools[0].state_dict(), "pool_b": self.pools[1].state_dict(), **self.progress.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler_a.load_state_dict(state["sampler_a"])
        self.sampler_b.load_state_dict(state["sampler_b"])
        self.pools[0].load_state_dict(state["pool_a"], device=self.device)
        self.pools[1].load_state_dict(state["pool_b"], device=self.device)
        self.progress.load(state)

    def finish(self, run_dir: Path) -> None:
        """Write ``transfer.json`` (when ``cyclegan.transfer.enabled``)."""
        self.progress.write(run_dir, method="cyclegan")


# ================================================================================================== dagan
@dataclass
class DAGANConfig:
    """The ``dagan:`` section: the source classes the GAN learns from, the few-shot target and the networks."""

    source_styles: list[str] = option(default_factory=list, help="further domains with data.domain's classes, merged")
    target: str = option("", help="target domain of new classes; empty: hold out classes of data.domain")
    target_options: dict[str, Any] = option(default_factory=dict, help="build options of the target domain")
    target_styles: list[str] = option(default_factory=list, help="further domains with the target's classes, merged")
    source_transforms: list[dict[str, Any]] = option(
        default_factory=list, help="transforms applied to the source, e.g. [{name: OptdigitsStyle}]")
    target_transforms: list[dict[str, Any]] = option(
        default_factory=list, help="transforms applied to dagan.target (default: none)")
    exclude_groups: dict[str, list[str]] = option(
        default_factory=dict, help="leave out source classes of these groups, e.g. {alphabet: [Cyrl, Grek]}: the "
                                   "scripts a comparison tests on must not train the augmenter")
    target_classes: int = option(20, ge=2, help="classes held out of data.domain when target is empty")
    min_examples: int = option(2, ge=2, help="drop classes with fewer examples (DAGAN pairs need two)")
    shots: int = option(1, ge=1, help="real target training images per class")
    latent_dim: int = option(32, ge=1, help="size of the noise z")
    width: int = option(32, ge=1, help="U-Net width")
    noise_channels: int = option(8, ge=1, help="noise channels at each decoder level")
    d_width: int = option(32, ge=1, help="pair discriminator width")
    objective: str = option("wgan-gp", help="GAN objective")
    gp_weight: float = option(-1.0, help="gradient-penalty weight; negative: the objective's default")
    d_steps: int = option(1, ge=1, help="critic steps per generator step")
    beta1: float = option(0.5, ge=0.0, lt=1.0, help="Adam beta1")
    ema_decay: float = option(0.99, ge=0.0, lt=1.0, help="decay of the generator's moving average")
    ema_warmup: int = option(20, ge=0, help="EMA warm-up updates")
    per_image: int = option(0, ge=0, help="generated images per real shot for the transfer; 0: from transfer")
    eval_images: int = option(200, ge=2, help="source test images whose variants the FID compares")
    feature_epochs: int = option(2, ge=1, help="epochs of the FID feature extractor on the source training split")
    transfer: TransferConfig = option(default_factory=TransferConfig)


@register_method("dagan")
class DAGANMethod(Method):
    """DAGAN trained on the source classes; at the end, enlarges K real shots of new target classes.

    Metrics: ``d/loss``, ``g/loss``; ``eval/fid`` (headline) between variants of source test images and the
    source test images. Samples: one row per target shot: the real image, then generated variants. Transfer:
    classifiers on ``shots`` (K real images per class), ``shots+generated`` and ``shots+augmented`` (classic
    augmentations instead of variants), tested on the rest of the target; ``judge/...``: how faithful and how varied
    the variants and the augmentations are (:func:`~metaxfer.methods.gan_pipeline.judge_generated`).
    """

    section = "dagan"
    Config = DAGANConfig
    headline = ("eval/fid", "min")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        mc: DAGANConfig = self.method_cfg
        if mc.objective not in _objectives():
            raise MetaxferError(f"config key 'dagan.objective' is {mc.objective!r}; choose one of: {', '.join(_objectives())}")
        base = merge_styles(load_domain(cfg.data.domain, cfg.data.options, role="source (data.domain)"),
                            list(mc.source_styles), cfg.data.options)
        base = _transformed(base, mc.source_transforms, where="dagan.source_transforms")
        base = _without_groups(base, mc.exclude_groups)
        if mc.target:
            source = base
            target = merge_styles(load_domain(mc.target, mc.target_options, role="target (dagan.target)"),
                                  list(mc.target_styles), mc.target_options)
            target = _transformed(target, mc.target_transforms, where="dagan.target_transforms")
        else:
            base = base.select_classes(torch.nonzero(base.class_counts() >= mc.min_examples).flatten().tolist())
            if base.num_classes <= mc.target_classes:
                raise MetaxferError(f"dagan.target_classes={mc.target_classes} leaves no source class of the "
                                    f"{base.num_classes} in {base.name!r}; lower it")
            perm = torch.randperm(base.num_classes, generator=torch.Generator().manual_seed(cfg.data.split_seed))
            target = base.select_classes(perm[: mc.target_classes].tolist(), name=f"{base.name}-target")
            source = base.select_classes(perm[mc.target_classes :].tolist(), name=f"{base.name}-source")
        keep = torch.nonzero(source.class_counts() >= mc.min_examples).flatten().tolist()
        source = source.select_classes(keep)
        if target.image_shape != source.image_shape:
            raise MetaxferError(f"source {source.image_shape} and target {target.image_shape} image shapes differ; "
                                "build both at the same size")
        side = _square_side(source, "dagan")
        self.source, self.target = source, target
        s_train, s_test = stratified_split(source.labels, test_fraction=cfg.data.test_fraction, seed=cfg.data.split_seed)
        if int(torch.bincount(source.labels[s_train], minlength=source.num_classes).min()) < 2:
            # too few images per class to hold some out (e.g. two emoji styles): train on all, FID on training images
            log.info("dagan: classes of %s are too small for a held-out split; FID uses training images", source.name)
            s_train = s_test = torch.arange(len(source))
        self.s_train_labels = source.labels[s_train]
        self.s_x = uint8_to_gan(source.images[s_train]).to(device)
        self.s_test_images = source.images[s_test][: mc.eval_images]
        self.s_train = s_train
        t_train, t_test = per_class_split(target.labels, shots=mc.shots, seed=cfg.data.split_seed)
        self.t_train, self.t_test = t_train, t_test
        channels = source.image_shape[0]
        g = DAGANGenerator(mc.latent_dim, image_size=side, channels=channels, width=mc.width,
                           noise_channels=mc.noise_channels).to(device)
        norm = "layer" if GAN_OBJECTIVES.get(mc.objective).gradient_penalty > 0 or mc.gp_weight > 0 else "batch"
        d = PairDiscriminator(image_size=side, channels=channels, width=mc.d_width, norm=norm).to(device)  # type: ignore[arg-type]
        self.ema = EMA(g, decay=mc.ema_decay, warmup=mc.ema_warmup)
        self.modules = {"g": g, "d": d, "g_ema": self.ema.module}
        self.optimizers = {"g": _adam(g.parameters(), cfg, lr=0.0, beta1=mc.beta1),
                           "d": _adam(d.parameters(), cfg, lr=0.0, beta1=mc.beta1)}
        self.objective = create_objective(mc.objective)
        self.gp_weight = None if mc.gp_weight < 0 else mc.gp_weight
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.noise = torch.Generator().manual_seed(cfg.seed + 1)
        self.progress = _FinalEval(cfg.train.steps)
        self._fake: torch.Tensor | None = None
        self._cond: torch.Tensor | None = None
        self._share = 1.0
        self._extractor: Any = None
        log.info("dagan: source %s (%d train); target %s, %d shots/class, %d test", source.describe(), len(s_train),
                 target.describe(), mc.shots, len(t_test))

    def steps(self) -> list[Step]:
        return [Step("d", self.d_step, optimizer="d", repeat=self.method_cfg.d_steps),
                Step("g", self.g_step, optimizer="g"), Step("ema", self.ema_step)]

    def d_step(self, iteration: int) -> StepOutput:
        """Critic loss on real pairs (anchor, partner of the same class) against (anchor, generated variant)."""
        anchor, partner = sample_pairs(self.s_train_labels, self.cfg.data.batch_size, generator=self.data_generator)
        shard = self.dist.shard(len(anchor), what="data.batch_size")
        anchor, partner = shard.take(anchor), shard.take(partner)
        cond, real = self.s_x[anchor.to(self.device)], self.s_x[partner.to(self.device)]
        g, d = self.modules["g"], self.modules["d"]
        with self.dist.rank_stream(self.noise) as noise:
            fake, _ = generate(g, len(cond), cond, rng=noise, device=self.device)
            self._fake, self._cond = fake, cond
            loss, metrics = discriminator_loss(g, d, real, cond, objective=self.objective, fake=fake.detach(),
                                               gp_weight=self.gp_weight, rng=noise)
        self._share = shard.share
        return StepOutput(loss, metrics, share=shard.share)

    def g_step(self, iteration: int) -> StepOutput:
        """Generator loss on the last critic step's variants, scored by the updated critic."""
        g, d = self.modules["g"], self.modules["d"]
        with frozen_parameters(d):
            loss, metrics = generator_loss(g, d, self._cond, objective=self.objective, fake=self._fake, rng=self.noise)
        self._fake = self._cond = None
        return StepOutput(loss, metrics, share=self._share)

    def ema_step(self, iteration: int) -> StepOutput:
        """Move the generator's moving average."""
        self.ema.update(self.modules["g"])
        self.progress.done = iteration + 1
        return StepOutput(None, {})

    def _variants(self, images: torch.Tensor, labels: torch.Tensor, per_image: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return dagan_augment(self.ema.module, images, labels, per_image=per_image, include_originals=False,  # type: ignore[arg-type]
                             rng=torch.Generator().manual_seed(seed))

    def evaluate(self) -> dict[str, float]:
        from metaxfer.metrics import generation_scores, train_feature_extractor

        mc: DAGANConfig = self.method_cfg
        if self._extractor is None:
            dom = self.source.subset(self.s_train, name=f"{self.source.name}-train")
            with torch.random.fork_rng(devices=[]):
                self._extractor = train_feature_extractor(dom, epochs=mc.feature_epochs, held_out=0.0,
                                                          seed=self.cfg.seed, device=self.device)
        real = self.s_test_images
        fake, _ = self._variants(real, torch.zeros(len(real), dtype=torch.int64), 1, seed=self.cfg.seed + 7)
        scores = generation_scores(real, fake, extractor=self._extractor, subsets=20, seed=self.cfg.seed)
        out = {"fid": scores.fid, "kid": scores.kid}
        if mc.transfer.enabled and self.progress.final:
            out.update(self.progress.record(*self.transfer()))
        return out

    def transfer(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]] | None]:
        """Classifiers on the K real shots per class alone, with generated variants and with classic augmentations
        (the baseline the variants must beat); the judge's measures of both kinds of variants."""
        mc: DAGANConfig = self.method_cfg
        per_image = mc.per_image or max(1, mc.transfer.generated_per_class // mc.shots)
        x, y = self.target.images[self.t_train], self.target.labels[self.t_train]
        fake, fake_y = self._variants(x, y, per_image, seed=self.cfg.seed + 11)
        plain, plain_y = classic_variants(x, y, per_image=per_image, seed=self.cfg.seed + 13)
        sets = [TrainingSet("shots", x, y),
                TrainingSet("shots+generated", torch.cat([x, fake]), torch.cat([y, fake_y]), real=len(x)),
                TrainingSet("shots+augmented", torch.cat([x, plain]), torch.cat([y, plain_y]), real=len(x))]
        test_x, test_y = self.target.images[self.t_test], self.target.labels[self.t_test]
        results = compare_training_sets(sets, test_x, test_y, num_classes=self.target.num_classes, cfg=mc.transfer,
                                        seed=self.cfg.seed, device=self.device)
        return results, _judge(test_x, test_y, {"generated": (fake, fake_y), "augmented": (plain, plain_y)},
                               num_classes=self.target.num_classes, cfg=mc.transfer, seed=self.cfg.seed,
                               device=self.device)

    def samples(self) -> torch.Tensor:
        cols = self.sample_columns
        shots = self.t_train[: min(8, len(self.t_train))]
        x, y = self.target.images[shots], self.target.labels[shots]
        fake, _ = self._variants(x, y, cols - 1, seed=self.cfg.seed + 3)
        rows = [torch.cat([x[i : i + 1], fake[i * (cols - 1) : (i + 1) * (cols - 1)]]) for i in range(len(x))]
        return torch.cat(rows)

    def generators(self) -> dict[str, torch.Generator]:
        return {"data": self.data_generator, "noise": self.noise}

    def state_dict(self) -> dict[str, Any]:
        return {"ema_updates": self.ema.num_updates, **self.progress.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.num_updates = int(state["ema_updates"])
        self.progress.load(state)

    def finish(self, run_dir: Path) -> None:
        """Write ``transfer.json`` (when ``dagan.transfer.enabled``)."""
        self.progress.write(run_dir, method="dagan")

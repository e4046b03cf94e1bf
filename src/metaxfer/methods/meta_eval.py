"""Target evaluation of ``meta`` runs: what ``metaxfer evaluate`` does.

A trained run is rebuilt from its ``config.yaml`` and its best checkpoint (``checkpoints/best.json``, picked on the
source validation episodes), then scored on fixed target episodes: accuracy as mean ± 95% confidence interval over
``meta.eval.episodes`` episodes (600 by default), with the episodes' seed and fingerprint. Each setting's result is
written as JSON (``evaluation-<setting>.json``) into the run folder.

Other targets: Lake et al.'s twenty 20-way one-shot runs (``dataset="omniglot-runs"``, :func:`evaluate_omniglot_runs`)
or any registered domain in place of the recipe's target.

Example:
    >>> model = load_model("runs/meta-glyphs-20260101-120000")
    >>> target = resolve_target(model)
    >>> record = evaluate_setting(model, target, parse_setting("5w1s", queries=15), episodes=600, seed=0)
    >>> print(record["summary"])      # "48.10 ± 0.81 % over 600 episodes (seed 0, episodes 1c9e...)"
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import metaxfer
from metaxfer.data.episodes import Episode
from metaxfer.data.loaders.omniglot import load_omniglot_runs
from metaxfer.data.transforms import match_format
from metaxfer.engine import checkpoint as ckpt_mod
from metaxfer.engine.config import ExperimentConfig, config_to_dict, load_config
from metaxfer.engine.device import resolve_device, seed_everything
from metaxfer.engine.files import atomic_write_json
from metaxfer.engine.runs import Run, now_iso
from metaxfer.errors import EpisodeError, MetaxferError
from metaxfer.meta import EvaluationResult, MetaAlgorithm, evaluate
from metaxfer.methods.crossdomain import (
    GroupedEpisodes,
    Setting,
    TargetConfig,
    TargetData,
    build_source,
    build_target,
    parse_setting,
    target_episodes,
)
from metaxfer.methods.meta import MetaConfig, build_algorithm, model_facts

__all__ = [
    "LoadedModel",
    "load_model",
    "model_from_config",
    "default_settings",
    "way_mismatch",
    "resolve_target",
    "evaluate_setting",
    "evaluate_omniglot_runs",
    "write_record",
    "record_path",
]

log = logging.getLogger(__name__)

OMNIGLOT_RUNS = "omniglot-runs"


@dataclass
class LoadedModel:
    """An algorithm ready for evaluation, with where it came from.

    Attributes:
        cfg: The run's (or recipe's) config.
        algorithm: The algorithm with its trained weights (untrained for ``scratch`` from a recipe).
        facts: Input channels, image side and source classes it was built for.
        run_dir: The run folder, or ``None`` for a model built from a recipe.
        checkpoint: The checkpoint loaded, or ``None``.
        step: Its training step, or ``None``.
        selection: How the checkpoint was chosen (``best.json``: metric, value, step), or ``None``.
    """

    cfg: ExperimentConfig
    algorithm: MetaAlgorithm
    facts: dict[str, int]
    run_dir: Path | None = None
    checkpoint: Path | None = None
    step: int | None = None
    selection: dict[str, Any] | None = None

    @property
    def meta(self) -> MetaConfig:
        return self.cfg.meta  # type: ignore[attr-defined, no-any-return]

    def for_ways(self, ways: int) -> LoadedModel:
        """This model, or for an algorithm with nothing trained (scratch) the same one rebuilt for ``ways``-way
        episodes (its fresh per-episode network then gets a head of that size)."""
        if self.algorithm.needs_meta_training or _head_ways(self.algorithm) in (0, ways):
            return self
        mc = dataclasses.replace(self.meta, ways=ways)
        algorithm = build_algorithm(mc, seed=self.cfg.seed, **self.facts).to(self.algorithm.reference.device)
        cfg = dataclasses.replace(self.cfg, meta=mc)  # type: ignore[call-arg]
        return dataclasses.replace(self, cfg=cfg, algorithm=algorithm)

    def describe(self) -> dict[str, Any]:
        """Plain data for result files."""
        mc = self.meta
        return {
            "run": str(self.run_dir) if self.run_dir is not None else None,
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
            "step": self.step,
            "selected_by": self.selection,
            "algorithm": mc.algorithm,
            "backbone": mc.backbone,
            "backbone_kwargs": dict(mc.backbone_kwargs),
            "source": {"domain": self.cfg.data.domain, "options": dict(self.cfg.data.options)},
            "trained_ways": mc.ways if self.algorithm.needs_meta_training else None,
            "trained_shots": mc.shots if self.algorithm.needs_meta_training else None,
            "seed": self.cfg.seed,
            "input": self.facts,
        }


def _check_meta(cfg: ExperimentConfig, where: str) -> None:
    if cfg.method != "meta":
        raise MetaxferError(
            f"{where} is a {cfg.method!r} run; metaxfer evaluate scores meta-learning runs (method: meta)"
        )


def load_model(
    run_dir: str | Path, *, checkpoint: str = "best", device: str | torch.device = "cpu"
) -> LoadedModel:
    """Rebuild a ``meta`` run's algorithm and load a checkpoint's weights.

    Args:
        run_dir: The run folder.
        checkpoint: ``"best"`` (the one with the best validation ``eval/acc``; the newest if none is marked),
            ``"last"``, or a checkpoint folder.
        device: Where to evaluate.

    Raises:
        RunError: Not a run folder.
        CheckpointError: No checkpoint, or one of another config.
        MetaxferError: Not a ``meta`` run.
    """
    run = Run.open(run_dir)
    cfg = load_config(run.config_path, [f"device={device}"] if isinstance(device, str) else [])
    _check_meta(cfg, str(run_dir))
    path, best = ckpt_mod.resolve_checkpoint(run.checkpoints, checkpoint)
    ckpt = ckpt_mod.load_checkpoint(path, config=config_to_dict(cfg))
    facts = {k: int(v) for k, v in ckpt.state["method"]["model"].items()}
    seed_everything(cfg.seed)
    algorithm = build_algorithm(cfg.meta, seed=cfg.seed, **facts)  # type: ignore[attr-defined]
    algorithm.load_state_dict(ckpt.state["modules"]["algorithm"])
    algorithm.to(resolve_device(str(device)) if isinstance(device, str) else device)
    return LoadedModel(cfg=cfg, algorithm=algorithm, facts=facts, run_dir=Path(run_dir), checkpoint=path,
                       step=ckpt.step, selection=best)


def model_from_config(cfg: ExperimentConfig, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Build an algorithm that needs no training (``scratch``) straight from a recipe.

    Raises:
        MetaxferError: The algorithm needs (meta-)training; train it and evaluate the run instead.
    """
    _check_meta(cfg, "the config")
    mc: MetaConfig = cfg.meta  # type: ignore[attr-defined]
    source = build_source(cfg.data.domain, cfg.data.options, mc.source, mc.split, seed=cfg.data.split_seed,
                          augment=False)
    facts = model_facts(source)
    seed_everything(cfg.seed)
    algorithm = build_algorithm(mc, seed=cfg.seed, **facts)
    if algorithm.needs_meta_training:
        raise MetaxferError(
            f"algorithm {mc.algorithm!r} must be trained first: `metaxfer train RECIPE meta.algorithm={mc.algorithm}`, "
            "then `metaxfer evaluate --model RUN`; only scratch is evaluated straight from a recipe"
        )
    algorithm.to(resolve_device(str(device)) if isinstance(device, str) else device)
    return LoadedModel(cfg=cfg, algorithm=algorithm, facts=facts)


def default_settings(model: LoadedModel) -> list[Setting]:
    """The recipe's ``meta.eval.settings``."""
    ev = model.meta.eval
    return [parse_setting(s, queries=ev.queries) for s in ev.settings]


def _head_ways(algo: MetaAlgorithm) -> int:
    """Outputs of the head of an algorithm with one output per way, else 0."""
    return int(getattr(algo.backbone, "num_classes", 0)) if algo.uses_way_head else 0


def way_mismatch(model: LoadedModel, ways: int) -> str | None:
    """Why the model cannot do ``ways``-way episodes (an algorithm whose head has one output per way), or ``None``."""
    algo = model.algorithm
    if not algo.needs_meta_training:
        return None  # rebuilt for any number of ways (LoadedModel.for_ways)
    head = _head_ways(algo)
    if head and head != ways:
        return (f"{model.meta.algorithm} was built for {head}-way episodes (its head has {head} outputs); train "
                f"another model with meta.ways={ways}")
    return None


def resolve_target(
    model: LoadedModel,
    *,
    dataset: str | None = None,
    root: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
) -> TargetData:
    """The target of a model's recipe, or a registered domain in its place.

    Args:
        model: The model.
        dataset: A registered domain to evaluate on instead of ``meta.target`` (all its classes, no transforms).
        root: Files of ``dataset`` (or of the recipe's target domain, when it reads user files).
        options: More build options of ``dataset``.
    """
    mc = model.meta
    target: TargetConfig = mc.target
    if dataset is not None:
        opts = dict(options or {})
        if root is not None:
            opts["root"] = str(root)
        target = TargetConfig(domain=dataset, options=opts)
    elif root is not None or options:
        if not target.domain:
            raise MetaxferError("the recipe's target is the source's test split, which reads no files: drop --root and "
                                "--option, or name a --dataset")
        opts = {**target.options, **(options or {})}
        if root is not None:
            opts["root"] = str(root)
        target = dataclasses.replace(target, options=opts)
    test = None
    if not target.domain:
        cfg = model.cfg
        test = build_source(cfg.data.domain, cfg.data.options, mc.source, mc.split, seed=cfg.data.split_seed,
                            augment=False).test
    shape = (model.facts["in_channels"], model.facts["image_size"], model.facts["image_size"])
    return build_target(target, source_test=test, image_shape=shape)


def _record(model: LoadedModel, result: EvaluationResult, *, setting: dict[str, Any], target: dict[str, Any],
            elapsed: float) -> dict[str, Any]:
    out = {
        "metaxfer_version": metaxfer.__version__,
        "created": now_iso(),
        "command": list(sys.argv),
        "model": model.describe(),
        "setting": setting,
        "target": target,
        "episodes": result.episodes,
        "seed": result.seed,
        "fingerprint": result.fingerprint,
        "accuracy": result.accuracy,
        "ci": result.ci,
        "confidence": result.confidence,
        "std": result.std,
        "loss": result.loss,
        "summary": str(result),
        "elapsed_s": round(elapsed, 3),
        "device": str(model.algorithm.reference.device),
        "threads": torch.get_num_threads(),
        "accuracies": result.accuracies,
    }
    return out


def evaluate_setting(
    model: LoadedModel, target: TargetData, setting: Setting, *, episodes: int, seed: int, batch_size: int = 16
) -> dict[str, Any]:
    """Score the model on the fixed target episodes of one setting.

    Returns:
        The result record (plain data): model, setting, target, episodes, seed, fingerprint, accuracy, ci (95%
        half-width), std, loss, per-episode accuracies, time.

    Raises:
        EpisodeError: The model cannot do the setting's number of ways, or the target has too few classes.
    """
    model = model.for_ways(setting.ways)
    problem = way_mismatch(model, setting.ways)
    if problem is not None:
        raise EpisodeError(f"setting {setting.name}: {problem}")
    start = time.perf_counter()
    eps = target_episodes(target, setting, episodes=episodes, seed=seed)
    result = evaluate(model.algorithm, eps, batch_size=batch_size)
    if isinstance(eps, GroupedEpisodes):
        result = dataclasses.replace(result, seed=eps.seed, fingerprint=eps.fingerprint())
    info = {**dataclasses.asdict(setting), "name": setting.name, "label": setting.label}
    description = dict(target.description)
    if isinstance(eps, GroupedEpisodes):
        description["groups"] = {g: len(s) for g, s in eps.sets}
    return _record(model, result, setting=info, target=description, elapsed=time.perf_counter() - start)


def evaluate_omniglot_runs(model: LoadedModel, root: str | Path, *, batch_size: int = 16) -> dict[str, Any]:
    """Score the model on Lake et al.'s twenty 20-way one-shot runs (``all_runs`` folder or zip).

    Each run is one episode: 20 training images (one per class) and 20 test images, each to be matched to its
    class; the runs are read at the model's image size and brought to its channels. The interval is over the runs.

    Returns:
        The result record, ``setting.name`` = ``"omniglot-runs"``; ``fingerprint`` hashes the runs' pixels and
        answers.

    Raises:
        DataNotFoundError: The runs are missing (the message says where they come from).
        EpisodeError: The model cannot do 20-way episodes.
    """
    start = time.perf_counter()
    side, channels = model.facts["image_size"], model.facts["in_channels"]
    runs = load_omniglot_runs(root, size=side)
    if not runs:
        raise EpisodeError(f"no one-shot runs found under {root}")
    ways = int(runs[0].support.shape[0])
    model = model.for_ways(ways)
    problem = way_mismatch(model, ways)
    if problem is not None:
        raise EpisodeError(f"the one-shot runs are {ways}-way: {problem}")
    to_model = match_format(tuple(runs[0].support.shape[1:]), (channels, side, side))
    h = hashlib.sha256()
    episodes = []
    for run in runs:
        support, query = to_model(run.support), to_model(run.query)
        for t in (support, query, run.query_targets):
            h.update(t.contiguous().numpy().tobytes())
        episodes.append(Episode(
            support_x=support, support_y=torch.arange(len(support)), query_x=query, query_y=run.query_targets,
            classes=torch.arange(len(support)),
            class_keys=[f"{run.name}/class{k + 1:02d}" for k in range(len(support))],
            domain=OMNIGLOT_RUNS, query_domain=OMNIGLOT_RUNS,
        ))
    result = evaluate(model.algorithm, episodes, batch_size=batch_size)
    result = dataclasses.replace(result, fingerprint=h.hexdigest()[:16])
    setting = {"name": OMNIGLOT_RUNS, "label": f"Lake et al. {ways}-way one-shot runs", "ways": ways, "shots": 1,
               "queries": 1, "within": "run"}
    target = {"domain": OMNIGLOT_RUNS, "root": str(root), "runs": [r.name for r in runs], "classes": ways}
    return _record(model, result, setting=setting, target=target, elapsed=time.perf_counter() - start)


def record_path(folder: str | Path, record: Mapping[str, Any], *, dataset: str | None = None) -> Path:
    """``<folder>/evaluation-[<dataset>-]<setting>.json``."""
    name = record["setting"]["name"]
    prefix = f"{dataset}-" if dataset and dataset != OMNIGLOT_RUNS else ""
    return Path(folder) / f"evaluation-{prefix}{name}.json"


def write_record(folder: str | Path, record: Mapping[str, Any], *, dataset: str | None = None) -> Path:
    """Write a result record atomically as JSON; returns its path."""
    path = record_path(folder, record, dataset=dataset)
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, dict(record))
    return path

"""Run a comparison recipe: train what it needs, score every path on the same target episodes, write the run folder.

The run folder::

    <out>/recipe.yaml                 the resolved recipe, the size and the paths asked for
    <out>/trainings/<name>/           one engine run per training (config, metrics.jsonl, checkpoints, samples)
    <out>/paths/<name>/result.json    each path's per-episode accuracies, mean ± 95% CI, seconds, episode fingerprint
    <out>/paths/<name>/*.png          support sets with their generated images (augmented paths)
    <out>/comparison.json             everything the report shows (schema: :mod:`metaxfer.report.schema`)
    <out>/timings/<name>.json         seconds spent on each training, over every attempt
    <out>/sittings.json               wall seconds of every sitting on the comparison, added up (comparison.json's)
    <out>/report.html                 the self-contained report

Running the same command with the same ``--out`` again continues an interrupted comparison: finished trainings are
reused, unfinished ones resume from their last checkpoint (exactly, as ``metaxfer resume`` does), and paths whose
``result.json`` matches the episodes and the path's definition are not scored again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from metaxfer import report
from metaxfer.compare.recipe import SIZES, AugmentSpec, ClassifierSpec, PathSpec, Recipe, recipe_summary
from metaxfer.data.episodes import Episode
from metaxfer.data.grid import image_grid, save_image
from metaxfer.engine import session
from metaxfer.engine.config import ConfigError, config_to_dict, load_config
from metaxfer.engine.device import cpu_threads, resolve_device
from metaxfer.engine.files import atomic_write_json, atomic_write_text
from metaxfer.engine.runs import Run, SittingClock, now_iso, versions
from metaxfer.errors import MetaxferError
from metaxfer.meta.evaluation import confidence_interval, evaluate
from metaxfer.methods.crossdomain import Setting, parse_setting, target_episodes
from metaxfer.methods.meta_eval import LoadedModel, load_model, model_from_config, resolve_target, way_mismatch

__all__ = ["PathResult", "Comparison", "run_comparison", "ComparisonError", "default_workers"]

log = logging.getLogger(__name__)

Message = Callable[[str], None]


class ComparisonError(MetaxferError):
    """A comparison cannot run as asked (e.g. a path's model does not fit the target)."""


@dataclass
class PathResult:
    """One path's score.

    Attributes:
        name, family, description: From the recipe.
        accuracy: Mean query accuracy over the episodes (fraction).
        ci95: Half-width of its 95% confidence interval.
        episodes: Episodes scored.
        accuracies: Per-episode accuracies, in episode order (paired comparisons use them).
        train_seconds: Wall time of the trainings the path uses (shared trainings count for each path using them).
        eval_seconds: Wall time of scoring (adaptation, generation and prediction).
        trainings: The trainings it uses (folders relative to the run folder).
        run: The training folder whose curves describe the path (its classifier's, else its augmenter's).
        images: Pictures of the path: ``{"title", "path", "caption"}`` with paths relative to the run folder.
        fingerprint: The episode set's fingerprint.
        key: Hash of the path's definition, the size and the episodes (a cached result is reused only if equal).
    """

    name: str
    family: str
    description: str
    accuracy: float
    ci95: float
    episodes: int
    accuracies: list[float]
    train_seconds: float
    eval_seconds: float
    trainings: list[str]
    run: str | None
    images: list[dict[str, str]] = field(default_factory=list)
    fingerprint: str = ""
    key: str = ""


@dataclass
class Comparison:
    """A finished comparison: the recipe, the setting, every path's result, the run folder, and the summary that
    ``comparison.json`` and the report hold."""

    recipe: Recipe
    size: str
    setting: Setting
    target: dict[str, Any]
    fingerprint: str
    results: list[PathResult]
    out: Path
    summary: report.Comparison


def default_workers() -> int:
    """Worker processes by default: one per CPU core this process may use, at most 4 (small trainings run fastest
    on one thread each, side by side)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


# --------------------------------------------------------------------------------------------------- trainings
def _training_config(recipe: Recipe, name: str, size: str, device: str) -> Any:
    spec = recipe.trainings[name]
    overrides = [*spec.overrides_for(size), f"threads={recipe.threads}", f"device={device}"]
    try:
        return load_config(recipe.config_path(spec.config), overrides)
    except ConfigError as exc:
        raise ConfigError(f"recipe {recipe.name}, training {name!r}: {exc}") from exc


def _run_training(recipe: Recipe, name: str, *, size: str, out: Path, device: str, say: Message,
                  bar: bool | None = None) -> float:
    """Train (or resume, or reuse) one training of the recipe into ``<out>/trainings/<name>``.

    Returns:
        The seconds it trained now (0 for a finished training reused).
    """
    folder = out / "trainings" / name
    cfg = _training_config(recipe, name, size, device)
    start = time.perf_counter()
    if (folder / "run.json").is_file():
        run = Run.open(folder)
        ignore = {"device": None, "threads": None}
        if config_to_dict(load_config(run.config_path)) | ignore != config_to_dict(cfg) | ignore:
            raise ComparisonError(
                f"{folder} was trained with another config than recipe {recipe.name} asks now (another size or "
                "overrides?); use a new --out, or delete that folder to train it again"
            )
        if run.read_info().get("state") == "finished":
            say(f"training {name}: reusing {folder} (finished)")
            return 0.0
        say(f"training {name}: resuming {folder} from its last checkpoint")
        session.resume(folder, progress_bar=bar)
    else:
        say(f"training {name}: {recipe.trainings[name].description or cfg.method} ({cfg.train.steps} steps)")
        session.train(cfg, out=folder, progress_bar=bar)
    seconds = time.perf_counter() - start
    _add_training_seconds(out, name, seconds)
    say(f"training {name}: done in {seconds:.0f} s")
    return seconds


def _add_training_seconds(out: Path, name: str, seconds: float) -> None:
    """Add to ``<out>/timings/<name>.json`` (one file per training, so worker processes never share a file)."""
    path = out / "timings" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    before = json.loads(path.read_text(encoding="utf-8"))["seconds"] if path.is_file() else 0.0
    atomic_write_json(path, {"seconds": before + seconds})


def _training_seconds(out: Path) -> dict[str, float]:
    """Seconds spent on each training of the run folder, over every (resumed) attempt."""
    folder = out / "timings"
    if not folder.is_dir():
        return {}
    return {p.stem: float(json.loads(p.read_text(encoding="utf-8"))["seconds"]) for p in sorted(folder.glob("*.json"))}


# ------------------------------------------------------------------------------------------------------ models
def _classifier(recipe: Recipe, spec: PathSpec, *, out: Path, device: str) -> LoadedModel:
    c = spec.classifier
    if c.training:
        return load_model(out / "trainings" / c.training, device=device)
    overrides = [f"meta.algorithm={c.algorithm}", *c.overrides, f"threads={recipe.threads}", f"device={device}"]
    cfg = load_config(recipe.config_path(recipe.target.config), overrides)
    return model_from_config(cfg, device=device)


def _augmenter(spec: PathSpec, *, out: Path, device: str, facts: dict[str, int]) -> Any:
    a = spec.augment
    if a is None:
        return None
    from metaxfer.gan.support import ClassicAugmenter, ScratchGANAugmenter, load_augmenter

    if a.kind == "classic":
        return ClassicAugmenter(**a.options)
    if a.kind == "scratch-gan":
        options = {"image_size": facts["image_size"], "channels": facts["in_channels"], **a.options}
        return ScratchGANAugmenter(**options)
    return load_augmenter(out / "trainings" / a.training, device=device, **a.options)


def _check_fits(model: LoadedModel, facts: dict[str, int], setting: Setting, name: str) -> None:
    for k in ("in_channels", "image_size"):
        if model.facts.get(k) != facts.get(k):
            raise ComparisonError(
                f"path {name!r}: its model takes {k}={model.facts.get(k)} but the target episodes have "
                f"{k}={facts.get(k)}; give its training the same source transforms as the recipe's target config"
            )
    problem = way_mismatch(model, setting.ways)
    if problem is not None:
        raise ComparisonError(f"path {name!r}: {problem}")


# ------------------------------------------------------------------------------------------------------ scoring
def _episode_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(1_000_003 * (seed + 1) + index)


def _augmented(episodes: list[Episode], augmenter: Any, *, spec: AugmentSpec, seed: int) -> Iterator[Episode]:
    from metaxfer.gan.support import augment_episode

    for i, e in enumerate(episodes):
        yield augment_episode(e, augmenter, per_class=spec.per_class, generator=_episode_generator(seed, i),
                              made_weight=spec.made_weight)


def _picture(episode: Episode, augmented: Episode, *, title: str) -> Any:
    """Support images of each class (first row of each class) followed by its generated images."""
    ways = episode.ways
    shots = episode.shots
    extra = augmented.shots - shots
    rows, captions = [], []
    for c in range(ways):
        real = augmented.support_x[augmented.support_y == c][:shots]
        fake = augmented.support_x[augmented.support_y == c][shots:]
        rows.append(torch.cat([real, fake]))
        captions += [str(episode.class_keys[c])[:10]] + ["real"] * (shots - 1) + ["generated"] * extra
    return image_grid(torch.cat(rows), columns=shots + extra, captions=captions, scale=2, title=title)


def _path_key(spec: PathSpec, size: str, fingerprint: str, recipe: Recipe) -> str:
    path = dataclasses.asdict(spec)
    if path["augment"] is not None and path["augment"]["made_weight"] == 1.0:
        del path["augment"]["made_weight"]  # the default: keys written before the field existed stay valid
    payload = {
        "path": path,
        "size": size,
        "fingerprint": fingerprint,
        "trainings": {t: dataclasses.asdict(recipe.trainings[t]) for t in recipe.trainings_used([spec])},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _score_path(recipe: Recipe, spec: PathSpec, *, target: _Target, size: str, out: Path, device: str,
                say: Message, bar: bool | None = None) -> PathResult:
    """Score one path on the target episodes (``train_seconds`` is left at 0 for the caller to fill in)."""
    setting, episodes = target.setting, target.episodes
    model = _classifier(recipe, spec, out=out, device=device).for_ways(setting.ways)
    _check_fits(model, target.facts, setting, spec.name)
    augmenter = _augmenter(spec, out=out, device=device, facts=target.facts)
    (out / "paths" / spec.name).mkdir(parents=True, exist_ok=True)
    images: list[dict[str, str]] = []
    start = time.perf_counter()
    stream: Any = episodes
    if spec.augment is not None:
        stream = _augmented(episodes, augmenter, spec=spec.augment, seed=recipe.target.seed)
    result = evaluate(model.algorithm, _progress(stream, total=len(episodes), name=spec.name, bar=bar))
    elapsed = time.perf_counter() - start
    if spec.augment is not None:
        first = next(_augmented(episodes[:1], augmenter, spec=spec.augment, seed=recipe.target.seed))
        rel = f"paths/{spec.name}/episode0.png"
        save_image(_picture(episodes[0], first, title=f"{spec.name}: episode 0, real shots then generated"),
                   out / rel)
        images.append({"title": f"{spec.name}: generated support images", "path": rel,
                       "caption": f"Episode 0 of the target: each row is one class, its {setting.shots} real shot(s) "
                                  f"then the {spec.augment.per_class} images the augmenter added."})
    used = recipe.trainings_used([spec])
    run = spec.classifier.training or (spec.augment.training if spec.augment is not None else "")
    res = PathResult(
        name=spec.name, family=spec.family, description=spec.description,
        accuracy=result.accuracy, ci95=result.ci, episodes=result.episodes, accuracies=list(result.accuracies),
        train_seconds=0.0, eval_seconds=elapsed,
        trainings=[f"trainings/{t}" for t in used], run=f"trainings/{run}" if run else None,
        images=images, fingerprint=target.fingerprint, key=_path_key(spec, size, target.fingerprint, recipe),
    )
    say(f"path {spec.name}: {100 * res.accuracy:.1f} ± {100 * res.ci95:.1f} % over {res.episodes} episodes "
        f"({elapsed:.0f} s)")
    return res


def _cached(recipe: Recipe, spec: PathSpec, *, size: str, fingerprint: str, out: Path) -> PathResult | None:
    """A path's earlier result, if it was scored with the same definition on the same episodes."""
    path = out / "paths" / spec.name / "result.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("key") != _path_key(spec, size, fingerprint, recipe):
        return None
    return PathResult(**data)


def _progress(stream: Any, *, total: int, name: str, bar: bool | None) -> Iterator[Episode]:
    """Yield the episodes, showing progress (a bar on a terminal, else a log line every 20 episodes)."""
    from metaxfer.engine.progress import Progress

    shown = Progress(total=total, name=f"score {name}", bar=bar)
    try:
        for i, e in enumerate(stream, start=1):
            yield e
            shown.update(i, {"episode": i} if i % 20 == 0 or i == total else None)
    finally:
        shown.close()


# ------------------------------------------------------------------------------------------------------ target
@dataclass
class _Target:
    setting: Setting
    description: dict[str, Any]
    facts: dict[str, int]
    episodes: list[Episode]
    fingerprint: str


def _build_target(recipe: Recipe, *, size: str, out: Path, device: str) -> _Target:
    """The recipe's fixed target episodes (the same on every machine and in every worker process)."""
    setting = parse_setting(recipe.target.setting, queries=recipe.target.queries)
    reference = _classifier(recipe, PathSpec(name="target", classifier=ClassifierSpec(algorithm="scratch")), out=out,
                            device=device)
    data = resolve_target(reference)
    episode_set = target_episodes(data, setting, episodes=recipe.target.episodes[size], seed=recipe.target.seed)
    return _Target(setting=setting, description=dict(data.description), facts=dict(reference.facts),
                   episodes=list(episode_set), fingerprint=episode_set.fingerprint())


# ------------------------------------------------------------------------------------------------------ workers
def _child_say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _child_setup(threads: int) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("metaxfer.engine.progress").setLevel(logging.INFO)
    torch.set_num_threads(threads)


def _training_job(recipe: Recipe, name: str, size: str, out: Path, device: str) -> float:
    _child_setup(recipe.threads)
    return _run_training(recipe, name, size=size, out=out, device=device, say=_child_say, bar=False)


def _score_job(recipe: Recipe, spec: PathSpec, size: str, out: Path, device: str, fingerprint: str) -> PathResult:
    _child_setup(recipe.threads)
    target = _build_target(recipe, size=size, out=out, device=device)
    if target.fingerprint != fingerprint:  # the episodes are drawn from seeds alone: this means a changed domain
        raise ComparisonError(f"path {spec.name}: a worker drew target episodes {target.fingerprint}, the comparison "
                              f"uses {fingerprint}; did the target data change while the comparison ran?")
    return _score_path(recipe, spec, target=target, size=size, out=out, device=device, say=_child_say, bar=False)


def _run_jobs(recipe: Recipe, paths: list[PathSpec], *, size: str, out: Path, device: str, target: _Target,
              workers: int, say: Message) -> dict[str, PathResult]:
    """Train what ``paths`` need and score them, on ``workers`` processes (in this one when 1).

    A path is started as soon as the trainings it needs are done, so that scoring a path that needs no training
    overlaps with the trainings.
    """
    needed = [t for t in recipe.trainings_used(paths)]
    results: dict[str, PathResult] = {}
    if workers <= 1:
        for name in needed:
            _run_training(recipe, name, size=size, out=out, device=device, say=say)
        for spec in paths:
            results[spec.name] = _score_path(recipe, spec, target=target, size=size, out=out, device=device, say=say)
        return results
    say(f"running on {workers} worker processes ({recipe.threads} thread(s) each)")
    done: set[str] = set()
    waiting = list(paths)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        running: dict[Future[Any], tuple[str, str]] = {}

        def submit_ready() -> None:
            for spec in [p for p in waiting if set(recipe.trainings_used([p])) <= done]:
                waiting.remove(spec)
                job = pool.submit(_score_job, recipe, spec, size, out, device, target.fingerprint)
                running[job] = ("path", spec.name)

        submit_ready()  # paths that need no training first: they overlap with the trainings
        for name in needed:
            running[pool.submit(_training_job, recipe, name, size, out, device)] = ("training", name)
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for job in finished:
                    kind, name = running.pop(job)
                    value = job.result()
                    if kind == "training":
                        done.add(name)
                    else:
                        results[name] = value
                submit_ready()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


# ------------------------------------------------------------------------------------------------------ the run
def run_comparison(
    recipe: Recipe,
    *,
    out: str | Path,
    size: str = "default",
    paths: list[str] | None = None,
    device: str = "auto",
    say: Message | None = None,
    command: str = "",
    workers: int = 0,
) -> Comparison:
    """Train what the chosen paths need, score them on one fixed set of target episodes, write the run folder.

    Args:
        recipe: From :func:`~metaxfer.compare.recipe.load_recipe`.
        out: The run folder (created; an existing one of the same recipe and size is continued).
        size: ``quick``, ``default`` or ``full``.
        paths: Names of the paths to run (default all).
        device: ``auto``, ``cpu`` or ``cuda``.
        say: Where progress lines go (default: the log).
        command: The command line, for the report.
        workers: Processes that train and score side by side (0: :func:`default_workers`; 1: all in this process).

    Returns:
        The :class:`Comparison` (also written as ``comparison.json`` and ``report.html``).

    Raises:
        ConfigError: A bad size, path name or training config.
        ComparisonError: A model that does not fit the target, or a run folder of another recipe or size.
    """
    if size not in SIZES:
        raise ConfigError(f"size {size!r} is not one of {', '.join(SIZES)}")
    say = say or log.info
    out = Path(out)
    chosen = recipe.select(list(paths or []))
    marker = {"recipe": recipe.name, "size": size}
    meta_file = out / "recipe.json"
    if meta_file.is_file():
        old = json.loads(meta_file.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in marker} != marker:
            raise ComparisonError(f"{out} holds a comparison of recipe {old.get('recipe')!r} at size "
                                  f"{old.get('size')!r}; use another --out for {recipe.name!r} at size {size!r}")
        say(f"continuing the comparison in {out}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(meta_file, {**marker, "started": now_iso()})
    atomic_write_text(out / "recipe.yaml", _yaml(recipe_summary(recipe)))
    dev = str(resolve_device(device))
    clock = SittingClock(out / "sittings.json", earlier=_earlier_seconds(out))
    with clock:  # an interrupted sitting still counts its time; one killed outright loses a minute at most
        target, results = _score_paths(recipe, chosen, size=size, out=out, device=dev, workers=workers, say=say)
    timings = _training_seconds(out)
    ordered = []
    for spec in chosen:
        r = results[spec.name]
        r.train_seconds = sum(timings.get(t, 0.0) for t in recipe.trainings_used([spec]))
        atomic_write_json(out / "paths" / spec.name / "result.json", dataclasses.asdict(r))
        ordered.append(r)
    setting = target.setting
    results_list = ordered
    total = clock.write()
    summary = _summary(recipe, size=size, setting=setting, target=target.description,
                       fingerprint=target.fingerprint, results=results_list, device=dev, command=command,
                       seconds=total)
    summary.save(out)
    say(f"report: {report.write_report(out, comparison=summary)}")
    return Comparison(recipe=recipe, size=size, setting=setting, target=dict(target.description),
                      fingerprint=target.fingerprint, results=results_list, out=out, summary=summary)


def _score_paths(recipe: Recipe, chosen: list[PathSpec], *, size: str, out: Path, device: str, workers: int,
                 say: Callable[[str], None]) -> tuple[_Target, dict[str, PathResult]]:
    """Build the target episodes, reuse the paths scored before on them, run the trainings and scoring left."""
    with cpu_threads(recipe.threads):
        target = _build_target(recipe, size=size, out=out, device=device)
        say(f"target: {target.description.get('domain', '?')} {target.setting.label}, {len(target.episodes)} "
            f"episodes (seed {recipe.target.seed}, fingerprint {target.fingerprint})")
        results: dict[str, PathResult] = {}
        for spec in chosen:
            cached = _cached(recipe, spec, size=size, fingerprint=target.fingerprint, out=out)
            if cached is not None:
                say(f"path {spec.name}: reusing {out / 'paths' / spec.name / 'result.json'}")
                results[spec.name] = cached
        todo = [spec for spec in chosen if spec.name not in results]
        count = workers if workers > 0 else default_workers()
        count = max(1, min(count, len(todo) + len(recipe.trainings_used(todo))))
        results.update(_run_jobs(recipe, todo, size=size, out=out, device=device, target=target,
                                 workers=count, say=say))
    return target, results


def _earlier_seconds(out: Path) -> float:
    """Wall seconds that earlier sittings spent on the comparison in ``out`` (``sittings.json``; a comparison that
    finished before that file was kept counts the time its ``comparison.json`` recorded)."""
    for name in ("sittings.json", "comparison.json"):
        if (out / name).is_file():
            return SittingClock.recorded(out / name)
    return 0.0


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _summary(recipe: Recipe, *, size: str, setting: Setting, target: dict[str, Any], fingerprint: str,
             results: list[PathResult], device: str, command: str, seconds: float) -> report.Comparison:
    """What ``comparison.json`` holds and the report shows (:class:`metaxfer.report.Comparison`)."""
    sources = sorted({_training_source(recipe, t) for t in recipe.trainings} - {""})
    return report.Comparison(
        recipe=recipe.name,
        title=recipe.title or recipe.name,
        description=recipe.description,
        created=now_iso(),
        command=command or f"metaxfer run {recipe.name}",
        versions=versions(),
        device=device,
        threads=recipe.threads,
        setting=report.Setting(
            source=", ".join(sources), target=str(target.get("domain") or ""), ways=setting.ways,
            shots=setting.shots, queries=setting.queries, episodes=recipe.target.episodes[size],
            seed=recipe.target.seed, fingerprint=fingerprint,
        ),
        paths=[
            report.PathResult(
                name=r.name, family=r.family, description=r.description,
                accuracy=report.Accuracy(mean=r.accuracy, ci95=min(r.ci95, 1.0), n=r.episodes),
                seconds=report.Seconds(train=r.train_seconds, evaluate=r.eval_seconds),
                run=r.run, images=[report.ImageRef(**i) for i in r.images],
            )
            for r in results
        ],
        config=recipe_summary(recipe),
        size=size,
        seconds=seconds,
        paired=[report.Paired(**p) for p in paired_differences(results)],
    )


def _training_source(recipe: Recipe, name: str) -> str:
    try:
        import yaml

        raw = yaml.safe_load(recipe.config_path(recipe.trainings[name].config).read_text(encoding="utf-8"))
        return str(raw.get("data", {}).get("domain", ""))
    except (OSError, AttributeError):
        return ""


def paired_differences(results: list[PathResult]) -> list[dict[str, Any]]:
    """The best path against every other, paired by episode: mean difference ± 95% CI (fractions).

    Every path is scored on the same episodes, so the per-episode differences give a much tighter interval than
    the two paths' own intervals do.
    """
    if len(results) < 2:
        return []
    best = max(results, key=lambda r: r.accuracy)
    out = []
    for r in results:
        if r is best or len(r.accuracies) != len(best.accuracies):
            continue
        diffs = [a - b for a, b in zip(best.accuracies, r.accuracies)]
        mean, half = confidence_interval(diffs)
        out.append({"best": best.name, "other": r.name, "difference": mean, "ci95": half,
                    "significant": abs(mean) > half})
    return out

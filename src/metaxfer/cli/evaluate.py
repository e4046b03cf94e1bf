"""``metaxfer evaluate``: few-shot accuracy of a trained ``meta`` run on its recipe's target (or another dataset).

    metaxfer evaluate --model runs/meta-glyphs-20260101-120000
    metaxfer evaluate --model RUN --setting 20w1s --episodes 600
    metaxfer evaluate --model RUN --ways 5 --shots 5 --queries 15
    metaxfer evaluate --model RUN --dataset omniglot-runs --root ~/data/omniglot/all_runs
    metaxfer evaluate --config configs/meta-glyphs.yaml --algorithm scratch

Each setting prints ``mean ± 95% CI`` and writes ``evaluation-<setting>.json`` (per-episode accuracies, episode seed
and fingerprint, checkpoint) into the run folder, or into ``--out``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from metaxfer.engine.config import ConfigError, load_config
from metaxfer.engine.device import cpu_threads
from metaxfer.errors import EpisodeError
from metaxfer.methods.crossdomain import Setting, parse_setting
from metaxfer.methods.meta_eval import (
    OMNIGLOT_RUNS,
    LoadedModel,
    default_settings,
    evaluate_omniglot_runs,
    evaluate_setting,
    load_model,
    model_from_config,
    resolve_target,
    way_mismatch,
    write_record,
)

__all__ = ["register", "evaluate_cmd"]

log = logging.getLogger(__name__)


def _options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r} must look like key=value, e.g. --option background=false")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _settings(model: LoadedModel, names: list[str], ways: int | None, shots: int | None, queries: int | None,
              within: str | None) -> tuple[list[Setting], bool]:
    """The settings asked for, and whether they were asked explicitly (then a way mismatch is an error)."""
    default_q = queries if queries is not None else model.meta.eval.queries
    if ways is not None or shots is not None:
        if ways is None or shots is None:
            raise ConfigError("give --ways and --shots together (and optionally --queries, --within)")
        return [Setting(ways, shots, default_q, within)], True
    if names:
        return [parse_setting(n, queries=default_q) for n in names], True
    if queries is not None or within is not None:
        raise ConfigError("--queries and --within go with --ways and --shots; or write them into --setting, "
                          "e.g. --setting 20w1s1q@alphabet")
    return default_settings(model), False


def evaluate_cmd(
    model_dir: Optional[Path] = typer.Option(None, "--model", "-m", help="A run folder of `metaxfer train`."),
    config: Optional[Path] = typer.Option(
        None, "--config", help="A recipe, to evaluate an algorithm that needs no training (scratch) without a run."
    ),
    overrides: Optional[list[str]] = typer.Argument(None, help="With --config: dotted overrides key=value."),
    algorithm: Optional[str] = typer.Option(None, "--algorithm", help="With --config: meta.algorithm (scratch)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best (validation-selected), last, or a folder."),
    setting: Optional[list[str]] = typer.Option(
        None, "--setting", "-s",
        help="N-way K-shot as 5w1s, 5w5s15q (Q queries), 20w1s1q@alphabet (classes from one alphabet); repeatable "
             "(default: the recipe's meta.eval.settings).",
    ),
    ways: Optional[int] = typer.Option(None, "--ways", help="N of one setting (with --shots)."),
    shots: Optional[int] = typer.Option(None, "--shots", help="K of one setting (with --ways)."),
    queries: Optional[int] = typer.Option(None, "--queries", help="Queries per class (default: meta.eval.queries)."),
    within: Optional[str] = typer.Option(None, "--within", help="Draw each episode's classes from one group."),
    episodes: Optional[int] = typer.Option(
        None, "--episodes", help="Episodes per setting (default: meta.eval.episodes)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the episodes (default: meta.eval.seed)."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help=f"{OMNIGLOT_RUNS} (Lake's 20 one-shot runs), or a registered domain to use as target."
    ),
    root: Optional[Path] = typer.Option(None, "--root", help="Files of --dataset (or of a target that reads files)."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="key=value build option of --dataset."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for the JSON results (default: the run)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0: the run's `threads`, else PyTorch's default)."),
) -> None:
    """Few-shot accuracy (mean ± 95% CI over fixed episodes) of a trained model on the recipe's target domain."""
    if (model_dir is None) == (config is None):
        raise ConfigError("give either --model RUN (a trained run) or --config RECIPE --algorithm scratch")
    if config is not None:
        extra = list(overrides or []) + ([f"meta.algorithm={algorithm}"] if algorithm else [])
        model = model_from_config(load_config(config, extra), device=device)
        folder = out or Path("runs") / f"{model.cfg.name}-{model.meta.algorithm}-evaluation"
    else:
        if overrides or algorithm:
            raise ConfigError(
                "overrides and --algorithm go with --config; a trained run is evaluated as it was trained"
            )
        model = load_model(model_dir, checkpoint=checkpoint, device=device)  # type: ignore[arg-type]
        folder = out or model_dir  # type: ignore[assignment]
    ev = model.meta.eval
    with cpu_threads(threads or model.cfg.threads):
        if dataset == OMNIGLOT_RUNS:
            if root is None:
                raise ConfigError(f"--dataset {OMNIGLOT_RUNS} needs --root: the all_runs folder (or all_runs.zip)")
            record = evaluate_omniglot_runs(model, root, batch_size=ev.batch_size)
            path = write_record(folder, record, dataset=dataset)
            typer.echo(f"{record['setting']['label']}: {record['summary']} -> {path}")
            return
        chosen, explicit = _settings(model, list(setting or []), ways, shots, queries, within)
        target = resolve_target(model, dataset=dataset, root=root, options=_options(list(option or [])))
        for s in chosen:
            problem = way_mismatch(model, s.ways)
            if problem is not None and not explicit:
                typer.echo(f"{s.name}: skipped: {problem}", err=True)
                continue
            try:
                record = evaluate_setting(model, target, s, episodes=episodes or ev.episodes,
                                          seed=ev.seed if seed is None else seed, batch_size=ev.batch_size)
            except EpisodeError as exc:
                if explicit:
                    raise
                typer.echo(f"{s.name}: skipped: {exc}", err=True)
                continue
            path = write_record(folder, record, dataset=dataset)
            typer.echo(f"{s.label}, {s.queries} queries, on {target.support.name}: {record['summary']} -> {path}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the root command."""
    app.command("evaluate")(evaluate_cmd)

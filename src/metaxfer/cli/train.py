"""``metaxfer train``, ``metaxfer resume`` and ``metaxfer runs list``: start, continue and list training runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from metaxfer.engine import config_to_yaml, list_runs, load_config
from metaxfer.engine import resume as resume_run
from metaxfer.engine import train as train_run
from metaxfer.engine.loop import RunResult

__all__ = ["register", "runs_app"]

runs_app = typer.Typer(no_args_is_help=True)
_EXIT_INTERRUPTED = 130


def _show_progress_lines() -> None:
    """Let the engine's progress and lifecycle lines through at INFO, whatever -v says (more verbose stays)."""
    logger = logging.getLogger("metaxfer.engine")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def _report(result: RunResult) -> None:
    if result.state == "interrupted":
        typer.echo(f"interrupted at step {result.step}; a checkpoint was written. Continue with: "
                   f"metaxfer resume {result.run_dir}", err=True)
        raise typer.Exit(_EXIT_INTERRUPTED)
    final = " ".join(f"{k}={v:.4g}" for k, v in result.final.items())
    best = ""
    if result.best is not None:
        best = f"; best {result.best['metric']}={result.best['value']:.4g} at step {result.best['step']}"
    early = " (stopped early)" if result.stopped_early else ""
    typer.echo(f"finished {result.run_dir} at step {result.step}{early}: {final}{best}")


def train_cmd(
    config: Path = typer.Argument(..., help="A YAML recipe, e.g. configs/tiny.yaml."),
    overrides: Optional[list[str]] = typer.Argument(
        None, help="Dotted overrides key=value, e.g. train.steps=2000 train.lr=0.01 model.width=32."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default: ROOT/<name>-<time>)."),
    root: Path = typer.Option(Path("runs"), "--root", help="Parent folder of default run folders."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (overrides `device`)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic CUDA kernels where they exist."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Force the progress bar on or off (default: on for a terminal)."
    ),
) -> None:
    """Train a recipe: write a run folder with its config, metrics, checkpoints, samples and summary."""
    extra = list(overrides or [])
    if device is not None:
        extra.append(f"device={device}")
    if deterministic:
        extra.append("deterministic=true")
    cfg = load_config(config, extra)
    if print_config:
        typer.echo(config_to_yaml(cfg), nl=False)
        return
    _show_progress_lines()
    try:
        result = train_run(cfg, out=out, root=root, progress_bar=progress)
    except KeyboardInterrupt:
        typer.echo("stopped at once by a second Ctrl-C; `metaxfer runs list` shows the run, `metaxfer resume` "
                   "continues it from its last checkpoint", err=True)
        raise typer.Exit(_EXIT_INTERRUPTED) from None
    _report(result)


def resume_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder (see `metaxfer runs list`)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default: as before)."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Force the progress bar on or off (default: on for a terminal)."
    ),
) -> None:
    """Continue a run from its newest checkpoint; it ends exactly as an uninterrupted run would."""
    _show_progress_lines()
    try:
        result = resume_run(run_dir, device=device, progress_bar=progress)
    except KeyboardInterrupt:
        typer.echo(f"stopped at once by a second Ctrl-C; `metaxfer resume {run_dir}` continues it", err=True)
        raise typer.Exit(_EXIT_INTERRUPTED) from None
    _report(result)


@runs_app.command("list")
def runs_list_cmd(
    root: Path = typer.Option(Path("runs"), "--root", help="Folder holding run folders."),
) -> None:
    """Table of runs: folder, method, state (running, finished, failed, resumable), progress, headline metric."""
    runs = list_runs(root)
    if not runs:
        typer.echo(f"no runs under {root}")
        return
    table = Table(title=f"runs under {root}")
    for col in ("run", "method", "state", "step", "metric", "started"):
        table.add_column(col, overflow="fold")
    for r in runs:
        value = "" if r.value is None else f"{r.value:.4g}"
        table.add_row(str(r.path), r.method, r.state, f"{r.step}/{r.steps}", f"{r.metric} {value}".strip(), r.started)
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``resume`` and the ``runs`` sub-app to the root command."""
    app.command("train")(train_cmd)
    app.command("resume")(resume_cmd)
    app.add_typer(runs_app, name="runs", help="List training runs and their state.")

"""``metaxfer run``: the main job. Every transfer path of a recipe on the same target episodes, one table, one report.

    metaxfer run                          # the default recipe (digits, pip-only data), default size
    metaxfer run --list                   # the recipes
    metaxfer run glyphs --quick           # smoke size
    metaxfer run digits --full            # the size behind docs/results.md
    metaxfer run digits --path protonet --path maml target.episodes.default=200
    metaxfer run digits --out runs/cmp    # the same --out again continues an interrupted comparison
"""

from __future__ import annotations

import logging
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from metaxfer.compare.recipe import DEFAULT_RECIPE, list_recipes, load_recipe
from metaxfer.compare.runner import run_comparison
from metaxfer.report import format_table

__all__ = ["register", "run_cmd"]


def _list() -> None:
    found = list_recipes()
    if not found:
        typer.echo("no recipes found: run from the metaxfer checkout (configs/run) or set METAXFER_RECIPES")
        return
    for name, path in found.items():
        recipe = load_recipe(str(path))
        mark = " (default)" if name == DEFAULT_RECIPE else ""
        typer.echo(f"{name}{mark}: {recipe.title}  [data: {recipe.data}; paths: "
                   f"{', '.join(p.name for p in recipe.paths)}]")


def run_cmd(
    recipe: Optional[str] = typer.Argument(None, help=f"Recipe name or file (default: {DEFAULT_RECIPE})."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides of the recipe."),
    quick: bool = typer.Option(False, "--quick", help="Smoke size: a few training steps and episodes."),
    full: bool = typer.Option(False, "--full", help="The long size behind docs/results.md."),
    path: Optional[list[str]] = typer.Option(None, "--path", help="Run only this path (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/run-<recipe>-<time>); an "
                                                           "existing one is continued."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes training and scoring side by side "
                                                          "(0: one per core, at most 4; 1: no extra processes)."),
    list_: bool = typer.Option(False, "--list", help="List the recipes and exit."),
) -> None:
    """Run every transfer path of a recipe on the same target episodes; print the table, write an HTML report."""
    if list_:
        _list()
        return
    if quick and full:
        raise typer.BadParameter("give --quick or --full, not both")
    name = recipe or DEFAULT_RECIPE
    if "=" in name:  # `metaxfer run key=value`: an override of the default recipe
        overrides, name = [name, *(overrides or [])], DEFAULT_RECIPE
    loaded = load_recipe(name, list(overrides or []))
    size = "quick" if quick else "full" if full else "default"
    folder = out or Path("runs") / f"run-{loaded.name}-{size}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    logging.getLogger("metaxfer.compare").setLevel(logging.INFO)
    command = "metaxfer " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def say(text: str) -> None:
        typer.echo(text, err=True)

    say(f"metaxfer run {loaded.name} ({size}): {len(loaded.select(list(path or [])))} paths -> {folder}")
    comparison = run_comparison(loaded, out=folder, size=size, paths=list(path or []), device=device, say=say,
                                command=command, workers=workers)
    typer.echo(format_table(comparison.summary))


def register(app: typer.Typer) -> None:
    """Add ``run`` to the root command."""
    app.command("run")(run_cmd)

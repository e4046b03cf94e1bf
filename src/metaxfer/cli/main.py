"""Entry point of the ``metaxfer`` command: one typer app, with a sub-app per family of commands."""

from __future__ import annotations

import logging
import sys

import typer

from metaxfer import __version__
from metaxfer.cli import data as data_cmd
from metaxfer.cli import evaluate as evaluate_cmd
from metaxfer.cli import generate as generate_cmd
from metaxfer.cli import run as run_cmd
from metaxfer.cli import train as train_cmd
from metaxfer.cli import translate as translate_cmd
from metaxfer.errors import MetaxferError

app = typer.Typer(
    name="metaxfer",
    help="Cross-domain knowledge transfer with meta-learning and GANs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data", help="List, inspect and draw the registered data domains.")
train_cmd.register(app)
evaluate_cmd.register(app)
run_cmd.register(app)
translate_cmd.register(app)
generate_cmd.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"metaxfer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log lines (-v info, -vv debug)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    """Run the command line; metaxfer's own errors print as one clear line and exit with status 2."""
    try:
        app()
    except MetaxferError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)


if __name__ == "__main__":  # `python -m metaxfer.cli.main ...`, e.g. under torchrun
    main()

"""``metaxfer data ...``: list the registered domains, draw a picture grid of one or all of them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from metaxfer.data.domain import create_domain, list_domains
from metaxfer.data.grid import domain_grid, save_image
from metaxfer.errors import MetaxferError, UnknownNameError

app = typer.Typer(no_args_is_help=True)
log = logging.getLogger(__name__)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def parse_options(pairs: list[str]) -> dict[str, object]:
    """Turn ``key=value`` strings into domain options; values are parsed as YAML scalars (``size=32`` → 32)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair:
            raise MetaxferError(f"domain option {pair!r} is not of the form key=value (e.g. size=32)")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command("list")
def list_cmd(
    all_: bool = typer.Option(False, "--all", help="Also list domains that read a user path (MNIST, SVHN, CUB, ...)."),
    build: bool = typer.Option(True, "--build/--no-build", help="Build (or load from the cache) each available domain to count it."),
) -> None:
    """Table of domains: name, classes, examples, image size, source, and whether it is available here."""
    table = Table(title="metaxfer data domains", show_lines=False)
    for col in ("name", "classes", "examples", "image", "size", "source", "available here"):
        table.add_column(col, overflow="fold")
    for spec in list_domains(default_only=not all_):
        problem = spec.check()
        row = [spec.name, "", "", "", "", spec.source]
        if spec.needs_root:
            row.append("needs root=PATH")
        elif problem is not None:
            row.append(f"no: {problem}")
        elif build:
            try:
                dom = create_domain(spec.name)
            except MetaxferError as exc:
                row.append(f"no: {exc}")
            else:
                c, h, w = dom.image_shape
                row[1:5] = [str(dom.num_classes), str(len(dom)), f"{c}×{h}×{w}", _human_bytes(dom.images.numel())]
                row.append("yes")
        else:
            row.append("yes")
        table.add_row(*row)
    Console(width=160).print(table)


@app.command("show")
def show_cmd(
    name: Optional[str] = typer.Argument(None, help="Domain name (see `metaxfer data list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file (one domain) or folder (with --all-default)."),
    options: list[str] = typer.Option([], "--option", help="Domain option key=value (repeatable), e.g. --option size=32."),
    classes: int = typer.Option(20, help="Classes to draw (spread over the domain)."),
    per_class: int = typer.Option(8, help="Examples per class."),
    all_default: bool = typer.Option(False, "--all-default", help="Draw every available default domain into OUT/<name>.png."),
) -> None:
    """Write a labelled picture grid of a domain."""
    if all_default:
        written, skipped = [], []
        for spec in list_domains(default_only=True):
            problem = spec.check()
            if problem is not None:
                skipped.append(f"{spec.name} ({problem})")
                continue
            dom = create_domain(spec.name)
            written.append(save_image(domain_grid(dom, classes=classes, per_class=per_class), out / f"{spec.name}.png"))
        for path in written:
            typer.echo(f"wrote {path}")
        for s in skipped:
            typer.echo(f"skipped {s}", err=True)
        return
    if name is None:
        raise UnknownNameError("give a domain NAME or --all-default; `metaxfer data list` shows the names")
    dom = create_domain(name, **parse_options(options))
    path = save_image(domain_grid(dom, classes=classes, per_class=per_class), out)
    typer.echo(f"wrote {path} ({dom.describe()})")

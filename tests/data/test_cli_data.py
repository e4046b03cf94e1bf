"""`metaxfer data list` and `metaxfer data show`, and the picture grids behind them."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metaxfer.cli.data import parse_options
from metaxfer.cli.main import app
from metaxfer.data import create_domain
from metaxfer.data.grid import domain_grid, image_grid
from metaxfer.errors import MetaxferError, UnknownNameError

runner = CliRunner()


def test_data_list_shows_every_default_domain_and_its_availability() -> None:
    result = runner.invoke(app, ["data", "list", "--no-build"])
    assert result.exit_code == 0, result.output
    for name in ("mnist-5k", "optdigits", "emoji-twemoji", "font-glyphs", "hershey", "fashion-mnist"):
        assert name in result.output
    assert "svhn" not in result.output
    everything = runner.invoke(app, ["data", "list", "--no-build", "--all"])
    assert "svhn" in everything.output and "needs root=PATH" in everything.output


def test_data_list_counts_built_domains() -> None:
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if "optdigits" in l)
    assert "1797" in line and "1×8×8" in line


def test_data_show_writes_a_grid_of_the_domain(tmp_path) -> None:
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["data", "show", "synthetic", "--out", str(out), "--option", "num_classes=3",
                                 "--classes", "3", "--per-class", "4"])
    assert result.exit_code == 0, result.output
    img = Image.open(out)
    assert img.mode == "RGB" and img.width > 4 * 28 and img.height > 3 * 28
    assert "synthetic: 3 classes" in result.output


def test_data_show_unknown_domain_is_a_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["data", "show", "nmist", "--out", str(tmp_path / "x.png")])
    assert isinstance(result.exception, UnknownNameError)
    assert "mnist" in str(result.exception) and not (tmp_path / "x.png").exists()


def test_command_line_errors_print_one_line_and_exit_2(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "metaxfer", "data", "show", "nope", "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown domain 'nope'") and "Traceback" not in proc.stderr


def test_parse_options_reads_yaml_scalars() -> None:
    assert parse_options(["size=32", "background=black", "categories=[animal, plant]", "skin_tones=false"]) == {
        "size": 32, "background": "black", "categories": ["animal", "plant"], "skin_tones": False}
    with pytest.raises(MetaxferError, match="key=value"):
        parse_options(["size"])


def test_image_grid_places_each_image_in_its_cell() -> None:
    images = torch.zeros(4, 1, 3, 3, dtype=torch.uint8)
    images[2] = 255
    grid = image_grid(images, columns=2, scale=1, pad=1)
    assert grid.size == (2 * 4 + 1, 2 * 4 + 1)
    assert grid.getpixel((1, 5)) == (255, 255, 255)  # third image: row 1, column 0
    assert grid.getpixel((5, 5)) == (0, 0, 0)
    with pytest.raises(TypeError, match="uint8"):
        image_grid(images.float())
    with pytest.raises(ValueError, match="captions"):
        image_grid(images, captions=["a"])


def test_domain_grid_draws_one_row_per_class() -> None:
    dom = create_domain("synthetic", num_classes=4, per_class=6, size=10, cache=False)
    grid = domain_grid(dom, classes=4, per_class=3, scale=1)
    assert grid.height >= 20 + 4 * 10

"""``metaxfer generate`` end to end on a tiny trained run: one image, a grid, several prompts, prompts in other
scripts; and errors that name the fix (a missing run, a run of another method, a bad output name, an empty prompt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from test_t2i_engine import tiny_config
from typer.testing import CliRunner

from metaxfer.cli.main import app
from metaxfer.engine import load_config, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generate") / "run"
    result = train(load_config(tiny_config()), out=out, progress_bar=False)
    assert result.state == "finished"
    return out


def _invoke(*args: str):
    return CliRunner().invoke(app, ["generate", *args])


def test_one_prompt_writes_the_enlarged_image(run_dir, tmp_path):
    out = tmp_path / "cat.png"
    result = _invoke("grinning cat", "--model", str(run_dir), "--out", str(out), "--scale", "3")
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.size == (48, 48) and im.mode == "RGB"
    again = tmp_path / "again.png"
    assert _invoke("grinning cat", "--model", str(run_dir), "--out", str(again), "--scale", "3").exit_code == 0
    assert out.read_bytes() == again.read_bytes()  # the same seed draws the same image
    other = tmp_path / "other.png"
    assert _invoke("grinning cat", "--model", str(run_dir), "--out", str(other), "--scale", "3",
                   "--seed", "5").exit_code == 0
    with Image.open(out) as a, Image.open(other) as b:
        assert a.tobytes() != b.tobytes()


def test_non_english_prompt_and_a_grid_of_four(run_dir, tmp_path):
    out = tmp_path / "neko.png"
    result = _invoke("ニヤッと笑う猫", "--model", str(run_dir), "--out", str(out), "--n", "4", "--scale", "2")
    assert result.exit_code == 0, result.output
    assert "4 image(s) of 16×16" in result.output
    with Image.open(out) as im:  # a 2×2 grid of 32-px images under a title line
        assert im.width >= 2 * 32 and im.height > 2 * 32
    several = tmp_path / "several.webp"
    result = _invoke("قطة مبتسمة", "smiling cat", "улыбающийся кот", "--model", str(run_dir), "--out", str(several),
                     "--n", "2", "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    assert "6 image(s)" in result.output and several.stat().st_size > 0


def test_errors_name_the_problem_and_the_fix(run_dir, tmp_path):
    missing = _invoke("cat", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png"))
    assert missing.exit_code != 0 and "not a run folder" in str(missing.exception)
    assert "metaxfer runs list" in str(missing.exception)

    other = tmp_path / "classifier-run"
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["train.steps=2", "train.eval_every=2", "device=cpu",
                                                         "train.tensorboard=false"])
    assert train(cfg, out=other, progress_bar=False).state == "finished"
    wrong = _invoke("cat", "--model", str(other), "--out", str(tmp_path / "x.png"))
    assert wrong.exit_code != 0
    assert "'classifier' run" in str(wrong.exception) and "configs/text2image-emoji.yaml" in str(wrong.exception)

    bad_suffix = _invoke("cat", "--model", str(run_dir), "--out", str(tmp_path / "x.txt"))
    assert "unknown image format '.txt'" in str(bad_suffix.exception)
    empty = _invoke("  ", "--model", str(run_dir), "--out", str(tmp_path / "x.png"))
    assert "prompt 1 is empty" in str(empty.exception)
    too_many = _invoke("cat", "--model", str(run_dir), "--out", str(tmp_path / "x.png"), "--n", "0")
    assert too_many.exit_code == 2 and "--n" in too_many.output
    long = _invoke("cat " * 20, "--model", str(run_dir), "--out", str(tmp_path / "long.png"))
    assert long.exit_code == 0 and "the text encoder reads the first 32" in long.output

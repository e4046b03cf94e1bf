"""``benchmarks/gan_results.py`` across sittings: a finished run folder is reused, an interrupted one is resumed
(``metaxfer resume``, its earlier time added), anything else (another kind of folder, a run of another configuration)
is refused with the way out. Nothing is trained: the child process is replaced by a stand-in that writes what a
finished run leaves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from metaxfer.engine import Run

TRANSFER = {"recipe": "gan-emoji-style", "quick": True, "command": "metaxfer train ...", "seconds": 12.0,
            "final": {"eval/cycle_l1": 0.3}, "transfer": {}, "ci": "95%"}
ROOT = Path(__file__).resolve().parents[2]


def _run_folder(gan_results, path: Path, state: str, overrides: tuple[str, ...] = ()) -> Path:
    """A run folder of the quick gan-emoji-style recipe as gan_results trains it (plus ``overrides``)."""
    from metaxfer.engine.config import config_to_yaml, load_config

    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"state": state}))
    given = [*gan_results.RECIPES["gan-emoji-style"][1], "threads=1", "device=cpu", *overrides]
    (path / "config.yaml").write_text(config_to_yaml(load_config(ROOT / "configs" / "gan-emoji-style.yaml", given)))
    return path


def test_a_finished_run_is_reused_without_training(load, tmp_path, monkeypatch):
    gan_results = load("gan_results")
    out = _run_folder(gan_results, tmp_path / "gan-emoji-style-quick", "finished")
    (out / "gan-results.json").write_text(json.dumps(TRANSFER))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a finished run must not be trained again"))
    assert gan_results.run_recipe("gan-emoji-style", quick=True, root=tmp_path, threads=1) == TRANSFER


def test_an_interrupted_run_is_resumed_and_its_time_adds_up(load, tmp_path, monkeypatch):
    gan_results = load("gan_results")
    out = _run_folder(gan_results, tmp_path / "gan-emoji-style-quick", "interrupted")
    (tmp_path / "sittings").mkdir()
    (tmp_path / "sittings" / "gan-emoji-style-quick.json").write_text(json.dumps({"seconds": 100.0}))
    monkeypatch.setattr(Run, "state", lambda self: "resumable")
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        (out / "summary.json").write_text(json.dumps({"final": {"eval/transfer/translated/acc": 0.5}}))
        return subprocess.CompletedProcess(cmd, 0, stdout="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    result = gan_results.run_recipe("gan-emoji-style", quick=True, root=tmp_path, threads=1)
    assert calls[0][-2:] == ["resume", str(out)]
    assert result["seconds"] >= 100.0 and result["transfer"] == {"translated": {"acc": 0.5}}
    assert json.loads((out / "gan-results.json").read_text())["seconds"] == result["seconds"]


@pytest.mark.parametrize("state", ["failed", "not a run"])
def test_other_folders_are_refused_with_the_way_out(load, tmp_path, monkeypatch, state):
    gan_results = load("gan_results")
    out = tmp_path / "gan-emoji-style-quick"
    if state == "not a run":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        _run_folder(gan_results, out, state)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(SystemExit, match=f"holds a {state} run: remove it or pass another --root"):
        gan_results.run_recipe("gan-emoji-style", quick=True, root=tmp_path, threads=1)
    assert (out / "notes.txt").exists() or state == "failed"


def test_a_finished_run_without_its_table_file_is_read_not_run_again(load, tmp_path, monkeypatch):
    gan_results = load("gan_results")
    out = _run_folder(gan_results, tmp_path / "gan-emoji-style-quick", "finished")
    (out / "summary.json").write_text(json.dumps({"final": {"eval/transfer/shots/acc": 0.25}}))
    monkeypatch.setattr(Run, "state", lambda self: "finished")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a finished run must not be run again"))
    result = gan_results.run_recipe("gan-emoji-style", quick=True, root=tmp_path, threads=1)
    assert result["transfer"] == {"shots": {"acc": 0.25}} and result["judged"] == {}
    assert (out / "gan-results.json").is_file()


def test_a_run_trained_with_another_configuration_is_refused(load, tmp_path, monkeypatch):
    gan_results = load("gan_results")
    out = _run_folder(gan_results, tmp_path / "gan-emoji-style-quick", "finished", overrides=("cyclegan.width=4",))
    (out / "gan-results.json").write_text(json.dumps(TRANSFER))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(SystemExit, match=r"another configuration .*cyclegan.width: 4 != 8.*remove it to train again"):
        gan_results.run_recipe("gan-emoji-style", quick=True, root=tmp_path, threads=1)

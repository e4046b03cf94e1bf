"""Exact resume through the real command line: SIGKILL (and Ctrl-C) a `metaxfer train` process, `metaxfer resume` it,
and compare with an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from metaxfer.cli.main import main
from metaxfer.engine import Run, list_checkpoints, load_config, train

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
STEPS = 200
OVERRIDES = ["device=cpu", f"train.steps={STEPS}", "train.checkpoint_every=20", "train.eval_every=40",
             "train.log_every=10"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same recipe trained without interruption (in this process: the CLI must give the same numbers)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train(load_config(TINY, OVERRIDES), out=out, progress_bar=False)
    return out


def _cli(*args: str, cwd: Path, stderr_path: Path) -> subprocess.Popen:
    with open(stderr_path, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "metaxfer", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=err)


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, *, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [s for s, _ in list_checkpoints(run_dir / "checkpoints")]
        if steps and steps[-1] >= at_least:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of step >= {at_least} appeared (process exit code {proc.poll()})")


def _resume(run_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metaxfer", "resume", str(run_dir), "--no-progress"], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _assert_same_run(run_dir: Path, ref: Path) -> None:
    final = f"checkpoints/step-{STEPS:08d}/tensors.safetensors"
    a, b = load_file(str(ref / final)), load_file(str(run_dir / final))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"
    rows = [(run_dir / "metrics.jsonl").read_text().splitlines(), (ref / "metrics.jsonl").read_text().splitlines()]
    assert [json.loads(r) for r in rows[0]] == [json.loads(r) for r in rows[1]]
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (run_dir, ref))
    for s in (sa, sb):
        s["best"].pop("checkpoint")
    assert (sa["final"], sa["best"], sa["last_train"], sa["step"]) == (sb["final"], sb["best"], sb["last_train"], sb["step"])


def test_sigkill_at_a_random_moment_then_resume_matches_an_uninterrupted_run(reference, tmp_path):
    rng = random.Random()
    after, delay = rng.choice([20, 40, 60, 80]), rng.uniform(0.0, 0.1)
    print(f"killing after the checkpoint of step {after} plus {delay:.3f} s")  # shown when the test fails
    run_dir = tmp_path / "run"
    proc = _cli("train", str(TINY), *OVERRIDES, "--out", str(run_dir), "--no-progress", cwd=tmp_path,
                stderr_path=tmp_path / "train.err")
    try:
        _wait_for_checkpoint(run_dir, proc, at_least=after)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed:\n" + (tmp_path / "train.err").read_text()
    assert Run.open(run_dir).state() == "resumable"
    assert not (run_dir / "summary.json").exists()
    done = _resume(run_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"finished {run_dir} at step {STEPS}" in done.stdout
    info = json.loads((run_dir / "run.json").read_text())
    assert info["state"] == "finished" and len(info["resumed"]) == 1
    _assert_same_run(run_dir, reference)


def test_ctrl_c_writes_a_final_checkpoint_and_exits_130(tmp_path):
    # (resuming after Ctrl-C is checked bit for bit in-process by test_engine_train.py)
    run_dir = tmp_path / "run"
    proc = _cli("train", str(TINY), *OVERRIDES, "--out", str(run_dir), "--no-progress", cwd=tmp_path,
                stderr_path=tmp_path / "train.err")
    try:
        _wait_for_checkpoint(run_dir, proc, at_least=20)
        proc.send_signal(signal.SIGINT)
    finally:
        proc.wait(timeout=60)
    err = (tmp_path / "train.err").read_text()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and f"metaxfer resume {run_dir}" in err
    stopped_at = json.loads((run_dir / "run.json").read_text())["step"]
    assert list_checkpoints(run_dir / "checkpoints")[-1][0] == stopped_at  # the checkpoint of the very last step
    assert Run.open(run_dir).state() == "resumable"
    assert stopped_at < STEPS and not (run_dir / "summary.json").exists()


# ----------------------------------------------------------------------------------------------- CLI, in-process
def _main(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["metaxfer", *argv])
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


def test_cli_print_config_and_clear_config_errors(monkeypatch, capsys):
    assert _main(monkeypatch, "train", str(TINY), "train.steps=7", "--device", "cpu", "--print-config") == 0
    out = capsys.readouterr().out
    assert "steps: 7" in out and "device: cpu" in out and "method: classifier" in out
    assert _main(monkeypatch, "train", str(TINY), "train.stpes=7") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'train.stpes'. Did you mean 'train.steps'?")


def test_cli_train_resume_and_runs_list(monkeypatch, capsys, tmp_path):
    assert _main(monkeypatch, "train", str(TINY), "train.steps=20", "train.eval_every=10", "--device", "cpu",
                 "--root", str(tmp_path / "runs"), "--no-progress") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"finished {tmp_path / 'runs'}/tiny-") and "eval/acc=" in out
    [run_dir] = (tmp_path / "runs").iterdir()
    assert _main(monkeypatch, "runs", "list", "--root", str(tmp_path / "runs")) == 0
    listing = capsys.readouterr().out
    assert "classifier" in listing and "finished" in listing and "20/20" in listing and "eval/acc" in listing
    assert _main(monkeypatch, "resume", str(run_dir)) == 2
    assert "already finished at step 20" in capsys.readouterr().err
    assert _main(monkeypatch, "resume", str(tmp_path)) == 2
    assert "is not a run folder" in capsys.readouterr().err

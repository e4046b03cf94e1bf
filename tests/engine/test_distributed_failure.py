"""A rank killed mid-run: ``torchrun -m metaxfer train`` stops with a clear error within a bounded time, leaves the
run resumable, and ``metaxfer resume`` finishes it with one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from metaxfer.engine import Run, list_checkpoints

STEPS = 120
KILL_AFTER = 10  # kill rank 1 once the checkpoint of this step exists
BOUND_S = 60.0  # the job must be over this long after the kill (the process group's timeout is 1800 s)

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds rank 1 through /proc (Linux)")


def _recipe(path: Path) -> Path:
    raw = {
        "method": "meta", "seed": 0, "threads": 1, "device": "cpu", "name": "killed",
        "data": {"domain": "synthetic", "options": {"num_classes": 30, "per_class": 12, "size": 16, "seed": 0}},
        "train": {"steps": STEPS, "log_every": 10, "eval_every": 100, "checkpoint_every": 5, "lr": 3e-3,
                  "tensorboard": False, "samples": False},
        "meta": {"algorithm": "protonet", "backbone_kwargs": {"hidden": 8}, "meta_batch": 2, "queries": 3,
                 "val_episodes": 4},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_pid(marker: str, rank: int) -> int | None:
    """The worker process of ``rank`` started by our torchrun (its environment carries ``marker``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if f"METAXFER_TEST_JOB={marker}".encode() in env and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def _newest_step(run_dir: Path) -> int:
    found = list_checkpoints(run_dir / "checkpoints")
    return found[-1][0] if found else -1


@pytest.mark.timeout(240)
def test_a_killed_rank_stops_the_job_with_a_clear_error_and_one_process_resumes_it(tmp_path):
    recipe, run_dir, marker = _recipe(tmp_path / "killed.yaml"), tmp_path / "run", uuid.uuid4().hex
    env = {**os.environ, "METAXFER_TEST_JOB": marker}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "metaxfer", "train", str(recipe), "--out", str(run_dir),
           "--no-progress"]
    with open(tmp_path / "job.log", "w") as log:
        job = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 150
        while _newest_step(run_dir) < KILL_AFTER and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = _rank_pid(marker, 1)
        assert job.poll() is None and victim is not None, (tmp_path / "job.log").read_text()[-3000:]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        job.wait(timeout=BOUND_S)
        stopped_after = time.monotonic() - killed_at
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    output = (tmp_path / "job.log").read_text()
    assert job.returncode != 0 and stopped_after < BOUND_S
    # rank 0's own message: what failed, why (a peer), and how to continue
    assert "process 0 of 2" in output and "Another process of the job stopped" in output, output[-3000:]
    assert f"metaxfer resume {run_dir}" in output
    run = Run.open(run_dir)
    stopped_at = _newest_step(run_dir)
    assert KILL_AFTER <= stopped_at < STEPS
    assert run.state() == "resumable"
    # run.json says why, unless torchrun's SIGTERM (sent to the survivors of a failure) beat rank 0 to writing it
    assert run.read_info().get("error") in (None,) or "DistributedError" in run.read_info()["error"]

    done = subprocess.run([sys.executable, "-m", "metaxfer", "resume", str(run_dir), "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    info = run.read_info()
    assert info["state"] == "finished" and info["step"] == STEPS
    assert info["resumed"][-1]["from_step"] == stopped_at and "processes" not in info["resumed"][-1]
    steps = [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()]
    assert steps == list(range(10, STEPS + 1, 10))  # no row lost or repeated across the kill

"""``benchmarks/meta_results.py`` across sittings: a job trains, evaluates and keeps its results in its folder; run
again it is read back without training; a job whose training was stopped resumes from its newest checkpoint, its
training time adding up; a folder written with other settings is refused with the way out. The job is the quick
digits ProtoNet of the script's own plan, cut to a few steps and episodes."""

from __future__ import annotations

import argparse
import json

import pytest

import metaxfer.engine


def _job(meta_results, tmp_path, *, episodes: int = 4) -> dict:
    args = argparse.Namespace(recipes=["digits"], algorithms=["protonet"], quick=True, steps=4, episodes=episodes,
                              threads=1)
    jobs, _ = meta_results.plan(args, tmp_path)
    assert len(jobs) == 1
    return jobs[0]


def test_a_finished_job_is_read_back_without_training(load, tmp_path, monkeypatch):
    meta_results = load("meta_results")
    job = _job(meta_results, tmp_path)
    first = meta_results.run_job(job)
    assert first["errors"] == {} and set(first["records"]) == set(job["settings"])
    assert first["records"]["5w1s"]["episodes"] == 4 and 0.0 <= first["records"]["5w1s"]["accuracy"] <= 1.0
    saved = json.loads((tmp_path / "digits" / "protonet" / meta_results.JOB_FILE).read_text())
    assert saved["result"] == first

    def no_training(*args, **kwargs):
        pytest.fail("a finished job must not be trained again")

    monkeypatch.setattr(metaxfer.engine, "train", no_training)
    monkeypatch.setattr(metaxfer.engine, "resume", no_training)
    assert meta_results.run_job(job) == first


def test_a_stopped_training_resumes_and_its_time_adds_up(load, tmp_path, ctrl_c):
    meta_results = load("meta_results")
    job = _job(meta_results, tmp_path)
    ctrl_c.at(1)
    stopped = meta_results.run_job(job)
    assert "stopped at step 2" in stopped["errors"]["run"] and "--out" in stopped["errors"]["run"]
    assert stopped["records"] == {}
    first_sitting = stopped["train_s"]
    ctrl_c.off()
    resumed = meta_results.run_job(job)
    assert resumed["errors"] == {} and set(resumed["records"]) == {"5w1s"}
    run = json.loads((tmp_path / "digits" / "protonet" / "run.json").read_text())
    assert run["state"] == "finished" and [r["from_step"] for r in run["resumed"]] == [2]
    assert resumed["train_s"] > first_sitting


def test_a_folder_of_other_settings_is_refused(load, tmp_path):
    meta_results = load("meta_results")
    meta_results.run_job(_job(meta_results, tmp_path, episodes=4))
    with pytest.raises(SystemExit, match=r"other settings \(episodes, overrides differ\).*choose another --out"):
        meta_results.run_job(_job(meta_results, tmp_path, episodes=6))

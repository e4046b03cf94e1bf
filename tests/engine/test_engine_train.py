"""The training loop in-process: run folders, determinism, NaN handling, early stop, clipping, output checks."""

from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from metaxfer.engine import (
    CheckpointError,
    ConfigError,
    Method,
    NonFiniteLossError,
    OutputError,
    Run,
    RunError,
    Step,
    StepOutput,
    list_runs,
    load_config,
    optimizer_for,
    option,
    register_method,
    resume,
    train,
)

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@dataclass
class ToyConfig:
    nan_at: int = option(-1, help="iteration whose loss is NaN")
    nan_above_lr: float = option(0.0, ge=0.0, help="...but only while the learning rate is above this")


@register_method("engine-test-toy")
class Toy(Method):
    """Linear regression on fresh Gaussian batches; can be told to produce a NaN loss."""

    section = "toy"
    Config = ToyConfig

    def __init__(self, cfg, *, device):
        super().__init__(cfg, device=device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        fixed = torch.Generator().manual_seed(123)
        self.w_true = torch.randn(4, 1, generator=fixed)
        self.x_eval = torch.randn(64, 4, generator=fixed)
        net = torch.nn.Linear(4, 1)
        self.modules = {"net": net}
        self.optimizers = {"net": optimizer_for(net.parameters(), cfg.train)}

    def steps(self):
        return [Step("fit", self.fit, optimizer="net")]

    def fit(self, iteration):
        x = torch.randn(16, 4, generator=self.gen)
        loss = F.mse_loss(self.modules["net"](x), x @ self.w_true)
        lr = self.optimizers["net"].param_groups[0]["lr"]
        if iteration == self.method_cfg.nan_at and lr > self.method_cfg.nan_above_lr:
            loss = loss * float("nan")
        return StepOutput(loss, {"loss": float(loss.detach())})

    def evaluate(self):
        with torch.no_grad():
            return {"loss": float(F.mse_loss(self.modules["net"](self.x_eval), self.x_eval @ self.w_true))}

    def generators(self):
        return {"data": self.gen}


def toy(*overrides: str):
    base = ["method=engine-test-toy", "device=cpu", "threads=1", "train.steps=20", "train.log_every=2",
            "train.eval_every=5", "train.checkpoint_every=5", "train.lr=0.05", "train.optimizer=sgd",
            "train.momentum=0.0", "train.amp=fp32"]
    return load_config(None, base + list(overrides))


def tiny(*overrides: str):
    base = ["device=cpu", "train.steps=40", "train.eval_every=20", "train.checkpoint_every=20", "train.log_every=10"]
    return load_config(TINY, base + list(overrides))


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "step-00000040" / "tensors.safetensors"))


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------------------------- run folders
def test_tiny_recipe_writes_a_complete_run(tmp_path):
    result = train(tiny("train.keep_last=1"), out=tmp_path / "run", progress_bar=False)
    run = tmp_path / "run"
    assert result.state == "finished" and result.step == 40 and result.run_dir == run
    assert result.final["eval/acc"] > 0.5  # 5 classes: chance is 0.2
    assert load_config(run / "config.yaml").train.steps == 40  # the resolved config, loadable as a recipe
    info = json.loads((run / "run.json").read_text())
    assert info["state"] == "finished" and info["seed"] == 0 and info["device"] == "cpu"
    assert {"python", "torch", "numpy", "metaxfer"} <= set(info["versions"]) and info["command"]
    assert [r["step"] for r in rows(run)] == [10, 20, 30, 40]
    assert {"train/loss", "train/acc", "lr", "eval/acc", "eval/loss"} <= set(rows(run)[1])
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000020.png", "step-00000040.png"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"] == result.final and summary["best"]["metric"] == "eval/acc"
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    best = json.loads((run / "checkpoints" / "best.json").read_text())
    assert kept == sorted({"best.json", "step-00000040", f"step-{best['step']:08d}"})
    [listed] = list_runs(tmp_path)
    assert (listed.state, listed.method, listed.step, listed.metric) == ("finished", "classifier", 40, "eval/acc")
    assert listed.value == best["value"]


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(tmp_path):
    a = train(tiny(), out=tmp_path / "a", progress_bar=False)
    b = train(tiny(), out=tmp_path / "b", progress_bar=False)
    c = train(tiny("seed=1"), out=tmp_path / "c", progress_bar=False)
    assert rows(a.run_dir) == rows(b.run_dir)
    ta, tb, tc = final_tensors(a.run_dir), final_tensors(b.run_dir), final_tensors(c.run_dir)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert not torch.equal(ta["modules/net/head.1.weight"], tc["modules/net/head.1.weight"])


def test_ctrl_c_writes_a_checkpoint_and_resume_is_exact(tmp_path, ctrl_c):
    ref = train(tiny(), out=tmp_path / "ref", progress_bar=False)
    ctrl_c.at(26)
    stopped = train(tiny(), out=tmp_path / "run", progress_bar=False)
    assert stopped.state == "interrupted" and stopped.step == 27
    assert (tmp_path / "run" / "checkpoints" / "step-00000027").is_dir()
    assert Run.open(tmp_path / "run").state() == "resumable"
    ctrl_c.off()
    done = resume(tmp_path / "run", progress_bar=False)
    assert done.state == "finished" and done.final == ref.final
    assert rows(tmp_path / "run") == rows(ref.run_dir)
    ta, tb = final_tensors(ref.run_dir), final_tensors(tmp_path / "run")
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_resume_refuses_finished_live_and_edited_runs(tmp_path):
    train(toy(), out=tmp_path / "done", progress_bar=False)
    with pytest.raises(RunError, match="already finished at step 20"):
        resume(tmp_path / "done")
    with pytest.raises(RunError, match="is not a run folder"):
        resume(tmp_path)
    # an interrupted run whose config was edited afterwards
    run = Run.open(tmp_path / "done")
    run.update_info(state="interrupted")
    text = run.config_path.read_text().replace("lr: 0.05", "lr: 0.07")
    run.config_path.write_text(text)
    with pytest.raises(CheckpointError, match=r"another config.*train.lr: 0.05 != 0.07"):
        resume(run.path)
    run.config_path.write_text(text.replace("lr: 0.07", "lr: 0.05"))
    run.acquire_lock()  # as if another process were training it
    try:
        with pytest.raises(RunError, match="in use by a live process"):
            resume(run.path)
        assert [r.state for r in list_runs(tmp_path)] == ["running"]
    finally:
        run.release_lock()


# ----------------------------------------------------------------------------------------------- NaN / Inf
def test_nan_loss_stops_naming_the_step_and_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as err:
        train(toy("toy.nan_at=12"), out=tmp_path / "run", progress_bar=False)
    msg = str(err.value)
    assert "loss of step 'fit' is nan at iteration 13" in msg
    assert f"Last good checkpoint: {tmp_path / 'run' / 'checkpoints' / 'step-00000010'}" in msg
    assert "train.on_nan=rollback" in msg
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["state"] == "failed" and "NonFiniteLossError" in info["error"]
    assert [r.state for r in list_runs(tmp_path)] == ["failed"]


def test_nan_loss_rolls_back_and_lowers_the_learning_rate(tmp_path):
    result = train(toy("toy.nan_at=12", "toy.nan_above_lr=0.03", "train.on_nan=rollback"), out=tmp_path / "run",
                   progress_bar=False)
    assert result.state == "finished" and result.step == 20
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rollbacks"] == 1
    logged = rows(tmp_path / "run")
    # the rows logged after the rollback point were dropped and logged again: each step once, in order
    assert [r["step"] for r in logged] == sorted(set(range(2, 21, 2)) | {5, 15})
    assert {r["lr"] for r in logged if "lr" in r and r["step"] <= 10} == {0.05}
    assert {r["lr"] for r in logged if "lr" in r and r["step"] > 10} == {0.025}


def test_rollbacks_are_bounded(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"at iteration 13; 2 rollback\(s\) did not help"):
        train(toy("toy.nan_at=12", "train.on_nan=rollback", "train.max_rollbacks=2"), out=tmp_path / "r",
              progress_bar=False)


# ----------------------------------------------------------------------------------------------- loop features
def test_early_stop_on_a_metric_that_stops_improving(tmp_path):
    # eval/loss falls steadily, so tracked with mode=max it never improves after the first evaluation
    result = train(toy("train.early_stop.metric=eval/loss", "train.early_stop.mode=max", "train.early_stop.patience=2"),
                   out=tmp_path / "run", progress_bar=False)
    assert result.stopped_early and result.step == 15 and result.best["step"] == 5
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stopped_early"] is True


def test_unknown_tracked_metric_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match=r"'eval/acc' is not among the metrics at step 5 .*eval/loss.*early_stop.metric"):
        train(toy("train.early_stop.metric=eval/acc"), out=tmp_path / "run", progress_bar=False)


def test_gradient_clipping_bounds_the_update(tmp_path):
    train(toy("train.steps=1", "train.lr=1.0", "train.grad_clip=0.01"), out=tmp_path / "run", progress_bar=False)
    ck = tmp_path / "run" / "checkpoints"
    before, after = (load_file(str(ck / name / "tensors.safetensors")) for name in ("step-00000000", "step-00000001"))
    delta = torch.cat([(after[k] - before[k]).flatten() for k in ("modules/net/weight", "modules/net/bias")])
    assert 0 < delta.norm() <= 0.01 + 1e-6
    assert rows(tmp_path / "run")[0]["fit/grad_norm"] > 0.01  # the unclipped norm is logged


def test_bf16_autocast_runs_on_the_cpu_and_fp16_is_refused(tmp_path):
    result = train(toy("train.amp=bf16"), out=tmp_path / "bf16", progress_bar=False)
    assert result.state == "finished"
    with pytest.raises(ConfigError, match="'fp16', which needs a CUDA device"):
        train(toy("train.amp=fp16"), out=tmp_path / "fp16", progress_bar=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="CUDA is not available here; use --device cpu"):
        train(toy("device=cuda"), out=tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------- output problems
def test_unwritable_output_folder_fails_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="a parent of it is a file"):
        train(toy(), out=tmp_path / "file" / "run", progress_bar=False)
    with pytest.raises(RunError, match="is not empty; `metaxfer resume"):
        train(toy(), out=train(toy(), out=tmp_path / "used", progress_bar=False).run_dir, progress_bar=False)


def test_too_little_disk_space_fails_before_training(tmp_path, monkeypatch):
    import metaxfer.engine.files as files

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: usage(2**30, 2**30 - 4096, 4096))
    with pytest.raises(OutputError, match=r"not enough free space in .*MiB free, the run needs about"):
        train(toy(), out=tmp_path / "run", progress_bar=False)
    assert not list((tmp_path / "run" / "checkpoints").iterdir())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["state"] == "failed"


def test_disk_filling_up_mid_run_names_the_last_checkpoint(tmp_path, monkeypatch):
    import metaxfer.engine.loop as loop

    real = loop.shutil.disk_usage
    usage = namedtuple("usage", "total used free")
    calls = {"n": 0}

    def filling(path):
        calls["n"] += 1
        # two checks before training, then one per checkpoint: steps 0 and 5 fit, step 10 does not
        return real(path) if calls["n"] <= 4 else usage(2**30, 2**30 - 10, 10)

    monkeypatch.setattr(loop.shutil, "disk_usage", filling)
    with pytest.raises(OutputError, match=r"checkpoint of step 10 .* The last checkpoint \(.*step-00000005\) is intact"):
        train(toy(), out=tmp_path / "run", progress_bar=False)
    assert Run.open(tmp_path / "run").state() == "resumable"  # once there is room again


# ----------------------------------------------------------------------------------------------- progress and logs
def test_plain_log_lines_without_a_terminal_and_a_bar_with_one(tmp_path, caplog, capsys):
    with caplog.at_level("INFO", logger="metaxfer.engine.progress"):
        train(toy(), out=tmp_path / "plain", progress_bar=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "metaxfer.engine.progress"]
    assert len(lines) == 12 and lines[-1].startswith("engine-test-toy step 20/20 fit/loss=")  # one per metrics row
    assert "eval/loss=" in lines[-1]
    train(toy(), out=tmp_path / "bar", progress_bar=True)
    assert "20/20" in capsys.readouterr().err


def test_tensorboard_event_files_when_installed(tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(toy(), out=tmp_path / "run", progress_bar=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"fit/loss", "lr", "eval/loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("eval/loss")] == [5, 10, 15, 20]


def test_a_failed_metrics_write_is_a_clear_error_and_leaves_the_run_resumable(tmp_path, monkeypatch):
    import errno

    class FullDisk:
        """metrics.jsonl on a disk that fills up at the row of step 12."""

        def __init__(self, fh):
            self.fh = fh

        def write(self, text):
            if json.loads(text)["step"] == 12:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(text)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    real_open = Run.open_metrics
    monkeypatch.setattr(Run, "open_metrics", lambda self: FullDisk(real_open(self)))
    with pytest.raises(OutputError, match=r"could not write the metrics or samples of step 12 .*No space left.*"
                                          r"The last checkpoint \(.*step-00000010\) is intact"):
        train(toy(), out=tmp_path / "run", progress_bar=False)
    monkeypatch.setattr(Run, "open_metrics", real_open)
    assert Run.open(tmp_path / "run").state() == "resumable"
    assert resume(tmp_path / "run", progress_bar=False).state == "finished"

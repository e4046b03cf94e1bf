"""Two processes (gloo on the loopback) against one: the same meta-gradients, the same weights after a few steps of
meta-learning and of a GAN through the engine, nothing written by rank 1, and a one-process run resumed by two.

One spawn of two workers does all the distributed work (starting Python and torch twice costs more than the work);
each test below checks one part of what they left behind.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from conftest import CtrlC  # tests/ is on sys.path (pytest's default "prepend" import mode)
from safetensors.torch import load_file, save_file

from metaxfer.data.episodes import Episode
from metaxfer.engine import Run, load_config, resume, train
from metaxfer.engine.distributed import Distributed, DistributedError, current
from metaxfer.meta import create_algorithm

pytestmark = pytest.mark.timeout(300)  # the module's two-process job runs in the first test's set-up

WORLD = 2
META_BATCH = 3  # does not divide by two: the shares are 2/3 and 1/3
STEPS = 4


# The weight comparisons train with SGD: Adam divides by the root of the second moment, which turns the rounding
# noise of gradients that are zero in exact arithmetic (a convolution's bias before a normalisation) into steps of
# the learning rate's size, in either direction; SGD keeps rounding differences at rounding size.
def meta_config() -> dict[str, Any]:
    """A small synthetic meta-learning run (16×16 blobs), ProtoNet, a meta-batch of three episodes."""
    return {
        "method": "meta", "seed": 0, "threads": 1, "device": "cpu", "name": "dist-meta",
        "data": {"domain": "synthetic", "options": {"num_classes": 30, "per_class": 12, "size": 16, "seed": 0}},
        "train": {"steps": STEPS, "log_every": 1, "eval_every": 2, "checkpoint_every": 2, "optimizer": "sgd",
                  "lr": 0.05, "tensorboard": False},
        "meta": {"algorithm": "protonet", "backbone_kwargs": {"hidden": 8}, "meta_batch": META_BATCH, "queries": 3,
                 "val_episodes": 4},
    }


def gan_config() -> dict[str, Any]:
    """CycleGAN between two synthetic domains, without normalisation layers or image pool: a batch's loss is the mean
    of per-image terms, so two half-batches give exactly the whole batch's gradient. (Instance norm would too, but a
    convolution bias just before it has a gradient that is zero in exact arithmetic and large rounding noise in float32
    on nearly flat feature maps: the two runs would drift apart in weights that change nothing.)"""
    return {
        "method": "cyclegan", "threads": 1, "device": "cpu", "seed": 0, "name": "dist-gan",
        "data": {"domain": "synthetic", "options": {"num_classes": 3, "per_class": 6, "size": 8, "seed": 0},
                 "batch_size": 4},
        "train": {"steps": STEPS, "eval_every": 2, "checkpoint_every": 2, "log_every": 1, "optimizer": "sgd",
                  "lr": 0.05, "tensorboard": False},
        "cyclegan": {"target": "synthetic", "size": 8, "width": 4, "blocks": 1, "downsamplings": 1, "d_width": 4,
                     "d_layers": 1, "pool_size": 0, "norm": "none",
                     "target_options": {"num_classes": 3, "per_class": 6, "size": 12, "seed": 5},
                     "transfer": {"enabled": True, "steps": 3, "batch_size": 8, "width": 4, "blocks": 1}},
    }


# ------------------------------------------------------------------------------------------------ meta-gradients
def episodes(n: int, *, ways: int = 3, shots: int = 2, queries: int = 2) -> list[Episode]:
    """``n`` random episodes of 16×16 images, the same on every process (a fixed seed)."""
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(n):
        def images(k: int) -> torch.Tensor:
            return torch.randint(0, 256, (ways * k, 1, 16, 16), generator=g, dtype=torch.uint8)

        out.append(Episode(support_x=images(shots), support_y=torch.arange(ways).repeat_interleave(shots),
                           query_x=images(queries), query_y=torch.arange(ways).repeat_interleave(queries),
                           classes=torch.arange(ways), class_keys=[str(c) for c in range(ways)], domain="random",
                           query_domain="random"))
    return out


ALGORITHMS = {"protonet": {}, "maml": {"inner_lr": 0.3, "inner_steps": 2},
              "reptile": {"inner_lr": 0.3, "inner_steps": 2}}


def meta_gradients(name: str, dist: Distributed, *, batch: list[Episode] | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The meta-gradient (float64) of a meta-batch of three episodes: this process's slice, summed over processes."""
    torch.manual_seed(0)
    algo = create_algorithm(name, ways=3, in_channels=1, image_size=16, backbone_kwargs={"hidden": 4},
                            **ALGORITHMS[name]).double()
    batch = episodes(META_BATCH) if batch is None else batch
    shard = dist.shard(len(batch), what="meta_batch") if dist.enabled else None
    out = algo.meta_loss(shard.take(batch) if shard else batch)
    out.loss.backward()
    params = [p for p in algo.parameters() if p.requires_grad]
    if shard is not None:
        dist.reduce_gradients(params, shard.share, what=name)
        _, metrics = dist.reduce_step(float(out.loss), out.metrics, shard.share, what=name)
    else:
        metrics = out.metrics
    names = [n for n, p in algo.named_parameters() if p.requires_grad]
    return {n: p.grad.clone() for n, p in zip(names, params) if p.grad is not None}, metrics


# ------------------------------------------------------------------------------------------------ the workers
def _worker(rank: int, port: int, root: str, interrupted_run: str) -> None:
    """One rank: meta-gradients, a meta run, a GAN run, then resuming a one-process run; each in its own cwd."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=120))
    try:
        out = Path(root) / "results"
        cwd = Path(root) / f"cwd-rank{rank}"
        cwd.mkdir()
        os.chdir(cwd)  # default run folders go under ./runs: rank 1's cwd must stay empty
        dist = current()
        report: dict[str, Any] = {"rank": dist.rank, "world_size": dist.world_size}
        for name in ALGORITHMS:
            grads, metrics = meta_gradients(name, dist)
            save_file(grads, str(out / f"{name}-rank{rank}.safetensors"))
            report[f"{name}_metrics"] = metrics
        report["meta"] = str(train(load_config(meta_config()), progress_bar=False).run_dir)
        report["gan"] = str(train(load_config(gan_config()), progress_bar=False).run_dir)
        resumed = resume(interrupted_run, progress_bar=False)
        report["resumed"] = {"state": resumed.state, "step": resumed.step}
        (out / f"report-rank{rank}.json").write_text(json.dumps(report))
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Single-process references, a single-process run stopped at step 2, then the two-process job."""
    root = tmp_path_factory.mktemp("dist")
    refs = root / "refs"
    meta_ref = train(load_config(meta_config()), out=refs / "meta", progress_bar=False)
    gan_ref = train(load_config(gan_config()), out=refs / "gan", progress_bar=False)
    with pytest.MonkeyPatch.context() as patch:  # a module-scoped fixture: no `monkeypatch`, so no `ctrl_c`
        CtrlC(patch).at(1)  # finishes iteration 2, writes its checkpoint, stops
        stopped = train(load_config(meta_config()), out=root / "one-then-two", progress_bar=False)
    assert stopped.state == "interrupted" and stopped.step == 2
    (root / "results").mkdir()
    mp.spawn(_worker, args=(_free_port(), str(root), str(stopped.run_dir)), nprocs=WORLD, join=True)
    reports = [json.loads((root / "results" / f"report-rank{r}.json").read_text()) for r in range(WORLD)]
    return {"root": root, "reports": reports, "meta_ref": meta_ref.run_dir, "gan_ref": gan_ref.run_dir,
            "resumed": stopped.run_dir}


def run_of(job: dict[str, Any], kind: str) -> Path:
    """Rank 0's run folder of ``kind`` (``train`` returned it relative to rank 0's working folder)."""
    return job["root"] / "cwd-rank0" / job["reports"][0][kind]


def final_tensors(run_dir: str | Path, step: int = STEPS) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "checkpoints" / f"step-{step:08d}" / "tensors.safetensors"))


def inert_keys(a: dict[str, torch.Tensor]) -> set[str]:
    """Checkpoint keys of the meta run's convolution biases (and their momentum): each sits right before a batch
    norm, which subtracts it again, so its gradient is zero in exact arithmetic and float32 rounding noise in
    practice; the one- and two-process runs get different noise in a weight that changes nothing."""
    algo = create_algorithm("protonet", ways=5, in_channels=1, image_size=16, backbone_kwargs={"hidden": 8})
    names = [n for n, p in algo.named_parameters() if p.requires_grad]
    inert = {i for i, n in enumerate(names) if n.endswith("conv.bias")}
    assert inert and all(f"modules/algorithm/{names[i]}" in a for i in inert)
    return {f"modules/algorithm/{names[i]}" for i in inert} | {
        k for k in a if k.startswith("optimizers/meta/state/") and int(k.split("/")[3]) in inert}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *,
                        start: dict[str, torch.Tensor] | None = None, ignore: set[str] = frozenset()) -> None:
    """Module weights and optimiser moments equal up to float32 rounding (two processes add in another order): within
    1e-4 of each tensor's largest value; with ``start``, also check that training moved the weights far more."""
    keys = [k for k in a if k.startswith(("modules/", "optimizers/")) and k not in ignore]
    assert keys and set(keys) <= set(b)
    if start is not None:
        moved = max(float((a[k] - start[k]).abs().max()) for k in keys if k.startswith("modules/")
                    and a[k].is_floating_point())
        assert moved > 1e-2
    for k in keys:
        if a[k].is_floating_point():
            scale = float(a[k].abs().max())
            torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4 * scale + 1e-8, msg=lambda m, k=k: f"{k}: {m}")
        else:
            assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_two_processes_give_the_meta_gradient_of_the_whole_meta_batch(job, name):
    whole, metrics = meta_gradients(name, Distributed())
    for rank in range(WORLD):
        got = load_file(str(job["root"] / "results" / f"{name}-rank{rank}.safetensors"))
        assert got.keys() == whole.keys()
        for k in whole:
            torch.testing.assert_close(got[k], whole[k], rtol=1e-10, atol=1e-12)
        reduced = job["reports"][rank][f"{name}_metrics"]
        assert reduced == pytest.approx(metrics, rel=1e-9)
    # not trivially true: rank 0's slice alone (two of the three episodes) has another gradient
    alone, _ = meta_gradients(name, Distributed(), batch=episodes(META_BATCH)[:2])
    assert any(not torch.allclose(alone[k], whole[k], rtol=1e-3) for k in whole)


def test_the_shards_split_an_uneven_batch_and_refuse_a_batch_smaller_than_the_job():
    shards = [Distributed(rank=r, world_size=3).shard(7) for r in range(3)]
    assert [(s.start, s.stop) for s in shards] == [(0, 3), (3, 5), (5, 7)]
    assert sum(s.share for s in shards) == pytest.approx(1.0)
    with pytest.raises(DistributedError, match=r"meta.meta_batch is 2, fewer than the 3 processes.*Raise"):
        Distributed(rank=0, world_size=3).shard(2, what="meta.meta_batch")


def test_meta_learning_through_the_engine_matches_one_process(job):
    reports = job["reports"]
    assert reports[0]["rank"] == 0 and reports[1]["rank"] == 1 and reports[0]["world_size"] == WORLD
    run = run_of(job, "meta")
    ref = final_tensors(job["meta_ref"])
    assert_same_weights(ref, final_tensors(run), start=final_tensors(run, 0), ignore=inert_keys(ref))
    # the episode generator drew the same global meta-batches: its state is the one-process state
    assert torch.equal(final_tensors(job["meta_ref"])["generators/episodes"], final_tensors(run)["generators/episodes"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (job["meta_ref"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["meta/loss"] == pytest.approx(ref[0]["meta/loss"], rel=1e-5)  # the global loss, not rank 0's
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == WORLD and Run.open(run).read_info()["processes"] == WORLD


def test_a_gan_through_the_engine_matches_one_process(job):
    run = run_of(job, "gan")
    assert_same_weights(final_tensors(job["gan_ref"]), final_tensors(run), start=final_tensors(run, 0))
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000002.png", "step-00000004.png"]
    # rank 0 ran the final transfer evaluation and wrote its results through Method.finish
    transfer = json.loads((run / "transfer.json").read_text())
    final = json.loads((run / "summary.json").read_text())["final"]
    assert transfer["method"] == "cyclegan" and transfer["step"] == STEPS
    assert set(transfer["sets"]) == {"source", "translated", "oracle"}
    for name, r in transfer["sets"].items():
        assert r["acc"] == pytest.approx(final[f"eval/transfer/{name}/acc"])
        assert r["ci_low"] <= r["acc"] <= r["ci_high"] and r["test_examples"] > 0


def test_only_rank_0_writes(job):
    rank0, rank1 = job["root"] / "cwd-rank0", job["root"] / "cwd-rank1"
    assert list(rank1.iterdir()) == []  # no run folder, no checkpoint, no sample, no log
    runs = sorted(p.name for p in (rank0 / "runs").iterdir())
    assert len(runs) == 2 and runs[0].startswith("dist-gan-") and runs[1].startswith("dist-meta-")
    for name in runs:
        run = rank0 / "runs" / name
        assert {"config.yaml", "run.json", "metrics.jsonl", "checkpoints", "samples", "summary.json"} <= \
            {p.name for p in run.iterdir()}
        assert Run.open(run).read_info()["state"] == "finished"
    # rank 1 was told rank 0's folder: both processes report the same run
    assert job["reports"][1]["meta"] == job["reports"][0]["meta"]


def test_a_run_trained_by_one_process_resumes_on_two_and_ends_like_one(job):
    assert [r["resumed"] for r in job["reports"]] == [{"state": "finished", "step": STEPS}] * WORLD
    run = job["resumed"]
    ref = final_tensors(job["meta_ref"])
    assert_same_weights(ref, final_tensors(run), ignore=inert_keys(ref))
    info = Run.open(run).read_info()
    assert info["state"] == "finished" and info["resumed"][-1]["from_step"] == 2
    assert info["resumed"][-1]["processes"] == WORLD
    rows = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4]


def test_finish_runs_once_after_a_normal_end_and_not_after_an_interrupt(tmp_path, monkeypatch, ctrl_c):
    from metaxfer.methods.classifier import Classifier

    calls: list[tuple[Path, bool, bool]] = []

    def finish(self: Classifier, run_dir: Path) -> None:
        calls.append((run_dir, (run_dir / "summary.json").exists(), (run_dir / "checkpoints" / "best.json").exists()))

    monkeypatch.setattr(Classifier, "finish", finish)
    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    overrides = ["device=cpu", "train.steps=6", "train.eval_every=3", "train.checkpoint_every=3",
                 "train.tensorboard=false"]
    ctrl_c.at(3)
    stopped = train(load_config(tiny, overrides), out=tmp_path / "run", progress_bar=False)
    assert stopped.state == "interrupted" and calls == []
    ctrl_c.off()
    done = resume(tmp_path / "run", progress_bar=False)
    assert done.state == "finished" and calls == [(tmp_path / "run", True, True)]

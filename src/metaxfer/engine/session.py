"""Starting and resuming runs: :func:`train` and :func:`resume`, what ``metaxfer train`` and ``metaxfer resume`` call.

Both lock the run folder for the lifetime of the process, keep ``run.json``'s state true (``running`` while
training, then ``finished``, ``interrupted`` or ``failed`` with the error), and leave resuming possible after any
failure that is not the run's own fault.

Under ``torchrun`` (``WORLD_SIZE`` > 1) both join the job first (:func:`metaxfer.engine.distributed.process_group`);
rank 0 creates, locks and writes the run folder and reads the checkpoint, and hands the other processes what they
need (the folder's path, the config, the checkpoint's state) over the process group, so they never touch the disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metaxfer.engine import checkpoint as ckpt_mod
from metaxfer.engine.config import ExperimentConfig, config_to_dict, config_to_yaml, load_config
from metaxfer.engine.device import cpu_threads, determinism
from metaxfer.engine.distributed import Distributed, DistributedError, process_group, rank_device
from metaxfer.engine.files import OutputError, atomic_write_text, check_output_dir
from metaxfer.engine.loop import RunResult, Trainer, monitored_metric
from metaxfer.engine.methods import METHODS
from metaxfer.engine.runs import Run, RunError, now_iso, versions

__all__ = ["train", "resume"]

log = logging.getLogger(__name__)


@contextmanager
def _guard(run: Run) -> Iterator[None]:
    """Record how the process leaves the run (``interrupted`` or ``failed`` with the error) and unlock it."""
    try:
        yield
    except KeyboardInterrupt:
        run.update_info(state="interrupted", error="stopped by a second Ctrl-C; resume from the last checkpoint")
        raise
    except (OutputError, DistributedError) as exc:  # the disk or a peer, not the run, is at fault: resumable
        resumable = bool(ckpt_mod.list_checkpoints(run.checkpoints))
        run.update_info(state="interrupted" if resumable else "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    except BaseException as exc:
        run.update_info(state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        run.release_lock()


def _main_guard(run: Run | None, dist: Distributed) -> contextlib.AbstractContextManager[None]:
    """:func:`_guard` on rank 0 (which owns the run folder); nothing on the other processes."""
    return _guard(run) if dist.is_main and run is not None else contextlib.nullcontext()


def _finish(run: Run, result: RunResult) -> RunResult:
    if result.state == "finished":
        run.update_info(state="finished", step=result.step, error=None)
    else:
        run.update_info(state="interrupted", step=result.step,
                        error=f"interrupted at step {result.step}; `metaxfer resume {run.path}` continues it")
    return result


def _processes(dist: Distributed) -> dict[str, Any]:
    return {"processes": dist.world_size} if dist.enabled else {}


def train(
    cfg: ExperimentConfig,
    *,
    out: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] = "runs",
    progress_bar: bool | None = None,
) -> RunResult:
    """Start a new run of ``cfg`` and train it to the end.

    Args:
        cfg: A config from :func:`metaxfer.engine.config.load_config`.
        out: The run folder (must not exist or be empty); default ``root/<name>-<time>``.
        root: Parent folder of default run folders.
        progress_bar: Force the terminal progress bar on or off (default: on when stderr is a terminal).

    Returns:
        How the run ended; the run folder is ``result.run_dir``.

    Raises:
        ConfigError: The config does not work here (e.g. CUDA asked for but absent).
        OutputError: The output folder is not writable or the disk is too full (before any training).
        NonFiniteLossError: A loss became NaN or infinite (see ``train.on_nan``).
        DistributedError: Another process of a distributed job failed (the run stays resumable).
    """
    with process_group() as dist:
        device = rank_device(cfg.device, dist)
        run: Run | None = None

        def create() -> str:
            nonlocal run
            run = Run.create(name=cfg.name, out=out, root=root)
            run.acquire_lock()
            metric, mode = monitored_metric(cfg, METHODS.get(cfg.method))
            run.write_info({
                "name": cfg.name, "method": cfg.method, "seed": cfg.seed, "device": str(device),
                "deterministic": cfg.deterministic, "steps": cfg.train.steps,
                "headline": {"metric": metric, "mode": mode}, "state": "running", "started": now_iso(),
                "updated": now_iso(), **run.process_info(), **_processes(dist), "versions": versions(), "resumed": [],
            })
            return str(run.path)

        path = dist.from_main(create, what="creating the run folder")
        if run is None:
            run = Run(path)  # the other processes know the folder's name and never touch it
        with _main_guard(run, dist):
            if dist.is_main:
                atomic_write_text(run.config_path, config_to_yaml(cfg))
            with determinism(cfg.deterministic), cpu_threads(cfg.threads):
                trainer = Trainer(cfg, run, device=device, progress_bar=progress_bar)
                if dist.is_main:
                    need = trainer.estimate_checkpoint_bytes() * (cfg.train.keep_last + 2)
                    check_output_dir(run.path, need_bytes=need)
                log.info("run %s: method %s on %s, %d steps%s", run.path, cfg.method, device, cfg.train.steps,
                         f", {dist.world_size} processes" if dist.enabled else "")
                result = trainer.run_loop()
            return _finish(run, result) if dist.is_main else result


def _open_for_resume(run: Run, info: dict[str, Any], extra: Sequence[str]) -> tuple[dict[str, Any], Any, Path]:
    """Rank 0's part of :func:`resume` inside the run's guard: the plain config, the newest checkpoint and its path."""
    cfg = load_config(run.config_path, extra)
    removed = ckpt_mod.remove_partial_checkpoints(run.checkpoints)
    if removed:
        log.info("removed %d partial checkpoint(s) left by the killed process", len(removed))
    last = ckpt_mod.latest_checkpoint(run.checkpoints)
    if last is None:
        raise ckpt_mod.CheckpointError(f"run {run.path} has no complete checkpoint to resume from; start it again "
                                       "with metaxfer train")
    ckpt = ckpt_mod.load_checkpoint(last, config=config_to_dict(cfg))
    return config_to_dict(cfg), ckpt, last


def resume(run_dir: str | os.PathLike[str], *, device: str | None = None, progress_bar: bool | None = None,
           overrides: Sequence[str] = ()) -> RunResult:
    """Continue a run from its newest checkpoint; it ends exactly as if it had never stopped.

    Any number of processes may resume a run, whatever number trained it (the checkpoint holds the global state).

    Args:
        run_dir: The run folder.
        device: Train on this device instead of the one in the config (``cpu``, ``cuda``, ``auto``).
        progress_bar: As for :func:`train`.
        overrides: Extra ``key=value`` overrides; only keys checkpoints ignore (``device``, ``deterministic``) can
            change, any other change is refused by the checkpoint's config check.

    Returns:
        How the run ended.

    Raises:
        RunError: Not a run folder, a run that already finished, or a run another process is training.
        CheckpointError: No usable checkpoint, or one from another config or format.
        DistributedError: Another process of a distributed job failed.
    """
    extra = list(overrides) + ([f"device={device}"] if device else [])
    with process_group() as dist:
        run: Run | None = None
        info: dict[str, Any] = {}

        def open_run() -> str:
            nonlocal run, info
            opened = Run.open(run_dir)
            info = opened.read_info()
            if info.get("state") == "finished":
                raise RunError(f"run {opened.path} already finished at step {info.get('step')}; start a new one with "
                               "metaxfer train")
            opened.acquire_lock()
            run = opened
            return str(opened.path)

        path = dist.from_main(open_run, what="opening the run folder")
        if run is None:
            run = Run(path)
        with _main_guard(run, dist):
            plain, ckpt, last = dist.from_main(lambda: _open_for_resume(run, info, extra),
                                               what="reading the newest checkpoint")
            cfg = load_config(plain)
            resolved = rank_device(cfg.device, dist)
            with determinism(cfg.deterministic), cpu_threads(cfg.threads):
                trainer = Trainer(cfg, run, device=resolved, progress_bar=progress_bar)
                trainer.restore(ckpt)
                if dist.is_main:
                    dropped = run.truncate_metrics(ckpt.step)
                    best = trainer.best
                    if best is not None:
                        ckpt_mod.write_best_pointer(run.checkpoints, step=best["step"], metric=trainer.metric,
                                                    value=best["value"])
                    entry = {"at": now_iso(), "from_step": ckpt.step, **_processes(dist)}
                    resumed = list(info.get("resumed", [])) + [entry]
                    run.update_info(state="running", error=None, device=str(resolved), resumed=resumed,
                                    **run.process_info(), **_processes(dist))
                    log.info("resuming %s from step %d (%s); dropped %d metric row(s) logged after it", run.path,
                             ckpt.step, last.name, dropped)
                result = trainer.run_loop()
            return _finish(run, result) if dist.is_main else result

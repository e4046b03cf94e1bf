"""Starting and resuming runs: :func:`train` and :func:`resume`, what ``metaxfer train`` and ``metaxfer resume`` call.

Both lock the run folder for the lifetime of the process, keep ``run.json``'s state true (``running`` while
training, then ``finished``, ``interrupted`` or ``failed`` with the error), and leave resuming possible after any
failure that is not the run's own fault.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from metaxfer.engine import checkpoint as ckpt_mod
from metaxfer.engine.config import ExperimentConfig, config_to_dict, config_to_yaml, load_config
from metaxfer.engine.device import cpu_threads, determinism, resolve_device
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
    except OutputError as exc:  # the disk, not the run, is at fault: resumable once there is room again
        resumable = bool(ckpt_mod.list_checkpoints(run.checkpoints))
        run.update_info(state="interrupted" if resumable else "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    except BaseException as exc:
        run.update_info(state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        run.release_lock()


def _finish(run: Run, result: RunResult) -> RunResult:
    if result.state == "finished":
        run.update_info(state="finished", step=result.step, error=None)
    else:
        run.update_info(state="interrupted", step=result.step,
                        error=f"interrupted at step {result.step}; `metaxfer resume {run.path}` continues it")
    return result


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
    """
    device = resolve_device(cfg.device)
    run = Run.create(name=cfg.name, out=out, root=root)
    run.acquire_lock()
    metric, mode = monitored_metric(cfg, METHODS.get(cfg.method))
    run.write_info({
        "name": cfg.name, "method": cfg.method, "seed": cfg.seed, "device": str(device),
        "deterministic": cfg.deterministic, "steps": cfg.train.steps, "headline": {"metric": metric, "mode": mode},
        "state": "running", "started": now_iso(), "updated": now_iso(), **run.process_info(), "versions": versions(),
        "resumed": [],
    })
    with _guard(run):
        atomic_write_text(run.config_path, config_to_yaml(cfg))
        with determinism(cfg.deterministic), cpu_threads(cfg.threads):
            trainer = Trainer(cfg, run, device=device, progress_bar=progress_bar)
            need = trainer.estimate_checkpoint_bytes() * (cfg.train.keep_last + 2)
            check_output_dir(run.path, need_bytes=need)
            log.info("run %s: method %s on %s, %d steps", run.path, cfg.method, device, cfg.train.steps)
            result = trainer.run_loop()
        return _finish(run, result)


def resume(run_dir: str | os.PathLike[str], *, device: str | None = None, progress_bar: bool | None = None,
           overrides: Sequence[str] = ()) -> RunResult:
    """Continue a run from its newest checkpoint; it ends exactly as if it had never stopped.

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
    """
    run = Run.open(run_dir)
    info = run.read_info()
    if info.get("state") == "finished":
        raise RunError(f"run {run.path} already finished at step {info.get('step')}; start a new one with metaxfer train")
    run.acquire_lock()
    with _guard(run):
        extra = list(overrides) + ([f"device={device}"] if device else [])
        cfg = load_config(run.config_path, extra)
        removed = ckpt_mod.remove_partial_checkpoints(run.checkpoints)
        if removed:
            log.info("removed %d partial checkpoint(s) left by the killed process", len(removed))
        last = ckpt_mod.latest_checkpoint(run.checkpoints)
        if last is None:
            raise ckpt_mod.CheckpointError(f"run {run.path} has no complete checkpoint to resume from; start it again "
                                           "with metaxfer train")
        ckpt = ckpt_mod.load_checkpoint(last, config=config_to_dict(cfg))
        resolved = resolve_device(cfg.device)
        with determinism(cfg.deterministic), cpu_threads(cfg.threads):
            trainer = Trainer(cfg, run, device=resolved, progress_bar=progress_bar)
            trainer.restore(ckpt)
            dropped = run.truncate_metrics(ckpt.step)
            best = trainer.best
            if best is not None:
                ckpt_mod.write_best_pointer(run.checkpoints, step=best["step"], metric=trainer.metric, value=best["value"])
            resumed = list(info.get("resumed", [])) + [{"at": now_iso(), "from_step": ckpt.step}]
            run.update_info(state="running", error=None, device=str(resolved), resumed=resumed, **run.process_info())
            log.info("resuming %s from step %d (%s); dropped %d metric row(s) logged after it", run.path, ckpt.step,
                     last.name, dropped)
            result = trainer.run_loop()
        return _finish(run, result)

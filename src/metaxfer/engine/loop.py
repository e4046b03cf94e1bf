"""The one training loop every method runs through.

Each iteration calls the method's step functions in order. For a step that returns a loss, the engine does the
rest: zeroes the gradients, runs the step under autocast (mixed precision), checks the loss is finite, scales and
back-propagates it, clips the gradient norm and steps the optimiser. After the steps, every optimiser's
learning-rate schedule advances. Then, as configured: a metrics row (averaged over the log window), an evaluation
with best-model tracking and early stopping, sample pictures, and a checkpoint.

Exact resume: a checkpoint holds every piece of state that later iterations read (weights, optimiser and scheduler
state, the global and the method's RNG states, the method's data position, the loop's counters and its partial log
window), and it is written after everything of its iteration (metrics, evaluation, samples). Resuming from it and
dropping the metric rows logged after it replays the rest of the run exactly.

With several processes (:mod:`metaxfer.engine.distributed`), each step's loss and metrics are reduced over the
processes before the NaN check (so every process takes the same branch), gradients are all-reduced before each
optimiser step, floating-point buffers are averaged after each iteration, and the loop's decisions (interrupt, early
stop, new best) are agreed once per iteration. Only rank 0 evaluates and writes the run folder; at each checkpoint
every process checks that it holds the same weights as the others.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from metaxfer.engine import checkpoint as ckpt_mod
from metaxfer.engine import distributed
from metaxfer.engine.config import ExperimentConfig, config_to_dict
from metaxfer.engine.device import amp_settings, seed_everything
from metaxfer.engine.distributed import DistributedError
from metaxfer.engine.files import OutputError, atomic_write_json
from metaxfer.engine.methods import METHODS, Method, Step, StepOutput
from metaxfer.engine.optim import make_scheduler, scale_learning_rate
from metaxfer.engine.progress import Progress, TensorBoardSink
from metaxfer.engine.runs import Run
from metaxfer.engine.state import capture_rng, restore_rng
from metaxfer.errors import MetaxferError

__all__ = ["Trainer", "RunResult", "NonFiniteLossError", "monitored_metric"]

log = logging.getLogger(__name__)


class NonFiniteLossError(MetaxferError, FloatingPointError):
    """A loss became NaN or infinite and the run stopped."""


class _NonFinite(Exception):
    """Internal: raised by an iteration whose loss (or gradient norm) is not finite."""

    def __init__(self, step: str, what: str, value: float) -> None:
        super().__init__(f"{what} of step {step!r} is {value}")
        self.step, self.what, self.value = step, what, value


@dataclass
class RunResult:
    """How a run ended.

    Attributes:
        run_dir: The run folder.
        state: ``"finished"`` or ``"interrupted"`` (Ctrl-C or SIGTERM; a checkpoint was written, resume it).
        step: Completed iterations.
        final: The last evaluation's metrics.
        best: ``{"step", "metric", "value", "checkpoint"}`` of the best evaluation, or ``None``.
        stopped_early: Whether early stopping ended the run.
    """

    run_dir: Path
    state: str
    step: int
    final: dict[str, float]
    best: dict[str, Any] | None
    stopped_early: bool


def monitored_metric(cfg: ExperimentConfig, method: type[Method]) -> tuple[str, str]:
    """The ``(metric, mode)`` that picks the best checkpoint and drives early stopping.

    ``train.early_stop.metric`` if set, else the method's headline. Mode ``auto`` takes the headline's mode for the
    headline metric, ``min`` for names containing loss, err, nll, fid or kid, and ``max`` otherwise.
    """
    es = cfg.train.early_stop
    metric = es.metric or method.headline[0]
    if es.mode != "auto":
        return metric, es.mode
    if metric == method.headline[0]:
        return metric, method.headline[1]
    lowered = metric.lower()
    return metric, "min" if any(w in lowered for w in ("loss", "err", "nll", "fid", "kid")) else "max"


class Trainer:
    """Runs one method's training in one run folder.

    In a distributed job (``torch.distributed`` initialised, see :mod:`metaxfer.engine.distributed`) every process
    builds a Trainer; ``run`` is the same folder everywhere but only rank 0 touches it.

    Args:
        cfg: The resolved config.
        run: The run folder (created and locked by the caller; on ranks other than 0 never read or written).
        device: Where to train.
        progress_bar: Force the progress bar on or off (``None``: on when stderr is a terminal).
    """

    def __init__(self, cfg: ExperimentConfig, run: Run, *, device: torch.device, progress_bar: bool | None = None) -> None:
        self.cfg, self.run, self.device, self.progress_bar = cfg, run, device, progress_bar
        self.dist = distributed.current(device)
        method_cls = METHODS.get(cfg.method)
        seed_everything(cfg.seed)
        with self.dist.local_main_first():  # one process per machine fills the domain cache, then the others read it
            self.method = method_cls(cfg, device=device)
        self.dist.broadcast_modules(self.method.modules.values())
        self.steps: list[Step] = list(self.method.steps())
        self._check_steps()
        self.schedulers = {name: make_scheduler(opt, cfg.train) for name, opt in self.method.optimizers.items()}
        self.amp = amp_settings(cfg.train.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp.needs_scaler)
        self.metric, self.mode = monitored_metric(cfg, method_cls)
        self.config_plain = config_to_dict(cfg)
        # loop state (all of it goes into checkpoints)
        self.step = 0
        self.window_sums: dict[str, float] = {}
        self.window_counts: dict[str, int] = {}
        self.best: dict[str, Any] | None = None
        self.bad_evals = 0
        self.rollbacks = 0
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}
        self.stopped_early = False
        # this process only
        self._interrupt: int = 0
        self._checkpoint_bytes = 0
        self._saved_step = -1
        self._metrics_fh: IO[str] | None = None
        self._progress: Progress | None = None
        self._lr_used: dict[str, float] = {}
        self._buffer_share: float | None = None
        self._fork_rank_rng()

    def _fork_rank_rng(self) -> None:
        """Ranks other than 0 move their global RNGs (dropout, ...) to a stream of their own, derived from the seed,
        the rank and the step; rank 0 keeps the state a single process would have. The method's own generators
        stay shared: they draw the global batches."""
        if self.dist.rank > 0:
            seed_everything((self.cfg.seed * 1_000_003 + self.dist.rank * 7_919 + self.step * 104_729) % 2**63)

    def _check_steps(self) -> None:
        if not self.steps:
            raise MetaxferError(f"method {self.cfg.method!r} returned no steps from steps()")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise MetaxferError(f"method {self.cfg.method!r} has steps with the same name: {names}")
        for s in self.steps:
            if s.optimizer is not None and s.optimizer not in self.method.optimizers:
                raise MetaxferError(
                    f"step {s.name!r} of method {self.cfg.method!r} names optimizer {s.optimizer!r}, which is not in "
                    f"its optimizers ({', '.join(self.method.optimizers) or 'none'})"
                )
            if s.repeat < 1:
                raise MetaxferError(f"step {s.name!r}: repeat must be >= 1, got {s.repeat}")

    # ------------------------------------------------------------------ state
    def state_tree(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here, as tensors and plain data."""
        return {
            "modules": {n: m.state_dict() for n, m in self.method.modules.items()},
            "optimizers": {n: o.state_dict() for n, o in self.method.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "generators": {n: g.get_state() for n, g in self.method.generators().items()},
            "method": self.method.state_dict(),
            "loop": {
                "step": self.step,
                "window_sums": self.window_sums,
                "window_counts": self.window_counts,
                "best": self.best,
                "bad_evals": self.bad_evals,
                "rollbacks": self.rollbacks,
                "last_eval": self.last_eval,
                "last_train": self.last_train,
                "stopped_early": self.stopped_early,
            },
            "rng": capture_rng(),
        }

    def restore(self, ckpt: ckpt_mod.Checkpoint) -> None:
        """Load a checkpoint's state into the method, optimisers, schedulers, RNGs and loop counters."""
        s = ckpt.state
        try:
            for group, live in (("modules", self.method.modules), ("optimizers", self.method.optimizers),
                                ("schedulers", self.schedulers), ("generators", self.method.generators())):
                if set(s[group]) != set(live):
                    raise ckpt_mod.CheckpointError(
                        f"checkpoint {ckpt.path} has {group} {sorted(s[group])}, the method has {sorted(live)}"
                    )
            for name, module in self.method.modules.items():
                module.load_state_dict(s["modules"][name])
            for name, opt in self.method.optimizers.items():
                opt.load_state_dict(s["optimizers"][name])
            for name, sched in self.schedulers.items():
                sched.load_state_dict(s["schedulers"][name])
            if s["scaler"] and self.scaler.is_enabled():
                self.scaler.load_state_dict(s["scaler"])
            for name, gen in self.method.generators().items():
                gen.set_state(s["generators"][name])
            self.method.load_state_dict(s["method"])
        except (RuntimeError, KeyError, ValueError) as exc:
            if isinstance(exc, ckpt_mod.CheckpointError):
                raise
            raise ckpt_mod.CheckpointError(f"checkpoint {ckpt.path} does not fit the method: {exc}") from exc
        loop = s["loop"]
        self.step = int(loop["step"])
        self.window_sums, self.window_counts = dict(loop["window_sums"]), dict(loop["window_counts"])
        self.best, self.bad_evals, self.rollbacks = loop["best"], int(loop["bad_evals"]), int(loop["rollbacks"])
        self.last_eval, self.last_train = dict(loop["last_eval"]), dict(loop["last_train"])
        self.stopped_early = bool(loop["stopped_early"])
        restore_rng(s["rng"])
        self._saved_step = self.step
        self._fork_rank_rng()

    def estimate_checkpoint_bytes(self) -> int:
        """A generous guess of one checkpoint's size before any is written (weights plus two moments each)."""
        weights = sum(t.numel() * t.element_size() for m in self.method.modules.values() for t in m.state_dict().values())
        return 3 * weights + 2**20

    # ------------------------------------------------------------------ one iteration
    def _iteration(self, it: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        clip = self.cfg.train.grad_clip
        dist = self.dist
        for step in self.steps:
            opt = self.method.optimizers[step.optimizer] if step.optimizer is not None else None
            sums: dict[str, float] = {}
            for _ in range(step.repeat):
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                with self.amp.autocast():
                    out = step.fn(it)
                if not isinstance(out, StepOutput):
                    raise MetaxferError(f"step {step.name!r} must return a StepOutput, got {type(out).__name__}")
                values = {k: float(v) for k, v in out.metrics.items()}
                loss = float(out.loss.detach()) if out.loss is not None else values.get("loss")
                share = out.share if out.share is not None else 1.0 / dist.world_size
                if dist.enabled:  # global loss and metrics on every process: all take the same NaN branch
                    what = f"step {step.name!r} of iteration {it + 1}"
                    local_loss = float(out.loss.detach()) if out.loss is not None else None
                    global_loss, values = dist.reduce_step(local_loss, values, share, what=what)
                    loss = global_loss if out.loss is not None else values.get("loss")
                    if out.share is not None:
                        self._buffer_share = out.share
                if loss is not None and not math.isfinite(loss):
                    raise _NonFinite(step.name, "loss", loss)
                if out.loss is not None:
                    if opt is None:
                        raise MetaxferError(f"step {step.name!r} returned a loss but names no optimizer to step")
                    self.scaler.scale(out.loss).backward()
                    if dist.enabled:
                        dist.reduce_gradients([p for g in opt.param_groups for p in g["params"]], share,
                                              what=f"step {step.name!r} of iteration {it + 1}")
                    if clip > 0:
                        self.scaler.unscale_(opt)
                        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
                        norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
                        if not math.isfinite(norm) and not self.scaler.is_enabled():
                            raise _NonFinite(step.name, "gradient norm", norm)
                        values["grad_norm"] = norm
                    self.scaler.step(opt)
                    self.scaler.update()
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
            for k, v in sums.items():
                metrics[f"{step.name}/{k}"] = v / step.repeat
        self._lr_used = self._learning_rates()
        self._step_schedulers()
        dist.average_buffers(self.method.modules.values(), self._buffer_share)
        return metrics

    def _step_schedulers(self) -> None:
        """Advance every learning-rate schedule by one iteration.

        A schedule counts iterations, not its optimiser's steps: an optimiser that sits out a phase (text2image's
        generator and discriminator while the encoders train) comes in where the schedule is, as the config's
        ``train.steps`` describes it. PyTorch warns when a scheduler steps before its optimiser ever has; here that
        is the intended order, so that one warning is silenced (the optimisers that do step always step first).
        """
        for sched in self.schedulers.values():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                sched.step()

    # ------------------------------------------------------------------ logging, evaluation, checkpoints
    def _learning_rates(self) -> dict[str, float]:
        if len(self.method.optimizers) == 1:
            return {"lr": float(next(iter(self.method.optimizers.values())).param_groups[0]["lr"])}
        return {f"lr/{n}": float(o.param_groups[0]["lr"]) for n, o in self.method.optimizers.items()}

    def _window_row(self, metrics: dict[str, float], s: int) -> dict[str, float]:
        for k, v in metrics.items():
            self.window_sums[k] = self.window_sums.get(k, 0.0) + v
            self.window_counts[k] = self.window_counts.get(k, 0) + 1
        if s % self.cfg.train.log_every and s != self.cfg.train.steps:
            return {}
        row = {k: self.window_sums[k] / self.window_counts[k] for k in self.window_sums}
        row.update(self._lr_used)
        self.window_sums, self.window_counts = {}, {}
        self.last_train = dict(row)
        return row

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """The method's modules in eval mode (batch norm reads its running statistics and does not update them)."""
        modes = {n: m.training for n, m in self.method.modules.items()}
        for m in self.method.modules.values():
            m.eval()
        try:
            yield
        finally:
            for n, m in self.method.modules.items():
                m.train(modes[n])

    def _evaluate(self) -> dict[str, float]:
        with self._eval_mode():
            raw = self.method.evaluate()
        return {f"eval/{k}": float(v) for k, v in raw.items()}

    def _track(self, row: dict[str, float], s: int) -> bool:
        """Update best and early-stop counters from an evaluation row; return whether it is a new best."""
        if self.metric not in row:
            raise MetaxferError(
                f"the tracked metric {self.metric!r} is not among the metrics at step {s} "
                f"({', '.join(sorted(row))}); set train.early_stop.metric to one of them"
            )
        value = row[self.metric]
        delta = self.cfg.train.early_stop.min_delta
        improved = math.isfinite(value) and (
            self.best is None
            or (value > self.best["value"] + delta if self.mode == "max" else value < self.best["value"] - delta)
        )
        if improved:
            self.best = {"step": s, "value": value}
            self.bad_evals = 0
        else:
            self.bad_evals += 1
            patience = self.cfg.train.early_stop.patience
            if patience and self.bad_evals >= patience:
                self.stopped_early = True
                log.info("early stop at step %d: %s has not improved for %d evaluations", s, self.metric, patience)
        return improved

    def _save_samples(self, s: int) -> None:
        with self._eval_mode():  # drawing samples must not change training state (it runs on rank 0 only)
            images = self.method.samples()
        if images is None:
            return
        from metaxfer.data.grid import image_grid, save_image

        side = int(images.shape[-1])
        grid = image_grid(images.detach().cpu(), columns=self.method.sample_columns, scale=max(1, min(4, 64 // side)),
                          title=f"{self.cfg.name} step {s}")
        save_image(grid, self.run.samples / f"step-{s:08d}.png")

    def _checkpoint(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0; every process first checks the weights agree)."""
        self.dist.check_same(self.method.modules, step=self.step)
        if not self.dist.is_main:
            self._saved_step = self.step
            return None
        folder = self.run.checkpoints
        if self._metrics_fh is not None:
            self._metrics_fh.flush()
            os.fsync(self._metrics_fh.fileno())
        need = int(1.2 * self._checkpoint_bytes)
        free = shutil.disk_usage(folder).free
        if need and free < need:
            last = ckpt_mod.latest_checkpoint(folder)
            then = (f"The last checkpoint ({last}) is intact: free some space and run `metaxfer resume {self.run.path}`"
                    if last is not None else "No checkpoint was written yet: free some space and train again")
            raise OutputError(
                f"not enough free space for the checkpoint of step {self.step} in {folder}: {free / 2**20:.1f} MiB "
                f"free, {need / 2**20:.1f} MiB needed. {then}"
            )
        path = ckpt_mod.save_checkpoint(folder, self.step, config=self.config_plain, state=self.state_tree())
        self._checkpoint_bytes = sum(f.stat().st_size for f in path.iterdir())
        self._saved_step = self.step
        best_steps = [self.best["step"]] if self.best is not None else []
        if self.best is not None and self.best["step"] == self.step:
            ckpt_mod.write_best_pointer(folder, step=self.step, metric=self.metric, value=self.best["value"])
        ckpt_mod.prune_checkpoints(folder, keep_last=self.cfg.train.keep_last, keep_steps=best_steps)
        return path

    def _best_record(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        return {"step": self.best["step"], "metric": self.metric, "value": self.best["value"],
                "checkpoint": str(self.run.checkpoints / ckpt_mod.checkpoint_name(self.best["step"]))}

    @contextmanager
    def _output_errors(self, what: str) -> Iterator[None]:
        """Turn a failed write (full disk, vanished folder) into an OutputError naming the last good checkpoint."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            last = ckpt_mod.latest_checkpoint(self.run.checkpoints)
            raise OutputError(
                f"could not write {what} in {self.run.path}: {exc}. The last checkpoint ({last}) is intact: fix the "
                f"problem and run `metaxfer resume {self.run.path}`"
            ) from exc

    # ------------------------------------------------------------------ NaN / Inf
    def _handle_non_finite(self, problem: _NonFinite, it: int) -> None:
        train = self.cfg.train

        def decide() -> tuple[Path | None, ckpt_mod.Checkpoint | None]:  # rank 0 reads; every process gets it
            newest = ckpt_mod.latest_checkpoint(self.run.checkpoints)
            if train.on_nan == "rollback" and newest is not None and self.rollbacks < train.max_rollbacks:
                return newest, ckpt_mod.load_checkpoint(newest)
            return newest, None

        last, ckpt = self.dist.from_main(decide, what=f"the rollback after a non-finite loss at iteration {it + 1}")
        where = f"the {problem.what} of step {problem.step!r} is {problem.value} at iteration {it + 1}"
        if ckpt is not None:
            rollbacks = self.rollbacks + 1
            self.restore(ckpt)
            self.rollbacks = rollbacks
            for sched in self.schedulers.values():
                scale_learning_rate(sched, train.nan_lr_factor)
            self._reopen_metrics(ckpt.step)
            if self._progress is not None:
                self._progress.rewind(ckpt.step)
            log.warning("%s; rolled back to %s and scaled the learning rate by %g (rollback %d of %d)", where, last,
                        train.nan_lr_factor, rollbacks, train.max_rollbacks)
            return
        if train.on_nan == "rollback" and last is not None:
            detail = f"; {train.max_rollbacks} rollback(s) did not help"
        else:
            detail = ""
        raise NonFiniteLossError(
            f"{where}{detail}; the run stopped. Last good checkpoint: {last}. Lower train.lr, set train.grad_clip, or "
            "set train.on_nan=rollback to roll back and lower the learning rate automatically"
        )

    def _reopen_metrics(self, step: int) -> None:
        if not self.dist.is_main:
            return
        if self._metrics_fh is not None:
            self._metrics_fh.close()
        self.run.truncate_metrics(step)
        self._metrics_fh = self.run.open_metrics()

    # ------------------------------------------------------------------ signals
    @contextmanager
    def _signals(self) -> Iterator[None]:
        """First Ctrl-C / SIGTERM: finish the iteration and write a checkpoint; a second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._interrupt:
                raise KeyboardInterrupt
            self._interrupt = signum

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    @contextmanager
    def _peer_failures(self) -> Iterator[None]:
        """A failed collective: log it at once (``torchrun`` stops this process soon after a peer fails, maybe before
        the error reaches the command line) and say how to resume."""
        try:
            yield
        except DistributedError as exc:
            last = f" from {ckpt_mod.latest_checkpoint(self.run.checkpoints)}" if self.dist.is_main else ""
            message = (f"{exc}. The run is resumable{last} on any number of processes: "
                       f"`metaxfer resume {self.run.path}` (under torchrun or not)")
            log.error("%s", message)
            raise DistributedError(message) from exc

    # ------------------------------------------------------------------ the loop
    def run_loop(self) -> RunResult:
        """Train from the current step to ``train.steps`` (or an early stop or an interrupt).

        After a normal end, rank 0 writes ``summary.json`` and calls the method's :meth:`~Method.finish`.
        """
        cfg, total, dist = self.cfg, self.cfg.train.steps, self.dist
        main = dist.is_main
        t0 = time.perf_counter()
        self._progress = Progress(total=total, initial=self.step, name=cfg.name, bar=self.progress_bar, quiet=not main)
        tb = TensorBoardSink(self.run.path / "tensorboard", purge_step=self.step + 1 if self.step else None) \
            if cfg.train.tensorboard and main else None
        self._metrics_fh = self.run.open_metrics() if main else None
        if self._checkpoint_bytes == 0 and main:
            self._checkpoint_bytes = self.estimate_checkpoint_bytes()
        state = "finished"
        try:
            with self._signals(), self._peer_failures():
                first = dist.from_main(lambda: not ckpt_mod.list_checkpoints(self.run.checkpoints),
                                       what="looking for checkpoints")
                if first:
                    self._checkpoint()  # step 0: a killed run can always be resumed
                while self.step < total and not self.stopped_early:
                    try:
                        metrics = self._iteration(self.step)
                    except _NonFinite as problem:
                        self._handle_non_finite(problem, self.step)
                        continue
                    self.step += 1
                    s = self.step
                    row = self._window_row(metrics, s)
                    evaluated = s % cfg.train.eval_every == 0 or s == total
                    new_best = False
                    if evaluated and main:  # rank 0 evaluates; the others wait in agree()
                        ev = self._evaluate()
                        self.last_eval = dict(ev)
                        row.update(ev)
                        new_best = self._track(row, s)
                    if dist.enabled:
                        stop_now, self.stopped_early, new_best = dist.agree(
                            [bool(self._interrupt), self.stopped_early, new_best], what=f"the end of iteration {s}")
                        if stop_now and not self._interrupt:
                            self._interrupt = signal.SIGTERM
                    if main:
                        with self._output_errors(f"the metrics or samples of step {s}"):
                            if row:
                                line = {"step": s, **row}
                                self._metrics_fh.write(json.dumps(line) + "\n")
                                if tb is not None:
                                    tb.write(line)
                            if evaluated and cfg.train.samples:
                                self._save_samples(s)
                    self._progress.update(s, row or None)
                    if (s % cfg.train.checkpoint_every == 0 or s == total or new_best or self.stopped_early
                            or self._interrupt):
                        self._checkpoint()
                    if self._interrupt and s < total and not self.stopped_early:
                        state = "interrupted"
                        self._progress.message(f"interrupted at step {s}; checkpoint written")
                        break
                if self._saved_step != self.step:
                    self._checkpoint()
        finally:
            self._progress.close()
            if tb is not None:
                tb.close()
            if self._metrics_fh is not None:
                self._metrics_fh.close()
            self._metrics_fh = None
        result = RunResult(run_dir=self.run.path, state=state, step=self.step, final=dict(self.last_eval),
                           best=self._best_record(), stopped_early=self.stopped_early)
        if state == "finished" and main:
            summary = {"state": state, "step": self.step, "steps": total, "stopped_early": self.stopped_early,
                       "final": self.last_eval, "last_train": self.last_train, "best": result.best,
                       "rollbacks": self.rollbacks, "device": str(self.device), "amp": self.amp.describe(),
                       "elapsed_s": round(time.perf_counter() - t0, 3)}
            if dist.enabled:
                summary["processes"] = dist.world_size
            atomic_write_json(self.run.summary_path, summary)
            self.method.finish(self.run.path)
        return dist.from_main(lambda: result, what="the end of training")

"""Run folders: what a training run writes, and how ``metaxfer runs list`` reads them back.

A run folder (``runs/<name>-<YYYYmmdd-HHMMSS>/`` by default) holds:

- ``config.yaml``: the resolved config (recipe plus overrides plus defaults);
- ``run.json``: seed, method, device, command line, versions of python / torch / numpy / metaxfer, start time, the
  process id and the state (``running``, ``finished``, ``failed``, ``interrupted``);
- ``metrics.jsonl``: one JSON object per logged step (``{"step": 50, "train/loss": 0.4, "eval/acc": 0.9, ...}``);
- ``checkpoints/``: ``step-XXXXXXXX/`` folders and ``best.json``;
- ``samples/``: PNG pictures from the method at each evaluation;
- ``summary.json``: final and best metrics, written when the run ends;
- ``.lock``: held (``flock``) while a process trains in the folder, so a killed run is told apart from a live one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

import metaxfer
from metaxfer.engine.checkpoint import list_checkpoints
from metaxfer.engine.files import OutputError, atomic_write_json, atomic_write_text, check_output_dir
from metaxfer.errors import MetaxferError

try:  # POSIX only; elsewhere a run's liveness falls back to its recorded state
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Run", "RunSummary", "RunError", "SittingClock", "list_runs", "versions", "now_iso"]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


class RunError(MetaxferError, ValueError):
    """A folder is not a run, or a run is in a state that forbids the request (e.g. resuming a live run)."""


def now_iso() -> str:
    """The current local time, ISO 8601 with seconds."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions of the software a run depends on."""
    import omegaconf
    import safetensors

    return {
        "python": platform.python_version(),
        "metaxfer": metaxfer.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "omegaconf": omegaconf.__version__,
        "cuda": str(torch.version.cuda),
    }


class Run:
    """One run folder.

    Args:
        path: The folder.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fh: IO[str] | None = None

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def info_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, *, name: str, out: str | os.PathLike[str] | None = None, root: str | os.PathLike[str] = "runs",
               need_bytes: int = 0) -> Run:
        """Make a new, empty run folder.

        Args:
            name: Run name; the folder is ``root/<name>-<time>`` unless ``out`` is given.
            out: Exact folder to use; it must not exist or be empty.
            root: Parent of default run folders.
            need_bytes: Free space to require (see :func:`metaxfer.engine.files.check_output_dir`).

        Raises:
            RunError: ``out`` already holds files.
            OutputError: The folder cannot be created or written, or the disk is too full.
        """
        if out is not None:
            path = Path(out)
            if path.is_dir() and any(path.iterdir()):
                hint = f"`metaxfer resume {path}` continues it" if (path / RUN_FILE).exists() else "choose another --out"
                raise RunError(f"output folder {path} is not empty; {hint}")
        else:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            base = Path(root) / f"{_safe_name(name)}-{stamp}"
            path, k = base, 1
            while path.exists():
                k += 1
                path = base.with_name(f"{base.name}-{k}")
        check_output_dir(path, need_bytes=need_bytes)
        run = cls(path)
        run.checkpoints.mkdir(exist_ok=True)
        run.samples.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """An existing run folder.

        Raises:
            RunError: ``path`` has no ``run.json`` or ``config.yaml``.
        """
        run = cls(path)
        if not run.info_path.is_file() or not run.config_path.is_file():
            raise RunError(f"{path} is not a run folder (it needs {RUN_FILE} and config.yaml); `metaxfer runs list` "
                           "shows the runs")
        return run

    # ------------------------------------------------------------------ run.json
    def read_info(self) -> dict[str, Any]:
        """The contents of ``run.json``."""
        try:
            return json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunError(f"cannot read {self.info_path}: {exc}") from None

    def write_info(self, info: dict[str, Any]) -> None:
        """Replace ``run.json`` atomically."""
        atomic_write_json(self.info_path, info)

    def update_info(self, **changes: Any) -> dict[str, Any]:
        """Change some fields of ``run.json`` (and its ``updated`` time); return the new contents."""
        info = self.read_info() if self.info_path.exists() else {}
        info.update(changes)
        info["updated"] = now_iso()
        self.write_info(info)
        return info

    def process_info(self) -> dict[str, Any]:
        """Fields describing the current process, stored at each start and resume."""
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": list(sys.argv)}

    # ------------------------------------------------------------------ lock
    def acquire_lock(self) -> None:
        """Mark the run as live for as long as this process holds the folder.

        Raises:
            RunError: Another live process holds it.
        """
        if fcntl is None:  # pragma: no cover - Windows
            return
        fh = open(self.path / ".lock", "a+", encoding="utf-8")  # noqa: SIM115  (held open on purpose)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            pid = self.read_info().get("pid", "?") if self.info_path.exists() else "?"
            raise RunError(f"run {self.path} is in use by a live process (pid {pid}); wait for it or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def release_lock(self) -> None:
        """Give the run folder up (also happens when the process dies)."""
        if self._lock_fh is not None:
            if fcntl is not None:
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def is_live(self) -> bool:
        """Whether some process holds the run's lock right now."""
        if self._lock_fh is not None:
            return True
        lock = self.path / ".lock"
        if fcntl is None or not lock.exists():
            return False
        with open(lock, encoding="utf-8") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False

    # ------------------------------------------------------------------ metrics
    def open_metrics(self) -> IO[str]:
        """``metrics.jsonl`` opened for appending (line-buffered)."""
        try:
            return open(self.metrics_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot open {self.metrics_path} for writing: {exc.strerror}") from exc

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete row of ``metrics.jsonl`` (a torn last line from a killed process is skipped)."""
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate_metrics(self, step: int) -> int:
        """Keep only the rows of steps ``<= step`` (those a checkpoint of ``step`` had seen); return how many were
        dropped. Rewritten atomically."""
        if not self.metrics_path.exists():
            return 0
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(row.get("step", 0)) <= step:
                kept.append(line)
        atomic_write_text(self.metrics_path, "".join(f"{line}\n" for line in kept))
        return len(lines) - len(kept)

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json``, or ``None`` if the run has not ended."""
        if not self.summary_path.exists():
            return None
        return json.loads(self.summary_path.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ state
    def state(self) -> str:
        """``running``, ``finished``, ``failed`` or ``resumable`` (interrupted, or killed with a checkpoint left)."""
        info = self.read_info()
        recorded = info.get("state", "failed")
        if recorded == "finished":
            return "finished"
        if self.is_live():
            return "running"
        if recorded == "failed":
            return "failed"
        return "resumable" if list_checkpoints(self.checkpoints) else "failed"


class SittingClock:
    """Adds this sitting's wall time to the earlier sittings' in a JSON file (``{"seconds": total}``): every
    ``every`` seconds (from a background thread), when the ``with`` block ends (also by an exception or Ctrl-C), and
    on :meth:`write`. A sitting killed outright (the machine taken away) so loses at most ``every`` seconds of the
    record. ``metaxfer run`` keeps one per comparison folder, ``benchmarks/gan_results.py`` one per run folder.

    Args:
        path: The JSON file.
        earlier: Seconds of the earlier sittings (default: what ``path`` holds, 0 when it does not exist).
        every: Seconds between two writes while the sitting runs.
    """

    def __init__(self, path: str | os.PathLike[str], *, earlier: float | None = None, every: float = 60.0) -> None:
        self.path, self.every = Path(path), every
        self.earlier = self.recorded(self.path) if earlier is None else earlier
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sitting-clock", daemon=True)

    @staticmethod
    def recorded(path: str | os.PathLike[str]) -> float:
        """The seconds a clock file holds (0 when it is missing or unreadable)."""
        try:
            return float(json.loads(Path(path).read_text(encoding="utf-8")).get("seconds", 0.0))
        except (OSError, ValueError, AttributeError):
            return 0.0

    def write(self) -> float:
        """Record the time so far; return it (seconds over every sitting)."""
        total = self.earlier + time.perf_counter() - self.t0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"seconds": total})
        return total

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.write()
            except OSError as exc:  # a full disk must not stop the work; the final write raises
                log.warning("could not record the sitting's time in %s: %s", self.path, exc)

    def __enter__(self) -> SittingClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.write()


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return cleaned or "run"


@dataclass
class RunSummary:
    """One line of ``metaxfer runs list``."""

    path: Path
    name: str
    method: str
    state: str
    step: int
    steps: int
    metric: str
    value: float | None
    started: str


def _last_metric(rows: list[dict[str, Any]], metric: str) -> float | None:
    for row in reversed(rows):
        if metric in row:
            return row[metric]
    return None


def list_runs(root: str | os.PathLike[str] = "runs") -> list[RunSummary]:
    """Every run folder under ``root`` (searched two levels deep), oldest first.

    The headline metric is the best value recorded (``checkpoints/best.json``), else the last one logged.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    candidates = sorted({p.parent for p in root.glob(RUN_FILE)} | {p.parent for p in root.glob(f"*/{RUN_FILE}")}
                        | {p.parent for p in root.glob(f"*/*/{RUN_FILE}")})
    out = []
    for path in candidates:
        try:
            run = Run.open(path)
            info = run.read_info()
            state = run.state()
        except (RunError, OSError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        rows = run.read_metrics()
        metric = info.get("headline", {}).get("metric", "")
        best_file = run.checkpoints / "best.json"
        value = None
        if best_file.exists():
            best = json.loads(best_file.read_text(encoding="utf-8"))
            value = best.get("value") if best.get("metric") == metric else None
        if value is None and metric:
            value = _last_metric(rows, metric)
        step = max([int(r.get("step", 0)) for r in rows] + [int(info.get("step") or 0)])
        out.append(RunSummary(path=path, name=info.get("name", path.name), method=info.get("method", "?"),
                              state=state, step=step, steps=int(info.get("steps", 0)), metric=metric,
                              value=value, started=info.get("started", "")))
    return sorted(out, key=lambda r: (r.started, str(r.path)))

"""Progress and metric sinks: a live bar on a terminal, plain log lines elsewhere, TensorBoard when installed.

The bar (tqdm) is used when stderr is a terminal; in CI and other non-terminal output, each metrics row becomes one
``logging`` line of the ``metaxfer.engine.progress`` logger (the ``metaxfer`` command shows it at INFO level).
TensorBoard event files are written to ``<run>/tensorboard/`` when ``torch.utils.tensorboard`` can be imported (the
``tensorboard`` extra).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Progress", "TensorBoardSink", "format_metrics", "PROGRESS_LOGGER"]

PROGRESS_LOGGER = "metaxfer.engine.progress"
log = logging.getLogger(PROGRESS_LOGGER)


def format_metrics(row: Mapping[str, Any], *, limit: int = 8) -> str:
    """``key=value`` pairs of a metrics row (without ``step``), floats with 4 significant digits."""
    parts = []
    for key, value in row.items():
        if key == "step":
            continue
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}" if math.isfinite(value) else f"{key}={value}")
        else:
            parts.append(f"{key}={value}")
        if len(parts) == limit:
            break
    return " ".join(parts)


class Progress:
    """Reports training progress.

    Args:
        total: Iterations of the whole run.
        initial: Iterations already done (when resuming).
        name: Shown before the bar or in each line.
        bar: Force the bar on or off; ``None``: on when stderr is a terminal.
        quiet: Report nothing at all (the processes other than rank 0 of a distributed job).
    """

    def __init__(self, *, total: int, initial: int = 0, name: str = "train", bar: bool | None = None,
                 quiet: bool = False) -> None:
        self.total = total
        self.name = name
        self.quiet = quiet
        self._last_step = initial
        self._t0 = time.perf_counter()
        self._t_last = self._t0
        self._step_last_line = initial
        use_bar = not quiet and (sys.stderr.isatty() if bar is None else bar)
        self._bar = None
        if use_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=name, dynamic_ncols=True, file=sys.stderr,
                             leave=True, smoothing=0.1)

    def update(self, step: int, row: Mapping[str, Any] | None = None) -> None:
        """Advance to ``step``; ``row`` is the metrics row written at this step, if any."""
        if self._bar is not None:
            self._bar.update(step - self._last_step)
            if row:
                self._bar.set_postfix_str(format_metrics(row, limit=5), refresh=False)
        elif row and not self.quiet:
            now = time.perf_counter()
            rate = (step - self._step_last_line) / max(now - self._t_last, 1e-9)
            self._t_last, self._step_last_line = now, step
            log.info("%s step %d/%d %s (%.1f it/s)", self.name, step, self.total, format_metrics(row), rate)
        self._last_step = step

    def rewind(self, step: int) -> None:
        """Go back to ``step`` (after a rollback)."""
        if self._bar is not None:
            self._bar.n = step
            self._bar.refresh()
        self._last_step = self._step_last_line = step

    def message(self, text: str) -> None:
        """A line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif not self.quiet:
            log.info("%s", text)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TensorBoardSink:
    """Writes each metrics row as TensorBoard scalars, or does nothing when TensorBoard is not installed.

    Args:
        folder: Where the event files go.
        purge_step: When resuming, events after this step (written before the crash) are dropped by TensorBoard.
    """

    def __init__(self, folder: Path, *, purge_step: int | None = None) -> None:
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logging.getLogger(__name__).debug("tensorboard is not installed; no event files (pip install metaxfer[tensorboard])")
            return
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def write(self, row: Mapping[str, Any]) -> None:
        """Add every numeric value of ``row`` at ``row["step"]``."""
        if self.writer is None:
            return
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None

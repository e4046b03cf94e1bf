"""Test-wide settings: a private domain cache for the session, fixed threads, quiet logging; shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

torch.set_num_threads(1)  # tests use tiny tensors: one thread is fastest, and immune to a busy machine


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Pin one thread for every test, whatever a test before it set (a busy machine makes two threads crawl)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test run builds domains into its own cache folder, so tests never depend on a user's cache."""
    if "METAXFER_TEST_KEEP_CACHE" not in os.environ:
        os.environ["METAXFER_CACHE"] = str(tmp_path_factory.mktemp("metaxfer-cache"))


@pytest.fixture
def checkpoint_tensors() -> Callable[[Path, int], dict[str, torch.Tensor]]:
    """``checkpoint_tensors(run_dir, step)``: the tensors of a run's checkpoint at ``step``, by name."""

    def load(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
        return load_file(str(run_dir / "checkpoints" / f"step-{step:08d}" / "tensors.safetensors"))

    return load


class CtrlC:
    """A Ctrl-C in the middle of a training run: ``at(iteration)`` patches ``Trainer._iteration`` (through the given
    ``pytest.MonkeyPatch``) so that iteration ``iteration`` (0-based, as the loop counts) starts with a SIGINT sent to
    this process, which arrives mid-iteration as a real Ctrl-C would: the run finishes that iteration, writes a
    checkpoint at step ``iteration + 1`` and stops. With ``raise_keyboard_interrupt=True`` the iteration raises
    ``KeyboardInterrupt`` instead (a second Ctrl-C: the run stops at once). ``off()`` puts the original back, e.g.
    before resuming.

    Tests take the ``ctrl_c`` fixture; where no fixture is at hand (a wider-scoped fixture), build one over
    ``pytest.MonkeyPatch.context()``: ``from conftest import CtrlC``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from metaxfer.engine.loop import Trainer  # imported here: collecting tests that never train stays light

        self._monkeypatch, self._trainer, self._original = monkeypatch, Trainer, Trainer._iteration

    def at(self, iteration: int, *, raise_keyboard_interrupt: bool = False) -> None:
        original = self._original

        def iteration_with_ctrl_c(trainer: Any, it: int) -> dict[str, float]:
            if it == iteration:
                if raise_keyboard_interrupt:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGINT)  # arrives mid-iteration, as a real Ctrl-C would
            return original(trainer, it)

        self._monkeypatch.setattr(self._trainer, "_iteration", iteration_with_ctrl_c)

    def off(self) -> None:
        self._monkeypatch.setattr(self._trainer, "_iteration", self._original)


@pytest.fixture
def ctrl_c(monkeypatch: pytest.MonkeyPatch) -> CtrlC:
    """``ctrl_c.at(iteration)``: a Ctrl-C during that iteration of the next runs; ``ctrl_c.off()``: no more (see
    :class:`CtrlC`)."""
    return CtrlC(monkeypatch)


# ------------------------------------------------------------------------------------- benchmark scripts
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch):
    """``load(name)``: import ``benchmarks/<name>.py`` as a fresh module; ``sys.path`` and ``peers`` are restored."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put benchmarks/ on sys.path to import peers
    monkeypatch.delitem(sys.modules, "peers", raising=False)

    def _load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    yield _load
    sys.modules.pop("peers", None)

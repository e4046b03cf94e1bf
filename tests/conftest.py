"""Test-wide settings: a private domain cache for the session, fixed threads, quiet logging; shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

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

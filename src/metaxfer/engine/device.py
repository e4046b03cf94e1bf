"""Devices, mixed precision, seeding and determinism: the same code path on the CPU and on CUDA."""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from metaxfer.engine.config import ConfigError

__all__ = ["resolve_device", "AmpSettings", "amp_settings", "seed_everything", "determinism", "cpu_threads"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises:
        ConfigError: CUDA is asked for but not available, or the device index does not exist.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    return device


@dataclass(frozen=True)
class AmpSettings:
    """Mixed precision for one run.

    Attributes:
        dtype: The autocast dtype, or ``None`` for full precision.
        device_type: ``"cpu"`` or ``"cuda"`` (autocast's device type).
    """

    dtype: torch.dtype | None
    device_type: str

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        """float16 needs loss scaling; bfloat16 does not."""
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The autocast context (a no-op when disabled)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).replace("torch.", "")


def amp_settings(mode: str, device: torch.device) -> AmpSettings:
    """Resolve ``train.amp`` for ``device``.

    ``auto`` is bfloat16 on CUDA devices that support it, float16 on older CUDA devices, and ``fp32`` (no autocast)
    on the CPU, where autocast is slower than float32 for small networks. ``bf16`` works on both; ``fp16`` needs
    CUDA.

    Raises:
        ConfigError: ``fp16`` on a CPU.
    """
    kind = device.type
    if mode == "fp32" or (mode == "auto" and kind != "cuda"):
        return AmpSettings(None, kind)
    if mode == "auto":
        return AmpSettings(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16, kind)
    if mode == "bf16":
        return AmpSettings(torch.bfloat16, kind)
    if kind != "cuda":
        raise ConfigError("config key 'train.amp' is 'fp16', which needs a CUDA device; use 'bf16' or 'fp32' here")
    return AmpSettings(torch.float16, kind)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (torch's covers every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def determinism(enabled: bool) -> Iterator[None]:
    """Within the block, ask PyTorch for deterministic kernels (when ``enabled``); restore the settings after.

    CPU runs are deterministic anyway. On CUDA this sets ``torch.use_deterministic_algorithms`` (warning, not
    failing, for operations that have no deterministic kernel), turns off cuDNN autotuning, and sets
    ``CUBLAS_WORKSPACE_CONFIG`` as cuBLAS requires.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Within the block, PyTorch uses ``count`` CPU threads (0: leave the current setting); restored after.

    Small networks often train faster on one thread, and results on the CPU can depend on the thread count, so a
    run that must be reproduced bit for bit fixes it in its config.
    """
    if count <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)

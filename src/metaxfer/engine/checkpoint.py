"""Checkpoints: one folder per step, tensors in safetensors and everything else as JSON; written atomically.

Layout of ``checkpoints/step-00000100/``:

- ``tensors.safetensors``: module weights and buffers, optimiser moments, RNG states (as uint8 tensors), ...
- ``state.json``: the format version, metaxfer and torch versions, the step, the resolved config, and the state tree
  (optimiser hyper-parameters, scheduler state, loop counters, ...) with ``{"__tensor__": name}`` where a tensor was.

A checkpoint is written into a hidden temporary folder (``.tmp-step-...``), every file is fsynced, then the folder is
renamed to its final name: a reader sees a complete checkpoint or none. Loading reads JSON and safetensors only, so it
never unpickles anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import metaxfer
from metaxfer.engine.config import ConfigError, config_diff, config_to_dict, load_config
from metaxfer.engine.files import OutputError, atomic_write_json, fsync_dir, is_disk_full
from metaxfer.engine.state import StateError, decode_state, encode_state
from metaxfer.errors import MetaxferError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "resolve_checkpoint",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "prune_checkpoints",
    "remove_partial_checkpoints",
    "checkpoint_name",
    "write_best_pointer",
    "read_best_pointer",
    "RESUME_IGNORED_KEYS",
]

log = logging.getLogger(__name__)

#: Version of the on-disk layout; a checkpoint of another format is refused with a clear error.
CHECKPOINT_FORMAT = 1
TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"
BEST_FILE = "best.json"
#: Config keys that may differ between a checkpoint and the config it is resumed with.
RESUME_IGNORED_KEYS = ("device", "deterministic")
_NAME = re.compile(r"step-(\d{8,})")


class CheckpointError(MetaxferError, ValueError):
    """A checkpoint is missing, damaged, of another format, or from another config."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: Its folder.
        step: Completed training iterations when it was written.
        config: The resolved config it was written with (plain data).
        state: The decoded state tree (tensors on the CPU).
        metaxfer_version: The metaxfer version that wrote it.
    """

    path: Path
    step: int
    config: dict[str, Any]
    state: dict[str, Any]
    metaxfer_version: str


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint of ``step`` (zero-padded so names sort by step)."""
    return f"step-{step:08d}"


def save_checkpoint(
    folder: str | os.PathLike[str], step: int, *, config: Mapping[str, Any], state: Mapping[str, Any]
) -> Path:
    """Write a checkpoint atomically.

    Args:
        folder: The run's ``checkpoints/`` folder (created if missing).
        step: Completed iterations.
        config: The resolved config as plain data.
        state: The state tree: nested plain data and tensors (see :mod:`metaxfer.engine.state`).

    Returns:
        The checkpoint's folder.

    Raises:
        OutputError: The disk is full or the folder is not writable; earlier checkpoints are left intact.
        StateError: ``state`` holds something that is neither a tensor nor plain data.
    """
    folder = Path(folder)
    final = folder / checkpoint_name(step)
    tensors: dict[str, torch.Tensor] = {}
    plain = encode_state(dict(state), tensors)
    tmp: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=folder))
        save_file(tensors, str(tmp / TENSORS_FILE), metadata={"metaxfer_checkpoint_format": str(CHECKPOINT_FORMAT)})
        _fsync_file(tmp / TENSORS_FILE)
        doc = {
            "format": CHECKPOINT_FORMAT,
            "metaxfer_version": metaxfer.__version__,
            "torch_version": torch.__version__,
            "step": step,
            "tensors_bytes": (tmp / TENSORS_FILE).stat().st_size,
            "config": dict(config),
            "state": plain,
        }
        atomic_write_json(tmp / STATE_FILE, doc)
        fsync_dir(tmp)
        if final.exists():  # re-written after a rollback: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".tmp-old-{final.name}-", dir=folder))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        tmp = None
        fsync_dir(folder)
    except OSError as exc:
        if is_disk_full(exc):
            raise OutputError(
                f"the disk is full: checkpoint {final} could not be written ({exc}). The previous checkpoint is "
                f"intact; free some space and run `metaxfer resume {folder.parent}`"
            ) from exc
        raise OutputError(f"checkpoint {final} could not be written: {exc}") from exc
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("wrote checkpoint %s", final)
    return final


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _with_defaults(written: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with the keys added to the schema since it was written, at their defaults.

    A new option defaults to the behaviour before it existed, so a checkpoint of an older metaxfer matches a config
    that leaves the option at its default, and differs from one that sets it. A config the schema no longer reads
    (a key since removed) is compared as written."""
    try:
        return config_to_dict(load_config(written))
    except ConfigError:
        return written


def load_checkpoint(
    path: str | os.PathLike[str], *, config: Mapping[str, Any] | None = None, ignore: Sequence[str] = RESUME_IGNORED_KEYS
) -> Checkpoint:
    """Read a checkpoint folder, checking its format and (optionally) that it belongs to ``config``.

    Args:
        path: A checkpoint folder (``.../checkpoints/step-00000100``).
        config: The plain config it must have been written with; ``None`` skips the check.
        ignore: Config keys allowed to differ.

    Returns:
        The checkpoint, tensors on the CPU.

    Raises:
        CheckpointError: It is missing or damaged, of another format, or from a different config (the message
            lists the keys that differ).
    """
    path = Path(path)
    state_file, tensor_file = path / STATE_FILE, path / TENSORS_FILE
    if not state_file.is_file() or not tensor_file.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (it needs {STATE_FILE} and {TENSORS_FILE})")
    try:
        doc = json.loads(state_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: {STATE_FILE} is not valid JSON ({exc})") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt != CHECKPOINT_FORMAT:
        written_by = doc.get("metaxfer_version", "an unknown version") if isinstance(doc, dict) else "an unknown version"
        raise CheckpointError(
            f"checkpoint {path} has format {fmt!r} (written by metaxfer {written_by}); metaxfer "
            f"{metaxfer.__version__} reads format {CHECKPOINT_FORMAT} only: resume it with metaxfer {written_by}"
        )
    if doc.get("metaxfer_version") != metaxfer.__version__:
        log.warning("checkpoint %s was written by metaxfer %s; this is metaxfer %s (same checkpoint format)", path,
                    doc.get("metaxfer_version"), metaxfer.__version__)
    if tensor_file.stat().st_size != doc.get("tensors_bytes"):
        raise CheckpointError(
            f"checkpoint {path} is damaged: {TENSORS_FILE} has {tensor_file.stat().st_size} bytes, "
            f"expected {doc.get('tensors_bytes')}"
        )
    if config is not None:
        diff = config_diff(_with_defaults(doc["config"]), config, ignore=ignore)
        if diff:
            raise CheckpointError(
                f"checkpoint {path} was written with another config; differences (checkpoint != current): "
                + "; ".join(diff)
            )
    try:
        tensors = load_file(str(tensor_file))
        state = decode_state(doc["state"], tensors)
    except (SafetensorError, StateError, OSError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: {exc}") from None
    return Checkpoint(path=path, step=int(doc["step"]), config=doc["config"], state=state,
                      metaxfer_version=str(doc.get("metaxfer_version")))


def list_checkpoints(folder: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The complete checkpoints in ``folder`` as ``(step, path)``, oldest first (partial ones are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        m = _NAME.fullmatch(entry.name)
        if m and (entry / STATE_FILE).is_file() and (entry / TENSORS_FILE).is_file():
            found.append((int(m.group(1)), entry))
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint in ``folder``, or ``None``."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def remove_partial_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary folders left by a process killed while writing a checkpoint; return what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".tmp-"):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    return removed


def prune_checkpoints(folder: str | os.PathLike[str], *, keep_last: int, keep_steps: Sequence[int] = ()) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and those of ``keep_steps`` (e.g. the best one)."""
    found = list_checkpoints(folder)
    keep = {step for step, _ in found[-keep_last:]} | set(keep_steps)
    removed = []
    for step, path in found:
        if step not in keep:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def write_best_pointer(folder: str | os.PathLike[str], *, step: int, metric: str, value: float) -> None:
    """Record which checkpoint is the best (``checkpoints/best.json``)."""
    atomic_write_json(Path(folder) / BEST_FILE, {"step": step, "checkpoint": checkpoint_name(step), "metric": metric,
                                                 "value": value})


def read_best_pointer(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The best-checkpoint record, or ``None`` if there is none yet."""
    path = Path(folder) / BEST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_checkpoint(folder: str | os.PathLike[str], which: str = "best") -> tuple[Path, dict[str, Any] | None]:
    """The checkpoint a caller asked for in a run's checkpoint folder.

    Args:
        folder: The run's ``checkpoints/`` folder.
        which: ``"best"`` (the one ``best.json`` names; the newest if none is marked), ``"last"``, or a checkpoint
            folder.

    Returns:
        The checkpoint's path and the best-checkpoint record it was chosen by (``None`` unless it was).

    Raises:
        CheckpointError: ``best`` or ``last`` asked of a folder with no checkpoint.
    """
    folder = Path(folder)
    best = read_best_pointer(folder)
    if which == "best" and best is not None:
        return folder / best["checkpoint"], best
    if which in ("best", "last"):
        path = latest_checkpoint(folder)
        if path is None:
            raise CheckpointError(f"run {folder.parent} has no checkpoint; train it (again) with metaxfer train")
        return path, None
    return Path(which), None

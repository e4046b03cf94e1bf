"""Safe file writing for run folders: atomic replacement, fsync, and free-space and writability checks.

A file written with :func:`atomic_write_bytes` is either the old version or the complete new one, whatever moment
the process is killed at: the bytes go to a temporary file in the same folder, are flushed to disk with ``fsync``,
and the temporary file is renamed over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from metaxfer.errors import MetaxferError

__all__ = [
    "OutputError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "fsync_dir",
    "check_output_dir",
    "is_disk_full",
    "remove_tree",
]

log = logging.getLogger(__name__)


class OutputError(MetaxferError, OSError):
    """A run folder cannot be written: it is not writable, or the disk is (nearly) full."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entry table to disk, so that a rename inside it survives a crash (a no-op on Windows)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename.

    Args:
        path: Target file; its folder must exist.
        data: The complete new contents.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: The folder is not writable or the disk is full; the old file, if any, is left intact.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as exc:
        raise OutputError(_describe_write_failure(path, exc)) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """:func:`atomic_write_bytes` for an object written as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is 'no space left on device' or 'quota exceeded'."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def _describe_write_failure(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {path.parent} is full ({exc.strerror}); free some space and resume the run"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {exc.strerror}; choose a writable output folder"
    return f"cannot write {path}: {exc}"


def check_output_dir(path: str | os.PathLike[str], *, need_bytes: int = 0) -> Path:
    """Make sure ``path`` exists, can be written, and has room for ``need_bytes`` more bytes.

    The check really writes (and removes) a small file, since permission bits do not tell the truth for every user
    (root) or file system (read-only mounts).

    Args:
        path: The folder; it and its parents are created if missing.
        need_bytes: Free space the caller is about to use (e.g. a few checkpoints).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: Naming the folder and what is wrong (not a folder, not writable, not enough free space).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"output folder {path} cannot be created: a file is in the way ({exc.filename})") from exc
    except NotADirectoryError as exc:
        raise OutputError(f"output folder {path} cannot be created: a parent of it is a file, not a folder") from exc
    except OSError as exc:
        raise OutputError(f"output folder {path} cannot be created: {exc.strerror}; choose another --out") from exc
    if not path.is_dir():
        raise OutputError(f"output path {path} exists and is not a folder; choose another --out")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"output folder {path} is not writable ({exc.strerror}); choose another --out") from exc
    free = shutil.disk_usage(path).free
    if need_bytes and free < need_bytes:
        raise OutputError(
            f"not enough free space in {path}: {free / 2**20:.1f} MiB free, the run needs about "
            f"{need_bytes / 2**20:.1f} MiB (its checkpoints); free some space, lower train.keep_last, or choose "
            "another --out"
        )
    return path


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Delete a folder tree; a missing folder is not an error."""
    if Path(path).exists():
        shutil.rmtree(path)

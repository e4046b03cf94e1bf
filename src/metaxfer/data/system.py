"""Facts about the host: which Debian packages are installed, where the user cache lives."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["debian_package_present", "cache_dir"]


@functools.lru_cache(maxsize=None)
def debian_package_present(package: str) -> bool:
    """Whether the Debian package ``package`` is installed (False where there is no dpkg)."""
    if shutil.which("dpkg-query") is None:
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and result.stdout.strip().endswith("installed")


def cache_dir() -> Path:
    """The folder decoded domains are cached in: ``$METAXFER_CACHE``, else ``$XDG_CACHE_HOME/metaxfer``, else
    ``~/.cache/metaxfer``."""
    if env := os.environ.get("METAXFER_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "metaxfer"

"""An on-disk cache of decoded domains.

Decoding a domain (rendering thousands of font glyphs, unpacking emoji PNGs) takes seconds to minutes; loading the
decoded tensors takes milliseconds. A cached domain is one safetensors file whose header metadata holds everything
else as JSON. Its name is a hash of:

- the domain name and build options,
- the metaxfer version and the source text of the module that builds the domain (so a code change rebuilds),
- the path, size and modification time of every source file the domain reads (so new data rebuilds).

Files are written atomically (temporary file, fsync, rename), so an interrupted build never leaves a bad entry.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import metaxfer
from metaxfer.data.system import cache_dir

if TYPE_CHECKING:
    from metaxfer.data.domain import Domain, DomainSpec

__all__ = ["cached_build", "cache_key", "save_domain", "load_domain"]

log = logging.getLogger(__name__)


def _file_stamp(path: str) -> list[Any]:
    p = Path(path)
    if not p.exists():
        return [str(p), None]
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


def cache_key(spec: DomainSpec, options: dict[str, Any]) -> str:
    """The hash naming the cache entry of ``spec`` built with ``options``."""
    module = inspect.getmodule(spec.build)
    try:
        code = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        code = ""
    files = spec.fingerprint_files(**options) if spec.fingerprint_files is not None else []
    payload = {
        "name": spec.name,
        "options": {k: repr(v) for k, v in sorted(options.items())},
        "version": metaxfer.__version__,
        "code": hashlib.sha256(code.encode()).hexdigest(),
        "files": [_file_stamp(f) for f in sorted(files)],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def save_domain(domain: Domain, path: Path) -> None:
    """Write ``domain`` to ``path`` atomically (safetensors with JSON metadata)."""
    meta = {
        "name": domain.name,
        "class_names": domain.class_names,
        "class_keys": domain.class_keys,
        "groups": domain.groups,
        "instances": domain.instances,
        "metadata": domain.metadata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(
            {"images": domain.images.contiguous(), "labels": domain.labels.contiguous()},
            tmp,
            metadata={"metaxfer_domain": json.dumps(meta)},
        )
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_domain(path: Path) -> Domain:
    """Read a domain written by :func:`save_domain`."""
    from safetensors import safe_open

    from metaxfer.data.domain import Domain

    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["metaxfer_domain"])
    tensors = load_file(str(path))
    return Domain(
        name=meta["name"],
        images=tensors["images"],
        labels=tensors["labels"],
        class_names=meta["class_names"],
        class_keys=meta["class_keys"],
        groups=meta["groups"],
        instances=meta["instances"],
        metadata=meta["metadata"],
    )


def cached_build(spec: DomainSpec, options: dict[str, Any]) -> Domain:
    """Load ``spec`` built with ``options`` from the cache, building and storing it on a miss."""
    path = cache_dir() / "domains" / f"{spec.name}-{cache_key(spec, options)}.safetensors"
    if path.exists():
        try:
            return load_domain(path)
        except (SafetensorError, KeyError, ValueError, OSError) as exc:
            log.warning("cache entry %s is unreadable (%s); rebuilding it", path, exc)
    log.info("building domain %s (first use; cached afterwards in %s)", spec.name, path.parent)
    domain = spec.build(**options)
    try:
        save_domain(domain, path)
    except OSError as exc:
        log.warning("could not write the domain cache %s (%s); continuing without it", path, exc)
    return domain



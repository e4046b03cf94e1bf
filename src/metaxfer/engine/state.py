"""Turning training state into tensors plus plain JSON data, and back, without pickle.

Optimiser states, scheduler states, RNG states and a method's own state are nested dicts, lists and tuples of
numbers, strings, tensors and numpy arrays. :func:`encode_state` moves every tensor into a flat ``name → tensor``
table (written with safetensors) and leaves a JSON-able tree with ``{"__tensor__": name}`` in its place. Types JSON
cannot tell apart are tagged: tuples (``__tuple__``), dicts with non-string keys such as an optimiser's parameter
indices (``__items__``) and numpy arrays (``__ndarray__``). :func:`decode_state` reverses it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from metaxfer.errors import MetaxferError

__all__ = ["StateError", "encode_state", "decode_state", "capture_rng", "restore_rng"]

_TAGS = ("__tensor__", "__tuple__", "__items__", "__ndarray__")


class StateError(MetaxferError, TypeError):
    """A piece of state cannot be stored as tensors plus plain data."""


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], *, path: str = "") -> Any:
    """Encode ``obj`` as JSON-able data, moving each tensor into ``tensors`` under its path.

    Args:
        obj: Nested dicts / lists / tuples of ``None``, bools, ints, floats, strings, tensors and numpy values.
        tensors: Filled with CPU copies of the tensors, keyed by their slash-separated path.
        path: Prefix of the tensor keys.

    Returns:
        The JSON-able tree.

    Raises:
        StateError: ``obj`` holds something else (the message gives its path and type).
    """
    if isinstance(obj, torch.Tensor):
        key = path or "tensor"
        if key in tensors:
            raise StateError(f"two pieces of state map to the same tensor name {key!r}")
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, path=f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, path=f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and k not in _TAGS and k != "dtype" for k in obj):
            return {k: encode_state(v, tensors, path=f"{path}/{k}" if path else k) for k, v in obj.items()}
        return {
            "__items__": [
                [encode_state(k, tensors, path=f"{path}/key{i}"), encode_state(v, tensors, path=f"{path}/{k}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    raise StateError(
        f"cannot store a {type(obj).__name__} at {path or '<root>'!r} in a checkpoint: only tensors, numpy arrays "
        "and plain data (None, bool, int, float, str, list, tuple, dict) are allowed"
    )


def decode_state(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Rebuild what :func:`encode_state` encoded.

    Raises:
        StateError: A tensor the tree refers to is missing from ``tensors``.
    """
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        key = obj["__tensor__"]
        if key not in tensors:
            raise StateError(f"the checkpoint's tensor file has no tensor {key!r}; the checkpoint is damaged")
        return tensors[key]
    if "__tuple__" in obj:
        return tuple(decode_state(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {decode_state(k, tensors): decode_state(v, tensors) for k, v in obj["__items__"]}
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return {k: decode_state(v, tensors) for k, v in obj.items()}


def capture_rng() -> dict[str, Any]:
    """The global RNG states of python, numpy, torch (CPU) and every CUDA device."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Set the global RNG states from :func:`capture_rng`'s (decoded) output."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for device, rng in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(rng, device)

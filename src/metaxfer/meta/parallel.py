"""Meta-training on the CPU: the tasks of a meta-batch spread over worker threads, and the allocator setting.

The tasks of a meta-batch are independent until their gradients are summed. On a CPU, running ``W`` tasks at once,
each on one intra-op thread, beats running one task at a time on ``W`` intra-op threads: the small convolutions,
batch norms and poolings of one few-shot task do not split well over threads, and threads that must meet after every
operation lose most of their time when other processes share the machine (measured in ``docs/performance.md``).

How: every worker gets a *replica* of the algorithm — a copy of the module tree that shares every parameter and
buffer tensor — because :func:`torch.func.functional_call` swaps a module's attributes while it runs and is
therefore not safe on one module from two threads. Worker ``k`` takes tasks ``k, k + W, ...``, computes each task's
gradient with :func:`torch.autograd.grad` and sums them in task order; the workers' sums are then added in worker
order. The result is deterministic for a given number of threads (it differs from the one-thread sum only by the
order of floating-point additions). Autocast and grad mode, which are thread-local, are carried into the workers.

:func:`tune_cpu_allocator` is the other CPU measure: it keeps glibc's allocator from returning the large activation
buffers of every task to the system only to fault them in again for the next task.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import itertools
import logging
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import nn

__all__ = ["task_workers", "parallel_task_gradients", "tune_cpu_allocator", "ALLOCATOR_ENV"]

logger = logging.getLogger(__name__)

#: Environment variable: set it to ``0`` to leave glibc's allocator settings alone (see :func:`tune_cpu_allocator`).
ALLOCATOR_ENV = "METAXFER_TUNE_MALLOC"
#: glibc ``mallopt`` parameters (``malloc.h``) and the values :func:`tune_cpu_allocator` gives them.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MMAP_THRESHOLD = 256 * 2**20
_TRIM_THRESHOLD = 1024 * 2**20

M = TypeVar("M", bound=nn.Module)
Item = TypeVar("Item")


def task_workers(device: torch.device, tasks: int) -> int:
    """How many worker threads to spread ``tasks`` independent tasks over.

    Args:
        device: Where the tasks run; only the CPU gets workers.
        tasks: Number of tasks.

    Returns:
        ``min(torch.get_num_threads(), tasks)`` on the CPU, else 1 (1 means: run the tasks one after the other).
    """
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), tasks))


def tune_cpu_allocator() -> bool:
    """Let glibc's ``malloc`` keep freed large blocks for reuse instead of handing them back to the system.

    Meta-training on the CPU allocates and frees the same few-megabyte activation buffers for every task. With
    glibc's defaults, blocks above the (adaptive) mmap threshold get fresh pages from the kernel and freed memory at
    the top of the heap is returned to it, so every task pays page faults for memory the previous task just freed
    (``docs/performance.md`` has the measurement). This sets ``M_MMAP_THRESHOLD`` to 256 MiB and
    ``M_TRIM_THRESHOLD`` to 1 GiB with ``mallopt``, once per process, and ``M_ARENA_MAX`` to 1: the heaps of
    glibc's per-thread arenas are at most 64 MiB, so a task's activations allocated in a worker thread would
    otherwise still be mapped and unmapped afresh for every task (the main arena's heap grows without that bound).

    It is a process-wide setting, applied by :meth:`~metaxfer.meta.base.MetaAlgorithm.accumulate_gradients` when
    it runs on the CPU; it affects every later allocation of the process, including other libraries', and memory the
    process once used stays reserved by it (up to 1 GiB of free heap) rather than going back to the system. Set the
    environment variable ``METAXFER_TUNE_MALLOC=0`` to opt out. Nothing happens outside glibc.

    Returns:
        Whether the settings are in effect (``False`` when opted out or not on glibc).
    """
    if os.environ.get(ALLOCATOR_ENV, "1").strip() == "0":
        return False
    return _set_glibc_malloc_options()


@functools.cache
def _set_glibc_malloc_options() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    ok = all(
        bool(mallopt(option, value))
        for option, value in ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_ARENA_MAX, 1))
    )
    logger.debug("glibc malloc: mmap threshold %d, trim threshold %d, one arena (%s)", _MMAP_THRESHOLD, _TRIM_THRESHOLD, ok)
    return ok


def _replica(module: M) -> M:
    """A copy of ``module``'s tree of submodules that shares all its parameter and buffer tensors."""
    memo: dict[int, object] = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    optimizer = getattr(module, "_optimizer", None)
    if optimizer is not None:
        memo[id(optimizer)] = optimizer
    return copy.deepcopy(module, memo)


@contextlib.contextmanager
def _intra_op_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def parallel_task_gradients(
    module: M,
    items: Sequence[Item],
    loss_fn: Callable[[M, Item], tuple[torch.Tensor, dict[str, float]]],
    *,
    workers: int,
    scale: float = 1.0,
) -> list[dict[str, float]]:
    """Add ``scale ×`` the gradient of every item's loss to the parameters' ``.grad``, items spread over threads.

    Args:
        module: The algorithm; its parameters that require grad receive the gradients.
        items: The tasks (e.g. episodes).
        loss_fn: ``loss_fn(replica, item) -> (loss, metrics)``; it must use only ``replica`` (a copy of ``module``
            sharing its tensors), never ``module`` itself.
        workers: Worker threads (>= 2); each runs with one intra-op thread.
        scale: Factor applied to every loss (e.g. ``1 / len(items)`` for a mean).

    Returns:
        The metrics of every item, in item order.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    replicas = [_replica(module) for _ in range(workers)]
    autocast_on = torch.is_autocast_enabled("cpu")
    autocast_dtype = torch.get_autocast_dtype("cpu")
    grad_on = torch.is_grad_enabled()

    def work(k: int) -> tuple[list[torch.Tensor | None], list[tuple[int, dict[str, float]]]]:
        sums: list[torch.Tensor | None] = [None] * len(params)
        metrics: list[tuple[int, dict[str, float]]] = []
        with torch.set_grad_enabled(grad_on), torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_on):
            for i in range(k, len(items), workers):
                loss, m = loss_fn(replicas[k], items[i])
                grads = torch.autograd.grad(loss * scale, params, allow_unused=True)
                for j, g in enumerate(grads):
                    if g is not None:
                        sums[j] = g.clone() if sums[j] is None else sums[j].add_(g)
                metrics.append((i, m))
        return sums, metrics

    with _intra_op_threads(1), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metaxfer-task") as pool:
        results = list(pool.map(work, range(workers)))
    for j, p in enumerate(params):
        total = None
        for sums, _ in results:
            if sums[j] is not None:
                total = sums[j] if total is None else total.add_(sums[j])
        if total is not None:
            p.grad = total if p.grad is None else p.grad.add_(total)
    return [m for _, m in sorted((pair for _, ms in results for pair in ms), key=lambda pair: pair[0])]

"""Task-parallel meta-gradients on the CPU: the tasks of a meta-batch spread over worker threads.

The tasks of a meta-batch are independent until their gradients are summed. On a CPU, running ``W`` tasks at once,
each on one intra-op thread, beats running one task at a time on ``W`` intra-op threads: the small convolutions,
batch norms and poolings of one few-shot task do not split well over threads, and threads that must meet after every
operation lose most of their time when other processes share the machine. With ``torch.get_num_threads() == 2`` a
quiet 2-core machine measured 17.1 against 11.5 first-order MAML tasks/s (1.5×), 12.9 against 9.5 second-order
(``docs/performance.md``).

How: every worker gets a *replica* of the algorithm — a copy of the module tree that shares every parameter and
buffer tensor — because :func:`torch.func.functional_call` swaps a module's attributes while it runs and is
therefore not safe on one module from two threads. Worker ``k`` takes tasks ``k, k + W, ...``, computes each task's
gradient with :func:`torch.autograd.grad` and sums them in task order; the workers' sums are then added in worker
order. The result is deterministic for a given number of threads (it differs from the one-thread sum only by the
order of floating-point additions). Autocast and grad mode, which are thread-local, are carried into the workers.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import nn

__all__ = ["task_workers", "parallel_task_gradients"]

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

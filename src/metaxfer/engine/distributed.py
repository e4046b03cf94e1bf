"""Training on several processes with ``torch.distributed``: one process per rank, launched by ``torchrun``.

``metaxfer train`` and ``metaxfer resume`` join a job when ``torchrun`` (or anything else that sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) started them with ``WORLD_SIZE`` > 1; otherwise
nothing here does anything. The design, in short (``docs/scaling.md`` has the long form):

* **Replicated sampling, sharded compute.** Every rank runs the same seeded generators and draws the same *global*
  batch (the meta-batch of episodes, the GAN's real images); each rank computes on its contiguous slice
  (:meth:`Distributed.shard`). All ranks therefore hold the same generator states, and rank 0's checkpoint is the
  global state: a run resumes on any number of processes.
* **Gradients are summed with weights.** A step returns its slice's mean loss and its ``share`` (slice size / global
  size); before the optimiser steps, the engine all-reduces ``share × gradient``
  (:meth:`Distributed.reduce_gradients`), which is the gradient of the global mean loss even when the batch does not
  divide evenly. Metrics are reduced the same way, so every rank sees the global loss (and takes the same NaN
  branch). Randomness that belongs to a slice (GAN noise) comes from a per-rank stream
  (:meth:`Distributed.rank_stream`) that leaves the shared generators equal.
* **Rank 0 writes, every rank checks.** Only rank 0 evaluates and writes the run folder; at each checkpoint every
  rank compares its weights with the others' (:meth:`Distributed.check_same`), so a method that forgets to
  synchronise something fails loudly instead of drifting.

The process group has a timeout (``METAXFER_DIST_TIMEOUT`` seconds, default 1800): a collective that waits longer
raises. A peer that dies closes its connections, so gloo fails at once with "Connection closed by peer"; under
``torchrun`` the agent also stops the other workers when one fails. Either way the error is a
:class:`DistributedError` naming the operation, and the run stays resumable.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch import nn

from metaxfer.engine.config import ConfigError
from metaxfer.engine.device import resolve_device
from metaxfer.errors import MetaxferError

__all__ = [
    "DistributedError",
    "Shard",
    "Distributed",
    "current",
    "launched",
    "process_group",
    "rank_device",
    "DEFAULT_TIMEOUT_S",
    "TIMEOUT_ENV",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Environment variable with the process group's timeout in seconds.
TIMEOUT_ENV = "METAXFER_DIST_TIMEOUT"
#: Default timeout: long enough for rank 0's evaluations and checkpoints, during which the others wait.
DEFAULT_TIMEOUT_S = 1800.0


class DistributedError(MetaxferError, RuntimeError):
    """A collective operation failed: another process of the job died, or did not answer within the timeout."""


# ---------------------------------------------------------------------------------------------------------- shards
@dataclass(frozen=True)
class Shard:
    """One rank's contiguous slice ``[start, stop)`` of a global batch of ``total`` items.

    Attributes:
        start: First index of the slice.
        stop: One past its last index.
        total: Size of the global batch.
    """

    start: int
    stop: int
    total: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def share(self) -> float:
        """The slice's weight in the global mean: ``size / total``."""
        return self.size / self.total

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)

    def take(self, items: Sequence[T] | torch.Tensor) -> Any:
        """``items[start:stop]`` (a list, a tensor, ...)."""
        return items[self.start : self.stop]


def _balanced(n: int, rank: int, world: int) -> Shard:
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return Shard(start, start + base + (1 if rank < extra else 0), n)


# ---------------------------------------------------------------------------------------------------------- the job
@dataclass(frozen=True)
class Distributed:
    """The job as this process sees it; a single process is ``world_size == 1`` and every operation is a no-op.

    Attributes:
        rank: This process's rank (0 writes the run folder).
        world_size: Number of processes.
        local_rank: Rank within this machine (picks the GPU: ``cuda:<local_rank>``).
        device: Where this process's communication buffers live (its CUDA device with NCCL, else the CPU).
        timeout_s: The process group's timeout, for error messages.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that evaluates and writes."""
        return self.rank == 0

    def describe(self) -> str:
        return f"process {self.rank} of {self.world_size}"

    # ------------------------------------------------------------------ sharding
    def shard(self, n: int, *, what: str = "the batch") -> Shard:
        """This rank's slice of a global batch of ``n`` items (the first ``n % world_size`` ranks get one more).

        Args:
            n: Global batch size.
            what: The config key or thing being split, for the error message.

        Raises:
            DistributedError: ``n`` is smaller than the number of processes (a rank would get nothing).
        """
        if n < self.world_size:
            raise DistributedError(
                f"{what} is {n}, fewer than the {self.world_size} processes: every process needs at least one item. "
                f"Raise {what} to {self.world_size} or more, or start fewer processes (torchrun --nproc-per-node)"
            )
        return _balanced(n, self.rank, self.world_size)

    @contextlib.contextmanager
    def rank_stream(self, generator: torch.Generator) -> Iterator[torch.Generator]:
        """Within the block, ``generator`` draws numbers of this rank only; after it, the shared stream goes on.

        For randomness that belongs to a rank's slice and whose amount depends on the slice (e.g. a gradient
        penalty's interpolation weights): every rank draws one seed from the shared stream (so the shared streams
        stay equal), reseeds the generator from it and its rank for the block, then puts the shared state back.
        With one process the block uses the generator as it is.
        """
        if not self.enabled:
            yield generator
            return
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        shared = generator.get_state()
        generator.manual_seed((seed + 0x9E3779B97F4A7C15 * (self.rank + 1)) % 2**63)
        try:
            yield generator
        finally:
            generator.set_state(shared)

    # ------------------------------------------------------------------ collectives
    def _fail(self, what: str, exc: BaseException) -> DistributedError:
        return DistributedError(
            f"{self.describe()}: {what} failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}. "
            f"Another process of the job stopped (crashed, was killed or ran out of memory: its own log says why) or "
            f"did not answer within {self.timeout_s:g} s ({TIMEOUT_ENV})"
        )

    @contextlib.contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as exc:  # DistBackendError, DistNetworkError, gloo/NCCL errors are RuntimeErrors
            if isinstance(exc, DistributedError):
                raise
            raise self._fail(what, exc) from exc

    def _sum_(self, flat: torch.Tensor, what: str) -> torch.Tensor:
        with self._collective(what):
            tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        return flat

    def reduce_step(self, loss: float | None, metrics: Mapping[str, float], share: float, *,
                    what: str) -> tuple[float | None, dict[str, float]]:
        """The global loss and metrics of a step: the ``share``-weighted sums over the ranks.

        Every rank must report the same metric names (and a loss on all ranks or on none).

        Args:
            loss: This rank's loss (its slice's mean), or ``None``.
            metrics: This rank's metrics (slice means).
            share: This rank's share of the global batch.
            what: Names the step in errors.

        Returns:
            ``(loss, metrics)`` of the whole global batch, the same on every rank.
        """
        if not self.enabled or (loss is None and not metrics):  # e.g. an EMA update: nothing to reduce
            return loss, dict(metrics)
        keys = sorted(metrics)
        values = [0.0 if loss is None else loss] + [float(metrics[k]) for k in keys]
        flat = torch.tensor(values, dtype=torch.float64, device=self.device) * share
        flat = self._sum_(flat, f"the metrics all-reduce of {what}").cpu().tolist()
        reduced = dict(zip(keys, flat[1:], strict=True))
        return (None if loss is None else flat[0]), {k: reduced[k] for k in metrics}

    def reduce_gradients(self, params: Iterable[torch.Tensor], share: float, *, what: str) -> None:
        """Replace each parameter's ``.grad`` by the sum over ranks of ``share × grad``.

        A gradient that is ``None`` on a rank counts as zero there; it stays ``None`` only where it is ``None`` on
        every rank (so an optimiser skips the same parameters as it would in one process).

        Args:
            params: The optimiser's parameters (the same list, in the same order, on every rank).
            share: This rank's weight (its share of the global batch).
            what: Names the step in errors.

        Raises:
            DistributedError: A peer failed, or a gradient is sparse.
        """
        if not self.enabled:
            return
        params = list(params)
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, p in enumerate(params):
            if p.grad is not None and p.grad.is_sparse:
                raise DistributedError(f"{what}: parameter {i} has a sparse gradient, which the gradient all-reduce "
                                       "does not handle; use dense embeddings")
            by_dtype.setdefault(p.dtype, []).append(i)
        for dtype, idx in by_dtype.items():
            parts = [(params[i].grad.reshape(-1) * share) if params[i].grad is not None
                     else torch.zeros(params[i].numel(), dtype=dtype, device=params[i].device) for i in idx]
            flags = torch.tensor([params[i].grad is not None for i in idx], dtype=dtype, device=parts[0].device)
            flat = self._sum_(torch.cat(parts + [flags]).to(self.device), f"the gradient all-reduce of {what}")
            present = flat[-len(idx):].cpu().tolist()
            offset = 0
            for i, seen in zip(idx, present, strict=True):
                p, n = params[i], params[i].numel()
                if seen > 0:
                    value = flat[offset : offset + n].view_as(p).to(p.device)
                    if p.grad is None:
                        p.grad = value.clone()
                    else:
                        p.grad.copy_(value)
                offset += n

    def average_(self, tensors: Iterable[torch.Tensor], share: float | None = None, *, what: str) -> None:
        """Replace each floating-point tensor by its ``share``-weighted sum over ranks (in place).

        Args:
            tensors: The same tensors, in the same order, on every rank; non-floating ones are left alone.
            share: This rank's weight (``None``: ``1 / world_size``, a plain mean).
            what: Names the tensors in errors.
        """
        if not self.enabled:
            return
        weight = 1.0 / self.world_size if share is None else share
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            if t.is_floating_point():
                by_dtype.setdefault(t.dtype, []).append(t)
        with torch.no_grad():
            for group in by_dtype.values():
                flat = torch.cat([t.reshape(-1).to(self.device) * weight for t in group])
                self._sum_(flat, what)
                offset = 0
                for t in group:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()

    def average_buffers(self, modules: Iterable[nn.Module], share: float | None = None) -> None:
        """Average the floating-point buffers (batch-norm running statistics) of ``modules`` over the ranks."""
        if not self.enabled:
            return
        self.average_([b for m in modules for b in m.buffers()], share, what="the buffer average")

    def broadcast_modules(self, modules: Iterable[nn.Module]) -> None:
        """Give every rank rank 0's parameters and buffers."""
        if not self.enabled:
            return
        tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
        with torch.no_grad(), self._collective("the broadcast of rank 0's weights"):
            for t in tensors:
                buf = t.detach().to(self.device)
                tdist.broadcast(buf, src=0)
                if buf.data_ptr() != t.data_ptr():
                    t.copy_(buf)

    def broadcast_object(self, obj: T, *, what: str) -> T:
        """Rank 0's ``obj`` on every rank (pickled over the process group; ``obj`` is ignored on other ranks)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        with self._collective(f"the broadcast of {what}"):
            tdist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]  # type: ignore[return-value]

    def from_main(self, compute: Callable[[], T], *, what: str) -> T:
        """Run ``compute`` on rank 0 and give its result to every rank; an error there is an error everywhere.

        Rank 0 re-raises its own exception; the other ranks raise a :class:`DistributedError` quoting it (instead
        of waiting for a result that never comes).
        """
        if not self.enabled:
            return compute()
        outcome: tuple[str, Any] = ("ok", None)
        error: BaseException | None = None
        if self.is_main:
            try:
                outcome = ("ok", compute())
            except BaseException as exc:  # noqa: BLE001  (re-raised below, after the others are told)
                error = exc
                outcome = ("error", f"{type(exc).__name__}: {exc}")
        status, value = self.broadcast_object(outcome, what=what)
        if error is not None:
            raise error
        if status == "error":
            raise DistributedError(f"{self.describe()}: process 0 failed while {what}: {value}")
        return value

    def agree(self, flags: Sequence[bool], *, what: str) -> list[bool]:
        """Each flag is true on every rank when it is true on any (e.g. "stop now", "new best")."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], dtype=torch.float32, device=self.device)
        with self._collective(what):
            tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return [v > 0 for v in t.cpu().tolist()]

    def barrier(self, *, what: str) -> None:
        """Wait until every rank gets here."""
        if not self.enabled:
            return
        with self._collective(what):
            tdist.barrier()

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Run the block on each machine's local rank 0 first, then on the others (e.g. to fill the domain cache once
        instead of building every domain on every process at the same time)."""
        if self.enabled and self.local_rank != 0:
            self.barrier(what="waiting for local process 0 to build the method")
        yield
        if self.enabled and self.local_rank == 0:
            self.barrier(what="waiting for the other processes to build the method")

    def check_same(self, named: Mapping[str, nn.Module], *, step: int) -> None:
        """Check that every rank holds the same weights and buffers (compares sums and sums of squares).

        Raises:
            DistributedError: Naming the tensors that differ: a step changed state on some ranks without
                synchronising it (a method bug), or a rank is out of step.
        """
        if not self.enabled:
            return
        names, stats = [], []
        with torch.no_grad():
            for mname, module in named.items():
                for tname, t in (*module.named_parameters(), *module.named_buffers()):
                    if t.is_floating_point() or t.dtype in (torch.int64, torch.int32):
                        v = t.detach().double()
                        names.append(f"{mname}.{tname}")
                        stats += [v.sum(), v.pow(2).sum()]
        if not stats:
            return
        v = torch.stack(stats).to(self.device)
        both = torch.cat([v, -v])
        with self._collective(f"the weight check at step {step}"):
            tdist.all_reduce(both, op=tdist.ReduceOp.MAX)
        hi, lo = both[: len(v)], -both[len(v):]
        bad = torch.nonzero(hi != lo).flatten().cpu().tolist()
        if bad:
            differ = sorted({names[i // 2] for i in bad})
            raise DistributedError(
                f"at step {step} the processes hold different values of {', '.join(differ[:5])}"
                f"{' and more' if len(differ) > 5 else ''}: the method changed state on some processes without "
                "synchronising it. A step that updates parameters itself (loss=None) must average them "
                "(Method.dist.average_), and evaluate() and samples(), which run on rank 0 only, must not change "
                "training state"
            )


# ---------------------------------------------------------------------------------------------------------- set-up
def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(f"environment variable {name} is not set; start the job with torchrun, which sets "
                              "RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def launched() -> bool:
    """Whether this process belongs to a job of several processes (``WORLD_SIZE`` > 1 in the environment)."""
    return _env_int("WORLD_SIZE", 1) > 1


def _timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: give the process group's timeout as a positive number of seconds")
    return value


def current(device: torch.device | None = None) -> Distributed:
    """The job this process belongs to: from ``torch.distributed``'s default process group when one is initialised,
    else a single process.

    Args:
        device: The training device, where communication buffers should live when the backend serves it (default:
            this process's GPU with NCCL, else the CPU).
    """
    if not (tdist.is_available() and tdist.is_initialized()):
        return Distributed()
    local_rank = _env_int("LOCAL_RANK", 0)
    backend = str(tdist.get_backend())
    if device is not None and (("nccl" in backend) if device.type == "cuda" else ("gloo" in backend)):
        device = torch.device(device)
    elif "nccl" in backend:
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return Distributed(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local_rank,
                       device=device, timeout_s=_timeout_s())


def rank_device(name: str, dist: Distributed) -> torch.device:
    """The device of this rank for the config's ``device``: with several processes, CUDA means ``cuda:<local_rank>``.

    Raises:
        ConfigError: CUDA is asked for but absent, a fixed ``cuda:N`` is given to several processes, or there are
            more processes on this machine than GPUs.
    """
    device = resolve_device(name)
    if not dist.enabled or device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(f"device {name!r} names one GPU, but {dist.world_size} processes would share it: use "
                          "device=cuda (each process takes cuda:<LOCAL_RANK>)")
    if dist.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"local rank {dist.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                          "start at most that many processes per machine (torchrun --nproc-per-node)")
    return torch.device("cuda", dist.local_rank)


class _RankZeroLines(logging.Filter):
    """Drops metaxfer's INFO and DEBUG lines on ranks other than 0 (their warnings and errors still show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("metaxfer") and record.levelno < logging.WARNING)


@contextlib.contextmanager
def process_group() -> Iterator[Distributed]:
    """Join the job described by the environment for the duration of the block (nothing to do in one process).

    The backend is gloo on a machine without CUDA, else ``cpu:gloo,cuda:nccl`` (the tensor's device decides, so a
    CPU run on a GPU machine also works); each process binds ``cuda:<LOCAL_RANK>``. A process group initialised by
    the caller is used as it is and left open. On an error the group is torn down at once, so that the other
    processes fail fast (their next collective raises) instead of waiting for the timeout.

    Yields:
        The job.

    Raises:
        ConfigError: A malformed environment or timeout.
    """
    if not launched() or (tdist.is_available() and tdist.is_initialized()):
        yield current()
        return
    if not tdist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run with one process")
    timeout = _timeout_s()
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = torch.cuda.is_available() and tdist.is_nccl_available()
    if cuda and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    tdist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout))
    dist = current()
    quiet = _RankZeroLines()
    handlers = list(logging.getLogger().handlers)
    if not dist.is_main:
        for h in handlers:
            h.addFilter(quiet)
    log.info("joined the job as %s (backend %s, timeout %g s)", dist.describe(), backend, timeout)
    ok = False
    try:
        yield dist
        ok = True
    finally:
        for h in handlers:
            h.removeFilter(quiet)
        if ok:
            with contextlib.suppress(RuntimeError):  # the job is over; a peer that already left is no error
                tdist.barrier()
        tdist.destroy_process_group()

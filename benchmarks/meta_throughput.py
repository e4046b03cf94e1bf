"""Meta-training throughput and peak memory of metaxfer against learn2learn, higher and a plain autograd loop.

Setting (the issue's): Conv-4 (64 filters, batch norm, ReLU, max-pool), 1×28×28 images, 5-way, 1 and 5 shots,
15 queries per class, meta-batch 32, 1 and 5 inner steps, on ``--device`` (``auto``, the default: CUDA when
``torch.cuda.is_available()``, else the CPU; ``cpu``; ``cuda``), on the CPU with ``--threads`` threads (2 by default).
One *step* is a whole outer update: every task of the meta-batch adapted and back-propagated, then an Adam step.

    bash scripts/install-bench-peers.sh                      # once: higher + learn2learn's MAML, in .venv only
    .venv/bin/python benchmarks/meta_throughput.py --quick   # 5-way 1-shot, 1 step: four settings
    .venv/bin/python benchmarks/meta_throughput.py           # every setting (14 lines)
    .venv/bin/python benchmarks/meta_throughput.py --device cpu --quick   # the CPU even where there is a GPU

Implementations (all from the same initial weights, on the same episodes, all on the chosen device: the networks are
built on the CPU, given metaxfer's initial weights and moved there before their optimisers are made, so parameters,
gradients and Adam state live on the device; the episodes are moved there before any timing):

* ``metaxfer``: ``create_algorithm(...).outer_step`` with ``norm="transductive"`` (each forward pass normalised
  with its own batch statistics, support and query separately: what the peers' ``nn.BatchNorm2d`` does). On the
  CPU its Conv-4 computes the first block's convolution and batch norm as one matrix multiply
  (:func:`metaxfer.models.conv4.conv3x3_batch_norm`, channels-last from there on); first-order MAML, ANIL and
  ProtoNets run the tasks in worker threads, second-order MAML one task at a time (see ``docs/performance.md``).
  On CUDA metaxfer itself leaves out the fused block and the worker threads (it picks its paths from the device):
  MAML runs the tasks one after the other, ANIL and ProtoNets the whole meta-batch in one stacked pass.
* ``learn2learn``: ``l2l.algorithms.MAML`` (``first_order=True`` for FO), ``clone()``/``adapt()`` per task;
  ANIL wraps only the head, over the body's features.
* ``higher``: ``higher.innerloop_ctx`` with an SGD inner optimiser (first order: detached inner gradients).
* ``plain``: a hand-written functional Conv-4 and a ``torch.autograd.grad`` loop (ProtoNets: a plain PyTorch
  loop per task, as learn2learn's example does).

Method: the implementations are timed interleaved, in a rotating order (A B C, B C A, C A B, ...), and the best
of ``--repeats`` steps is kept, so that load from other processes hits all of them alike; the load average is
printed, and so are the minor page faults per task of each implementation (``getrusage`` over its timed steps).
On CUDA every timed region starts and ends with ``torch.cuda.synchronize()``, so it covers the kernels launched in it.
Peak memory comes from a fresh process that builds one implementation and runs one step on 4 tasks (every
implementation holds at most one task graph per thread, so the peak does not grow with the meta-batch): on the CPU
its peak resident size (``VmHWM``), on CUDA ``torch.cuda.max_memory_allocated`` over that step (peak statistics reset
just before it; the tensors already there, weights and episodes, count). The header says which. The processes of a
setting run two at a time, after its timing. A warm-up step on 8 tasks checks that every peer computes metaxfer's
meta-gradient ("grad diff": largest difference over the largest gradient); on CUDA every implementation then runs
one more untimed step on a whole meta-batch, so that the timed ones do not pay for loading kernels or growing the
caching allocator for the full-size tensors. FLOPs per task are counted once per
setting with ``torch.utils.flop_counter.FlopCounterMode`` on metaxfer's step; achieved GFLOP/s is set against a
1024×1024 float32 matrix multiply measured on the same device in the same run (best of 5).
``--bf16`` also times metaxfer under bfloat16 autocast (detail line only, with its gradient difference);
``--unfused`` also times metaxfer with its first block on the plain path (``conv2d`` then batch norm, default
layout), to show what the fused block gives (detail line only); ``--serial`` with the tasks one after the other
instead of in worker threads, ``--stacked`` with the whole meta-batch in one stacked pass instead of task by task
(detail lines only). These three switch off CPU measures: on CUDA they time the same code as ``metaxfer``;
``--norm support`` runs metaxfer in its default batch-norm mode instead (the query pass then carries the support
rows too, so it does more work than the peers).

The allocator setting of :func:`metaxfer.meta.parallel.tune_cpu_allocator` is process-wide, so on the CPU the
benchmark applies it at its start in every process it runs (the timing process and the memory processes of every
implementation): the peers run with it too, and the ratios do not credit it to metaxfer. Run with
``METAXFER_TUNE_MALLOC=0`` to measure everything with glibc's defaults. On CUDA metaxfer does not apply it, and
neither does the benchmark.

The header names the device: on the CPU the processor, CPU count and ``--threads``; on CUDA the card's name and the
torch and CUDA versions (``--threads`` then only pins the host threads, and is not printed). ``--device cuda`` where
CUDA is not available stops with a message saying so.

The last lines are one per algorithm and setting, e.g.::

    maml-so 5w1s 1step: metaxfer A tasks/s, fastest peer learn2learn B tasks/s, G GFLOP/s (P% of peak), \
ratio: A/B, memory ratio: M

(one line), where ``ratio`` is metaxfer's tasks/s over the fastest peer's and ``memory ratio`` metaxfer's peak
memory over that peer's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (
    DEFAULT_ROOT,
    DEVICE_CHOICES,
    Step,
    device_summary,
    load_peers,
    peer_steps,
    resolve_device,
    synchronize,
)

from metaxfer.meta.parallel import tune_cpu_allocator

ALGORITHMS = ("maml-so", "maml-fo", "anil", "protonet")
#: Target ratio of metaxfer's throughput over the fastest peer's, per algorithm (the issue's).
TARGETS = {"maml-so": 1.0, "maml-fo": 1.5, "anil": 1.5, "protonet": 1.5}
#: Algorithms whose peak memory must not exceed the fastest peer's.
MEMORY_TARGETS = {"maml-so": 1.0}
WAYS, QUERIES, META_BATCH, INNER_LR = 5, 15, 32, 0.4
#: Tasks of the warm-up step that also checks the meta-gradients, of the step whose FLOPs are counted, and of the
#: step whose peak memory is measured (every implementation holds at most one task graph per thread at a time, so
#: the peak is reached within the first tasks and does not grow with the meta-batch).
CHECK_TASKS, FLOP_TASKS, MEMORY_TASKS = 8, 4, 4
#: Memory-measuring processes run at once.
MEMORY_PROCESSES = 2


@dataclass(frozen=True)
class Setting:
    """One benchmarked configuration."""

    algorithm: str
    shots: int
    steps: int

    @property
    def label(self) -> str:
        base = f"{self.algorithm} {WAYS}w{self.shots}s"
        return base if self.algorithm == "protonet" else f"{base} {self.steps}step"


@dataclass
class Result:
    """Measurements of one setting."""

    setting: Setting
    tasks_per_s: dict[str, float] = field(default_factory=dict)
    faults_per_task: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    grad_error: dict[str, float] = field(default_factory=dict)
    flops_per_task: float = 0.0

    def fastest_peer(self) -> str:
        peers = {k: v for k, v in self.tasks_per_s.items() if not k.startswith("metaxfer")}
        return max(peers, key=peers.__getitem__)


def settings(quick: bool, algorithms: Sequence[str]) -> list[Setting]:
    """The settings to run: 5-way 1-shot 1-step only with ``quick``, else 1/5 shots × 1/5 steps."""
    out = []
    for algo in algorithms:
        for shots in (1,) if quick else (1, 5):
            for steps in (1,) if quick or algo == "protonet" else (1, 5):
                out.append(Setting(algo, shots, steps))
    return out


# ------------------------------------------------------------------------------------------------ building
def meta_batches(shots: int, count: int = 2, device: torch.device | None = None) -> list[list[Any]]:
    """``count`` fixed meta-batches of 5-way ``shots``-shot 15-query episodes from the synthetic domain.

    The episodes are sampled on the CPU (the same ones on every device) and moved to ``device`` unless that is the
    CPU.
    """
    from metaxfer.data import EpisodeSampler, create_domain

    domain = create_domain("synthetic", cache=False, num_classes=100, per_class=40, size=28, seed=0)
    sampler = EpisodeSampler(domain, ways=WAYS, shots=shots, queries=QUERIES, seed=0)
    batches = [[sampler.sample() for _ in range(META_BATCH)] for _ in range(count)]
    if device is not None and device.type != "cpu":
        batches = [[e.to(device) for e in batch] for batch in batches]
    return batches


def build(
    setting: Setting,
    names: Sequence[str],
    *,
    peers_root: Path,
    norm: str = "transductive",
    device: torch.device | None = None,
) -> dict[str, Step]:
    """metaxfer's (batch-norm mode ``norm``) and the peers' steps for ``setting``, from the same initial weights.

    Every network is built on the CPU (the same initial weights on every device) and moved to ``device`` (default:
    the CPU) before its optimiser exists (metaxfer builds its own on the first ``outer_step``).
    """
    from metaxfer.meta import create_algorithm

    device = torch.device("cpu") if device is None else device
    name = {"maml-so": "maml", "maml-fo": "fomaml", "anil": "anil", "protonet": "protonet"}[setting.algorithm]
    options = {} if name == "protonet" else {"inner_lr": INNER_LR, "inner_steps": setting.steps}

    def algorithm() -> Any:
        torch.manual_seed(0)
        return create_algorithm(name, ways=WAYS, norm=norm, **options).to(device)

    algo = algorithm()
    out: dict[str, Step] = {}
    if "metaxfer" in names:
        out["metaxfer"] = Step(algo.outer_step, list(algo.backbone.parameters()))
    if "metaxfer-bf16" in names:
        algo16 = algorithm()

        def bf16_step(episodes: Sequence[Any]) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                algo16.outer_step(episodes)

        out["metaxfer-bf16"] = Step(bf16_step, list(algo16.backbone.parameters()))
    for variant, patches in VARIANTS.items():
        if f"metaxfer-{variant}" in names:
            out[f"metaxfer-{variant}"] = patched_step(algorithm(), patches)
    wanted = [n for n in names if not n.startswith("metaxfer")]
    if wanted:
        needs_frameworks = any(n != "plain" for n in wanted)
        peers = load_peers(peers_root) if needs_frameworks else None
        available = peer_steps(
            setting.algorithm, peers=peers, backbone=algo.backbone, ways=WAYS, lr=INNER_LR, steps=setting.steps,
            names=[n for n in wanted if n in peer_names(setting.algorithm)], device=device,
        )
        out.update(available)
    return out


#: metaxfer with one of its CPU measures switched off, for ``--unfused``, ``--serial`` and ``--stacked``:
#: (module, attribute, replacement) patched while the variant's step runs.
VARIANTS: dict[str, list[tuple[str, str, Any]]] = {
    # no block takes the fused convolution + batch norm path
    "unfused": [("metaxfer.models.conv4", "FUSED_MAX_CHANNELS", 0)],
    # the tasks of a meta-batch one after the other on all threads, not in worker threads
    "serial": [("metaxfer.meta.base", "task_workers", lambda device, tasks: 1)],
    # the whole meta-batch in one stacked pass instead of task by task
    "stacked": [("metaxfer.meta.base", "task_by_task", lambda device, mode: False),
                ("metaxfer.meta.common", "task_by_task", lambda device, mode: False)],
}


def patched_step(algo: Any, patches: Sequence[tuple[str, str, Any]]) -> Step:
    """``algo.outer_step`` with the module attributes of ``patches`` replaced while it runs."""

    def step(episodes: Sequence[Any]) -> None:
        with contextlib.ExitStack() as stack:
            for module, attr, value in patches:
                stack.enter_context(mock.patch.object(importlib.import_module(module), attr, value))
            algo.outer_step(episodes)

    return Step(step, list(algo.backbone.parameters()))


def peer_names(algorithm: str) -> list[str]:
    return ["plain"] if algorithm == "protonet" else ["learn2learn", "higher", "plain"]


# ----------------------------------------------------------------------------------------------- measuring
def matmul_peak(repeats: int = 5, size: int = 1024, device: torch.device | None = None) -> float:
    """Best GFLOP/s of a ``size``² float32 matrix multiply on ``device`` (default: the CPU).

    The matrices are drawn on the CPU and moved, so the benchmark's use of the global generator is the same on every
    device; on CUDA the timing is synchronised (see :func:`~peers.synchronize`).
    """
    device = torch.device("cpu") if device is None else device
    a, b = torch.randn(size, size).to(device), torch.randn(size, size).to(device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * size**3 / best / 1e9


def count_flops(step: Step, episodes: Sequence[Any]) -> float:
    """FLOPs of one step over ``episodes`` divided by the number of tasks.

    The counter sees only the thread it runs in, so the step runs with one torch thread (metaxfer then runs its
    tasks one after the other; the work per task is the same).
    """
    from torch.utils.flop_counter import FlopCounterMode

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            step(episodes)
    finally:
        torch.set_num_threads(threads)
    return counter.get_total_flops() / len(episodes)


def grad_error(step: Step, reference: Step) -> float:
    """Largest |g − g_ref| over the parameters, relative to the largest |g_ref| (after both ran the same step)."""
    worst, scale = 0.0, 0.0
    for p, q in zip(step.params, reference.params, strict=True):
        if q.grad is None:
            continue
        scale = max(scale, float(q.grad.abs().max()))
        worst = max(worst, float((p.grad - q.grad).abs().max()) if p.grad is not None else float("inf"))
    return worst / max(scale, 1e-30)


def time_interleaved(
    steps: dict[str, Step], batches: list[list[Any]], repeats: int, device: torch.device | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Time the steps interleaved in a rotating order (synchronised with ``device`` around each step on CUDA).

    Returns:
        The best tasks/s of each step over ``repeats`` rounds, and its minor page faults per task (all rounds).
    """
    names = list(steps)
    best = {n: float("inf") for n in names}
    faults = dict.fromkeys(names, 0)
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            episodes = batches[r % len(batches)]
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if device is not None:
                synchronize(device)
            start = time.perf_counter()
            steps[n](episodes)
            if device is not None:
                synchronize(device)
            best[n] = min(best[n], time.perf_counter() - start)
            faults[n] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {n: META_BATCH / t for n, t in best.items()}, {n: f / (repeats * META_BATCH) for n, f in faults.items()}


def measure_memory(
    setting: Setting, names: Sequence[str], *, threads: int, peers_root: Path, norm: str, device: str = "cpu"
) -> dict[str, float]:
    """Peak memory (MB) of fresh processes, one per implementation, that each run one step of ``setting``.

    On the CPU the processes' peak resident size, on CUDA the peak of ``torch.cuda.max_memory_allocated`` over the
    step (see :func:`child`).

    The processes run after the timing, :data:`MEMORY_PROCESSES` at a time: most of each one's time is the
    single-threaded start (imports), and more at once on a 2-core machine would oversubscribe it and leave load
    behind for the next setting's timing.
    """

    def one(name: str) -> float:
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--child", setting.algorithm, str(setting.shots),
            str(setting.steps), name, "--threads", str(threads), "--peers-root", str(peers_root), "--norm", norm,
            "--device", device,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"memory run of {name} for {setting.label} failed:\n{proc.stderr[-2000:]}")
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"])

    with ThreadPoolExecutor(max_workers=MEMORY_PROCESSES) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def child(argv: Sequence[str], threads: int, peers_root: Path, norm: str, device: torch.device | None = None) -> None:
    """``--child ALGO SHOTS STEPS NAME``: build one implementation, run one step, print its peak memory as JSON.

    On the CPU the peak is the process's peak RSS (:func:`peak_rss_mb`); on CUDA it is
    ``torch.cuda.max_memory_allocated`` with the peak statistics reset just before the step (weights and episodes,
    already on the device, count; so does the Adam state the step creates).
    """
    algo, shots, steps, name = argv[0], int(argv[1]), int(argv[2]), argv[3]
    device = torch.device("cpu") if device is None else device
    torch.set_num_threads(threads)
    if device.type == "cpu":
        tune_cpu_allocator()  # as in the timing process, for every implementation alike
    setting = Setting(algo, shots, steps)
    episodes = meta_batches(shots)[0][:MEMORY_TASKS]
    if device.type != "cpu":
        episodes = [e.to(device) for e in episodes]
    step = build(setting, [name], peers_root=peers_root, norm=norm, device=device)[name]
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    step(episodes)  # one outer step: every buffer, task graph and the optimiser state exist by its end
    if device.type == "cuda":
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = peak_rss_mb()
    print(json.dumps({"peak_mb": peak}))


def memory_measure(device: torch.device) -> str:
    """What the peak-memory figures are, for the header."""
    if device.type == "cuda":
        return (f"torch.cuda.max_memory_allocated over one step on {MEMORY_TASKS} tasks in a fresh process per "
                "implementation (peak reset before the step)")
    return f"peak resident size (VmHWM) of a fresh process per implementation running one step on {MEMORY_TASKS} tasks"


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: unlike ``getrusage(...).ru_maxrss``, it is not inherited
    from the parent, whose resident size at ``fork`` would otherwise set a floor under every child's figure.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux, bytes on macOS


# ------------------------------------------------------------------------------------------------- running
def run_setting(setting: Setting, args: argparse.Namespace) -> Result:
    variants = [f"metaxfer-{v}" for v in VARIANTS if getattr(args, v)]
    names = ["metaxfer"] + (["metaxfer-bf16"] if args.bf16 else []) + variants + [
        n for n in peer_names(setting.algorithm) if n in args.peers
    ]
    device = args.device
    batches = meta_batches(setting.shots, device=device)
    steps = build(setting, names, peers_root=args.peers_root, norm=args.norm, device=device)
    result = Result(setting)
    for n, step in steps.items():  # warm-up, and the same meta-gradient from the same weights and episodes
        step(batches[0][:CHECK_TASKS])
        if n != "metaxfer":
            result.grad_error[n] = grad_error(step, steps["metaxfer"])
    result.flops_per_task = count_flops(steps["metaxfer"], batches[1][:FLOP_TASKS])
    if device.type != "cpu":  # one untimed full meta-batch each: kernel loading and allocator growth left behind
        for step in steps.values():
            step(batches[0])
        synchronize(device)
    result.tasks_per_s, result.faults_per_task = time_interleaved(steps, batches, args.repeats, device)
    del steps, batches
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the next setting starts without this one's cached blocks
    if not args.no_memory:
        measured = [n for n in names if not n.startswith("metaxfer-")]
        result.peak_mb = measure_memory(
            setting, measured, threads=args.threads, peers_root=args.peers_root, norm=args.norm,
            device=device.type,
        )
    return result


def summary_line(res: Result, peak_gflops: float) -> str:
    mx = res.tasks_per_s["metaxfer"]
    peer = res.fastest_peer()
    gflops = res.flops_per_task * mx / 1e9
    mem = f"{res.peak_mb['metaxfer'] / res.peak_mb[peer]:.2f}" if res.peak_mb else "not measured"
    return (
        f"{res.setting.label}: metaxfer {mx:.1f} tasks/s, fastest peer {peer} {res.tasks_per_s[peer]:.1f} tasks/s, "
        f"{gflops:.0f} GFLOP/s ({100 * gflops / peak_gflops:.0f}% of peak), ratio: {mx / res.tasks_per_s[peer]:.2f}, "
        f"memory ratio: {mem}"
    )


def detail_line(res: Result) -> str:
    parts = []
    for n, v in res.tasks_per_s.items():
        mem = f", {res.peak_mb[n]:.0f} MB" if n in res.peak_mb else ""
        err = f", grad diff {res.grad_error[n]:.1e}" if n in res.grad_error else ""
        faults = f", {res.faults_per_task[n]:.0f} faults/task" if n in res.faults_per_task else ""
        parts.append(f"{n} {v:.2f} tasks/s{mem}{faults}{err}")
    return f"  {res.setting.label}: " + "; ".join(parts) + f"; {res.flops_per_task / 1e9:.2f} GFLOP/task"


def verdict(res: Result) -> str:
    mx, peer = res.tasks_per_s["metaxfer"], res.fastest_peer()
    ratio = mx / res.tasks_per_s[peer]
    target = TARGETS[res.setting.algorithm]
    ok = ratio >= target
    text = f"speed target {target:.1f}x {'met' if ok else 'NOT met'}"
    if res.setting.algorithm in MEMORY_TARGETS and res.peak_mb:
        mem_ok = res.peak_mb["metaxfer"] <= res.peak_mb[peer] * MEMORY_TARGETS[res.setting.algorithm]
        text += f", memory target {'met' if mem_ok else 'NOT met'}"
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the 5-way 1-shot, 1-step settings")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where every implementation runs (auto: cuda when available, else cpu; default auto)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (pinned; reported on the CPU, where they matter; default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per implementation (best kept; default 1 with --quick, 4 otherwise)")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--peers", nargs="+", default=["learn2learn", "higher", "plain"],
                        choices=["learn2learn", "higher", "plain"], help="peers to compare with")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--bf16", action="store_true", help="also time metaxfer under bfloat16 autocast")
    parser.add_argument("--unfused", action="store_true",
                        help="also time metaxfer with its first block as conv2d + batch norm (the plain path)")
    parser.add_argument("--serial", action="store_true",
                        help="also time metaxfer with the tasks one at a time instead of in worker threads")
    parser.add_argument("--stacked", action="store_true",
                        help="also time metaxfer with the meta-batch in one stacked pass instead of task by task")
    parser.add_argument("--norm", default="transductive", choices=["transductive", "support"],
                        help="metaxfer's batch-norm mode (transductive = what the peers compute)")
    parser.add_argument("--peers-root", type=Path, default=DEFAULT_ROOT, help="where learn2learn is unpacked")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=4, metavar=("ALGO", "SHOTS", "STEPS", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))  # exits with the message, no traceback
    device: torch.device = args.device
    if args.child:
        child(args.child, args.threads, args.peers_root, args.norm, device)
        return
    args.repeats = args.repeats or (1 if args.quick else 4)
    torch.set_num_threads(args.threads)
    cpu = device.type == "cpu"
    tuned = tune_cpu_allocator() if cpu else False
    started = time.perf_counter()
    load = os.getloadavg()
    versions = load_peers(args.peers_root).versions if set(args.peers) - {"plain"} else {"torch": torch.__version__}
    print(f"metaxfer meta-learning throughput: Conv-4 1x28x28, {WAYS}-way, {QUERIES} queries/class, "
          f"meta-batch {META_BATCH}, inner lr {INNER_LR}")
    where = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads: {args.threads}" if cpu
             else f"device: {device_summary(device)}")
    print(f"{where}, load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if cpu:
        workers = min(args.threads, META_BATCH)
        print(f"metaxfer: batch norm {args.norm!r}; first-order MAML, ANIL and ProtoNets run the tasks in {workers} "
              f"worker thread(s) of 1 torch thread each, second-order MAML one task at a time on {args.threads}")
        print("allocator (every implementation, this process and the memory processes): "
              + ("glibc mmap threshold 256 MiB, trim threshold 1 GiB, one arena" if tuned else "defaults")
              + " (METAXFER_TUNE_MALLOC=0 for defaults)")
    else:
        print(f"metaxfer: batch norm {args.norm!r}; on {device.type} MAML runs the tasks one after the other, ANIL "
              "and ProtoNets the whole meta-batch in one stacked pass (no fused block, no worker threads)")
    print("peak memory: " + ("not measured (--no-memory)" if args.no_memory else memory_measure(device)))
    peak_start = matmul_peak(device=device)
    on = "" if cpu else f" on {device.type}"
    print(f"matmul peak (1024x1024 float32{on}, best of 5): {peak_start:.0f} GFLOP/s", flush=True)
    results = []
    for setting in settings(args.quick, args.algorithms):
        res = run_setting(setting, args)
        results.append(res)
        print(detail_line(res), f"| load {os.getloadavg()[0]:.1f} |", verdict(res), flush=True)
    peak_end = matmul_peak(device=device)
    peak = max(peak_start, peak_end)
    print(f"matmul peak again at the end: {peak_end:.0f} GFLOP/s (the higher, {peak:.0f}, is the reference)")
    print(f"elapsed: {time.perf_counter() - started:.0f} s, load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        payload = {
            "device": str(device), "device_name": None if cpu else device_summary(device),
            "memory_measure": None if args.no_memory else memory_measure(device),
            "threads": args.threads, "load_start": load, "load_end": os.getloadavg(), "matmul_gflops": peak,
            "matmul_gflops_start_end": [peak_start, peak_end], "norm": args.norm, "quick": args.quick,
            "versions": versions, "repeats": args.repeats,
            "results": [{**asdict(r), "line": summary_line(r, peak)} for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    for res in results:
        print(summary_line(res, peak))


if __name__ == "__main__":
    main()

"""Scaling of metaxfer's training from one process to two on this machine (one torch thread per process),
against one process that uses both cores through torch's own threads.

Each recipe trains the same global batch per step in one process and in two (gloo on the loopback, the way
``torchrun --nproc-per-node 2 -m metaxfer train RECIPE`` runs it): the meta-batch of episodes, or the GAN's batch of
images, is split between the processes and the gradients are all-reduced before each optimiser step. What is timed
is the engine's own training iteration (``Trainer._iteration``: the method's steps, the reductions, the optimiser
steps), in blocks of ``--block`` iterations after a warm-up, with a barrier around each block; start-up, evaluation
and checkpoints are not part of it. Launches alternate between one and two processes (``--repeats`` times), and the
median block gives the throughput.

One line per recipe ends with ``scaling 1->2: X`` = two-process throughput ÷ one-process throughput (2.0 would be
perfect). The load average is printed before and after: on a machine shared with other work, two processes compete
with it for the cores and the figure drops.

    python benchmarks/scaling.py                       # all recipes
    python benchmarks/scaling.py --only gan --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (recipe, items per step and what they are, extra overrides).
RECIPES: dict[str, tuple[str, int, str, list[str]]] = {
    "meta": ("configs/meta-digits.yaml", 4, "episodes (ProtoNet, Conv-4 32, 5-way 1-shot, meta-batch 4)", []),
    "meta-maml": ("configs/meta-digits.yaml", 4, "episodes (MAML 1 inner step, Conv-4 32, meta-batch 4)",
                  ["meta.algorithm=maml", "meta.inner_steps=1"]),
    "meta-b32": ("configs/meta-digits.yaml", 32, "episodes (ProtoNet, Conv-4 32, 5-way 1-shot, meta-batch 32)",
                 ["meta.meta_batch=32"]),
    "gan": ("configs/gan-digits-translation.yaml", 16, "image pairs (CycleGAN 16x16, batch 16)",
            ["cyclegan.task_weight=0"]),
    "gan-b64": ("configs/gan-digits-translation.yaml", 64, "image pairs (CycleGAN 16x16, batch 64)",
                ["cyclegan.task_weight=0", "data.batch_size=64"]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, name: str, warmup: int, blocks: int, block: int, out: str,
            threads: int = 1) -> None:
    """One process with ``threads`` torch threads: build the recipe's trainer, warm up, then time ``blocks`` blocks
    of ``block`` iterations."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    import torch
    import torch.distributed as tdist

    from metaxfer.engine import Run, Trainer, load_config

    torch.set_num_threads(threads)
    if world > 1:
        tdist.init_process_group("gloo", rank=rank, world_size=world)
    recipe, _, _, extra = RECIPES[name]
    cfg = load_config(ROOT / recipe, ["device=cpu", f"threads={threads}", *extra])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Run(tmp), device=torch.device("cpu"), progress_bar=False)  # writes nothing
        it = 0
        for _ in range(warmup):
            trainer._iteration(it)
            it += 1
        times = []
        for _ in range(blocks):
            trainer.dist.barrier(what="benchmark")
            t0 = time.perf_counter()
            for _ in range(block):
                trainer._iteration(it)
                it += 1
            trainer.dist.barrier(what="benchmark")
            times.append(time.perf_counter() - t0)
        comm = []
        if world > 1:  # what the gradient all-reduces of one iteration cost alone, on this machine
            sizes = [sum(p.numel() for g in trainer.method.optimizers[s.optimizer].param_groups for p in g["params"])
                     for s in trainer.steps if s.optimizer is not None for _ in range(s.repeat)]
            flats = [torch.zeros(n) for n in sizes]
            for _ in range(12):
                trainer.dist.barrier(what="benchmark")
                t0 = time.perf_counter()
                for flat in flats:
                    tdist.all_reduce(flat)
                comm.append(time.perf_counter() - t0)
    if rank == 0:
        Path(out).write_text(json.dumps({"times": times, "comm": comm}))
    if world > 1:
        tdist.destroy_process_group()


def block_times(name: str, *, world: int, warmup: int, blocks: int, block: int,
                threads: int = 1) -> dict[str, list[float]]:
    """Seconds per block of ``block`` iterations on ``world`` processes of ``threads`` torch threads each (``times``)
    and, with two processes, seconds of the gradient all-reduces of one iteration measured alone (``comm``)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "times.json"
        mp.spawn(_worker, args=(world, _free_port(), name, warmup, blocks, block, str(out), threads), nprocs=world,
                 join=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(RECIPES), action="append", help="recipes to run (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="launches of each process count, alternating")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per launch")
    parser.add_argument("--block", type=int, default=10, help="iterations per block")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, one thread per process unless said; blocks of {args.block} "
          f"iterations, {args.blocks} blocks x {args.repeats} launches per process count")
    print("load average before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    for name in args.only or list(RECIPES):
        recipe, items, what, _ = RECIPES[name]
        # (processes, threads per process): one process on one core, two processes, and one process using both
        # cores through torch's own threads (what the two cores give without torch.distributed)
        layouts = [(1, 1), (2, 1), (1, 2)]
        times: dict[tuple[int, int], list[float]] = {lay: [] for lay in layouts}
        comm: list[float] = []
        for _ in range(args.repeats):
            for world, threads in layouts:
                got = block_times(name, world=world, warmup=args.warmup, blocks=args.blocks, block=args.block,
                                  threads=threads)
                times[(world, threads)] += got["times"]
                comm += got["comm"]
        rate = {lay: items * args.block / statistics.median(t) for lay, t in times.items()}
        step_ms = 1e3 * statistics.median(times[(2, 1)]) / args.block
        print(f"{name:9s} {recipe} {what}: 1 process {rate[(1, 1)]:.1f}/s, 2 processes {rate[(2, 1)]:.1f}/s "
              f"(gradient all-reduce {1e3 * statistics.median(comm):.1f} ms of {step_ms:.0f} ms per iteration), "
              f"1 process x 2 threads {rate[(1, 2)]:.1f}/s  scaling 1->2: {rate[(2, 1)] / rate[(1, 1)]:.2f}",
              flush=True)
    print("load average after:  %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()

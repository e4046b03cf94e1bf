"""Episode sampling rate: 5-way 5-shot 15-query episodes of 28×28 images from an in-memory domain.

Target (issue 2): at least 2,000 episodes/s, so that sampling is never what a training run waits for.

    .venv/bin/python benchmarks/episodes.py [--domain synthetic] [--seconds 3] [--threads 1]

The last line is ``episodes/s: N``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from metaxfer.data import EpisodeSampler, create_domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", default="synthetic", help="registered domain (default: synthetic, 100 classes × 60)")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the best is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pinned, reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"num_classes": 100, "per_class": 60, "size": 28} if args.domain == "synthetic" else {}
    domain = create_domain(args.domain, **options)
    sampler = EpisodeSampler(domain, ways=args.ways, shots=args.shots, queries=args.queries, seed=0)
    print(f"domain: {domain.describe()}")
    print(f"setting: {args.ways}-way {args.shots}-shot {args.queries}-query, torch {torch.__version__}, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}")
    for _ in range(50):  # warm-up
        sampler.sample()
    rates = []
    for r in range(args.repeats):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < args.seconds:
            for _ in range(50):
                sampler.sample()
            count += 50
        rates.append(count / elapsed)
        print(f"repeat {r + 1}: {rates[-1]:.0f} episodes/s")
    best = max(rates)
    print(f"target: 2000 episodes/s -> {'met' if best >= 2000 else 'NOT met'}")
    print(f"episodes/s: {best:.0f}")


if __name__ == "__main__":
    main()

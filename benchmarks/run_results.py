"""Run ``metaxfer run`` comparisons and write their tables into docs/results.md (section ``run-results``).

    .venv/bin/python benchmarks/run_results.py                       # every recipe whose data is here, default size
    .venv/bin/python benchmarks/run_results.py --size full           # the long runs (one section per recipe)
    .venv/bin/python benchmarks/run_results.py --recipes digits --size quick

Each comparison is an ordinary ``metaxfer run`` into ``runs/results/<recipe>-<size>`` (an existing folder is
continued, so an interrupted run loses nothing, and its time adds up the sittings); the table lists every path's accuracy (mean ± 95% CI over the same
target episodes), the paired difference between the best path and each other one, and the time each path took.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch

from metaxfer.compare import list_recipes, load_recipe, run_comparison
from metaxfer.compare.runner import Comparison
from metaxfer.data import create_domain
from metaxfer.errors import MetaxferError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def available(recipe_name: str) -> str | None:
    """Why a recipe cannot run here (its data is missing), or ``None``."""
    recipe = load_recipe(recipe_name)
    import yaml

    domains = set()
    for spec in [*recipe.trainings.values()]:
        raw = yaml.safe_load(recipe.config_path(spec.config).read_text(encoding="utf-8"))
        domains.add(raw.get("data", {}).get("domain", ""))
    for name in sorted(d for d in domains if d):
        try:
            create_domain(name)
        except MetaxferError as exc:
            return f"{name}: {str(exc).splitlines()[0]}"
    return None


def table(comparison: Comparison, *, command: str) -> str:
    """Markdown for one comparison (its time: the wall time of every sitting that worked on it)."""
    d = comparison.summary.to_dict()
    seconds = d["seconds"]
    s = d["setting"]
    rows = sorted(comparison.results, key=lambda r: -r.accuracy)
    lines = [
        f"### {d['title']}",
        "",
        f"`{command}` ({comparison.size} size, {seconds / 60:.1f} min, {d['threads']} thread(s), {d['device']}). "
        f"Target {s['target']}: {s['ways']}-way {s['shots']}-shot, {s['queries']} queries per class, "
        f"{s['episodes']} episodes (seed {s['seed']}, fingerprint `{s['fingerprint']}`).",
        "",
        "| path | family | accuracy (%) | best − this (paired, pp) | train s | score s |",
        "|---|---|---|---|---|---|",
    ]
    paired = {p["other"]: p for p in d["paired"]}
    for r in rows:
        p = paired.get(r.name)
        gap = "best" if p is None else (f"{100 * p['difference']:+.1f} ± {100 * p['ci95']:.1f}"
                                         + (" *" if p["significant"] else ""))
        lines.append(f"| {r.name} | {r.family} | {100 * r.accuracy:.1f} ± {100 * r.ci95:.1f} | {gap} | "
                     f"{r.train_seconds:.0f} | {r.eval_seconds:.0f} |")
    lines += ["", "`*`: the paired 95% interval of the difference excludes zero."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=None, help="recipe names (default: all found)")
    parser.add_argument("--size", default="default", choices=("quick", "default", "full"))
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "results", help="parent of the run folders")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave docs/results.md alone")
    args = parser.parse_args()
    names = args.recipes if args.recipes else list(list_recipes())
    sections = []
    for name in names:
        missing = available(name)
        if missing:
            print(f"skipping {name}: data not here ({missing})", flush=True)
            sections.append(f"### {name}\n\nNot run: {missing}.")
            continue
        recipe = load_recipe(name)
        out = args.root / f"{name}-{args.size}"
        flag = {"quick": " --quick", "full": " --full", "default": ""}[args.size]
        command = f"metaxfer run {name}{flag} --out {shlex.quote(os.path.relpath(out, ROOT))}"
        print(f"$ {command}", flush=True)
        comparison = run_comparison(recipe, out=out, size=args.size, command=command,
                                    say=lambda text: print(f"  {text}", flush=True))
        sections.append(table(comparison, command=command))
        print(sections[-1], flush=True)
    if args.no_write:
        return
    if args.size == "default":
        header = (f"Written by `.venv/bin/python benchmarks/run_results.py --size {args.size}` on a machine with "
                  f"{os.cpu_count()} CPU(s), torch {torch.__version__}, load average at the end "
                  f"{os.getloadavg()[0]:.1f}. Times include other processes sharing the machine.")
        write_section("run-results", "\n\n".join([header, *sections]), heading="The main job: every path compared")
        return
    # the long sizes take hours per recipe: each recipe has its own section, so that recipes run in different
    # sittings do not overwrite one another
    for name, body in zip(names, sections):
        header = (f"Written by `.venv/bin/python benchmarks/run_results.py --recipes {name} --size {args.size}` on a "
                  f"machine with {os.cpu_count()} CPU(s), torch {torch.__version__}, load average at the end "
                  f"{os.getloadavg()[0]:.1f}. Times include other processes sharing the machine.")
        write_section(f"run-results-{args.size}-{name}", "\n\n".join([header, body]),
                      heading=f"The main job, {args.size} size: {name}")


if __name__ == "__main__":
    main()

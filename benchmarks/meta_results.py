"""The meta-learning results table of docs/results.md: every algorithm and baseline on every cross-domain recipe.

For each recipe (configs/meta-<recipe>.yaml) and algorithm it trains a run through the engine (`metaxfer train`'s
code path: model selection on source-validation episodes, best checkpoint), evaluates it on the recipe's target
(`metaxfer evaluate`'s code path: fixed episodes, mean ± 95% CI, seed and fingerprint), and writes one table per
recipe into the "Meta-learning" section of docs/results.md, between its markers, with the command that made it.
Scratch is evaluated straight from the recipe (nothing to train).

    .venv/bin/python benchmarks/meta_results.py --quick            # < 10 min on 2 CPU cores: few steps, 100 episodes,
                                                                   # the 5-way 1-shot setting of each recipe
    .venv/bin/python benchmarks/meta_results.py                    # the recipes' own training, 600 episodes, every
                                                                   # setting (hours on a CPU)
    .venv/bin/python benchmarks/meta_results.py --recipes digits --algorithms protonet maml --no-write

Threads: each run is pinned to --threads PyTorch threads (default 1) and --workers runs go at once (default 2), so
the script uses about threads × workers cores; small networks run fastest on one thread each.
The runs stay under --out (default runs/meta-results-<mode>-<time>/<recipe>/<algorithm>), with a results.json.
Resuming: run it again with the same options and --out set to the first sitting's folder. Finished jobs are
read back from their job-result.json, a run killed during training resumes from its newest checkpoint, and the
table's time adds the sittings up (sittings.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    "glyphs": "configs/meta-glyphs.yaml",
    "omniglot": "configs/meta-omniglot.yaml",
    "emoji": "configs/meta-emoji.yaml",
    "digits": "configs/meta-digits.yaml",
}
ALGORITHMS = ("maml", "fomaml", "anil", "metasgd", "reptile", "protonet", "matchingnet", "metalstm",
              "scratch", "baseline", "baseline++")
BASELINES = ("scratch", "baseline", "baseline++")
#: Per-algorithm settings (overrides of every recipe), from the papers where they fit small Conv-4 networks.
PRESETS: dict[str, list[str]] = {
    "maml": ["meta.inner_lr=0.4", "meta.inner_steps=1", "meta.eval_inner_steps=3"],
    "fomaml": ["meta.inner_lr=0.1", "meta.inner_steps=5"],
    "anil": ["meta.inner_lr=0.4", "meta.inner_steps=5"],
    "metasgd": ["meta.inner_lr=0.4", "meta.inner_steps=1"],
    "reptile": ["meta.inner_lr=0.02", "meta.inner_steps=5", "train.optimizer=sgd", "train.momentum=0",
                "train.lr=1.0", "train.schedule=linear"],
    "protonet": [],
    "matchingnet": [],
    "metalstm": ["meta.inner_steps=5", "meta.options.hidden=16", "train.grad_clip=0.25"],
    "scratch": ["meta.options.steps=100", "meta.options.lr=0.001"],
    "baseline": ["meta.options.finetune_steps=100"],
    "baseline++": ["meta.options.finetune_steps=100"],
}
QUICK_STEPS = 20
QUICK_EPISODES = 100
#: The quick setting's cuts besides steps and episodes: two episodes per outer update, one validation (at the end) on
#: 20 episodes, at most 5 queries per class in target episodes, 20 Adam steps per episode for scratch, 3 inner steps
#: for the Meta-LSTM.
QUICK_OVERRIDES = ["meta.meta_batch=2", "train.log_every=5", "meta.val_episodes=20"]
QUICK_QUERIES = 5
QUICK_ALGORITHM_OVERRIDES = {"scratch": ["meta.options.steps=20"], "metalstm": ["meta.inner_steps=3"]}
#: The section of docs/results.md this script writes (between ``<!-- meta-results:start -->`` and its end marker),
#: and the heading put above it when the file does not hold it yet.
SECTION, HEADING = "meta-results", "Meta-learning"
#: The top of a results file that has no ``# `` title yet.
HEADER = ("# Results\n\nEvery table here is written by a script in `benchmarks/` from runs it performs; each section "
          "names its command. A script rewrites only its own section, between its `<!-- name:start -->` and "
          "`<!-- name:end -->` markers: edit the text outside them.")


# ------------------------------------------------------------------------------------------------- one job
def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train (unless scratch) and evaluate one (recipe, algorithm, ways) in this process; returns plain results.

    Resumable: the job keeps its results in ``<out>/job-result.json`` (rewritten after training and after each
    setting), a run killed part way through training is resumed from its newest checkpoint, and a job whose file
    holds every setting is not run again. Training time adds up over sittings (``<out>/train-sittings.json``)."""
    import torch

    from metaxfer.engine import load_config, resume, train
    from metaxfer.engine.device import cpu_threads
    from metaxfer.engine.files import atomic_write_json
    from metaxfer.engine.runs import RUN_FILE, RunError, SittingClock
    from metaxfer.errors import MetaxferError
    from metaxfer.methods.crossdomain import parse_setting
    from metaxfer.methods.meta_eval import evaluate_setting, load_model, model_from_config, resolve_target, write_record

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(job["threads"])
    out = Path(job["out"])
    saved = _saved_result(job)
    if saved is not None and not saved["errors"] and set(saved["records"]) >= set(job["settings"]):
        return saved
    cfg = load_config(ROOT / RECIPES[job["recipe"]], job["overrides"])
    result: dict[str, Any] = {**{k: job[k] for k in ("recipe", "algorithm", "ways")}, "records": {}, "errors": {}}
    if saved is not None and not saved["errors"]:
        result.update(saved)
    keep = out / JOB_FILE

    def save() -> None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(keep, {"job": _job_key(job), "result": result})

    start = time.perf_counter()
    try:
        if cfg.meta.algorithm == "scratch":
            model = model_from_config(cfg)
            result["train_s"], result["val_acc"] = 0.0, None
        else:
            summary_path = out / "summary.json"
            if not summary_path.exists():
                with SittingClock(out / "train-sittings.json") as clock:
                    if (out / RUN_FILE).exists():
                        ended = resume(out, progress_bar=False)
                    else:
                        ended = train(cfg, out=out, progress_bar=False)
                result["train_s"] = round(clock.write(), 1)
                if ended.state != "finished":
                    raise RunError(f"training stopped at step {ended.step} ({ended.state}); run the same command "
                                   f"with --out {out.parents[1]} to resume it")
            summary = json.loads(summary_path.read_text())
            result.setdefault("train_s", SittingClock.recorded(out / "train-sittings.json") or summary["elapsed_s"])
            best = summary.get("best")
            result["val_acc"] = best["value"] if best else None
            result["best_step"] = best["step"] if best else None
            save()
            model = load_model(out)
        with cpu_threads(job["threads"]):
            target = resolve_target(model)
            for text in job["settings"]:
                if text in result["records"]:
                    continue
                setting = parse_setting(text, queries=cfg.meta.eval.queries)
                record = evaluate_setting(model, target, setting, episodes=job["episodes"], seed=cfg.meta.eval.seed,
                                          batch_size=cfg.meta.eval.batch_size)
                write_record(out, record)
                result["records"][text] = {k: record[k] for k in ("accuracy", "ci", "episodes", "seed", "fingerprint",
                                                                  "elapsed_s")}
                save()
    except (MetaxferError, RuntimeError, ValueError) as exc:  # reported in the table, the other jobs go on
        result["errors"]["run"] = f"{type(exc).__name__}: {exc}"
    result["wall_s"] = round(result.get("wall_s", 0.0) + time.perf_counter() - start, 1)
    save()
    return result


#: Each job's results, in its run folder: what makes the script resumable.
JOB_FILE = "job-result.json"


def _job_key(job: dict[str, Any]) -> dict[str, Any]:
    """What must match for a job's saved results to stand for it (its folder aside)."""
    return {k: job[k] for k in ("recipe", "algorithm", "ways", "overrides", "episodes")}


def _saved_result(job: dict[str, Any]) -> dict[str, Any] | None:
    """The results an earlier sitting saved for this very job, or None (none, or saved for other settings).

    Raises:
        SystemExit: The folder holds a job with other settings: the caller chose a folder of another invocation."""
    path = Path(job["out"]) / JOB_FILE
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved["job"] != _job_key(job):
        changed = sorted(k for k, v in _job_key(job).items() if saved["job"].get(k) != v)
        raise SystemExit(f"{path} was written for other settings ({', '.join(changed)} differ): resume with the "
                         "options of the invocation that made it, or choose another --out")
    return saved["result"]


# ------------------------------------------------------------------------------------------------- planning
def plan(args: argparse.Namespace, root: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The jobs, and the settings (and their default queries) shown per recipe."""
    from metaxfer.engine import load_config
    from metaxfer.meta import ALGORITHMS as REGISTRY
    from metaxfer.methods.crossdomain import parse_setting

    jobs, shown = [], {}
    for recipe in args.recipes:
        base = load_config(ROOT / RECIPES[recipe])
        settings = list(base.meta.eval.settings)
        if args.quick:
            settings = [s for s in settings if parse_setting(s, queries=1).ways == base.meta.ways
                        and parse_setting(s, queries=1).within is None][:1]
        queries = min(base.meta.eval.queries, QUICK_QUERIES) if args.quick else base.meta.eval.queries
        shown[recipe] = {"settings": settings, "queries": queries}
        for algorithm in args.algorithms:
            way_head = REGISTRY.get(algorithm).uses_way_head and REGISTRY.get(algorithm).needs_meta_training
            groups: dict[int, list[str]] = {}
            for s in settings:
                ways = parse_setting(s, queries=1).ways if way_head else base.meta.ways
                groups.setdefault(ways, []).append(s)
            for ways, wanted in groups.items():
                overrides = [*PRESETS[algorithm], f"meta.algorithm={algorithm}", f"threads={args.threads}",
                             "device=cpu", f"meta.eval.episodes={args.episodes}"]
                if ways != base.meta.ways:
                    overrides.append(f"meta.ways={ways}")
                if args.quick:
                    overrides += [*QUICK_OVERRIDES, f"train.steps={args.steps}", f"train.eval_every={args.steps}",
                                  f"train.checkpoint_every={args.steps}", f"meta.eval.queries={queries}"]
                    overrides += QUICK_ALGORITHM_OVERRIDES.get(algorithm, [])
                elif args.steps:
                    overrides.append(f"train.steps={args.steps}")
                name = algorithm + (f"-{ways}way" if ways != base.meta.ways else "")
                jobs.append({"recipe": recipe, "algorithm": algorithm, "ways": ways, "settings": wanted,
                             "overrides": overrides, "episodes": args.episodes, "threads": args.threads,
                             "out": str(root / recipe / name)})
    cost = {"metalstm": 0, "reptile": 1, "maml": 2, "fomaml": 3, "scratch": 4}
    jobs.sort(key=lambda j: (cost.get(j["algorithm"], 9), j["recipe"]))  # the longest first: workers finish together
    return jobs, shown


# ------------------------------------------------------------------------------------------------- the table
def _cell(record: dict[str, Any] | None) -> str:
    return "—" if record is None else f"{100 * record['accuracy']:.1f} ± {100 * record['ci']:.1f}"


def _label(setting: str, queries: int) -> str:
    from metaxfer.methods.crossdomain import parse_setting

    s = parse_setting(setting, queries=queries)
    return f"{s.ways}-way {s.shots}-shot{' within ' + s.within if s.within else ''} ({s.queries} q)"


def render(results: list[dict[str, Any]], shown: dict[str, dict[str, Any]], args: argparse.Namespace, command: str,
           wall: float) -> str:
    """The Markdown of the section (without its markers)."""
    import torch

    from metaxfer.engine import load_config

    mode = "quick" if args.quick else "full"
    lines = [
        f"Produced by `{command}` ({mode} setting"
        + (f": {args.steps} training iterations per run of 2 episodes each, one validation on 20 episodes at the "
           f"end, {args.episodes} target episodes with at most {QUICK_QUERIES} queries per class, scratch with 20 "
           "Adam steps per episode, the Meta-LSTM with 3 inner steps, and only the 5-way 1-shot setting of each "
           "recipe. Quick "
           "numbers show that everything runs end to end and how the methods compare after very little training; "
           "they are not the recipes' results, which come from the full run: "
           "`.venv/bin/python benchmarks/meta_results.py`" if args.quick else
           f": the recipes' own training length, {args.episodes} target episodes per setting")
        + ").",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} CPU ({multiprocessing.cpu_count()} cores, "
        f"shared with other work), torch {torch.__version__}; each run pinned to {args.threads} thread(s), "
        f"{args.workers} runs at a time; {wall / 60:.1f} min in all. Cells: accuracy on fixed target episodes, "
        "mean ± 95% confidence interval (%). Validation: mean accuracy on the source-validation episodes at the "
        "selected (best) checkpoint. Train: wall seconds of training (set-up and validation included, over every "
        "sitting). "
        "Per-algorithm settings: `PRESETS` in benchmarks/meta_results.py; every run folder (config, metrics, "
        "checkpoints, `evaluation-*.json` with per-episode accuracies, episode seed and fingerprint) is kept under "
        f"`{args.out_root}`.",
        "",
    ]
    by_key = {(r["recipe"], r["algorithm"]): [] for r in results}
    for r in results:
        by_key[(r["recipe"], r["algorithm"])].append(r)
    for recipe, what in shown.items():
        cfg = load_config(ROOT / RECIPES[recipe])
        lines += [f"### {recipe} (`{RECIPES[recipe]}`)", ""]
        settings, q = what["settings"], what["queries"]
        header = ["algorithm", *[_label(s, q) for s in settings], "validation", "train s"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        best: dict[str, dict[str, tuple[float, float, str]]] = {s: {} for s in settings}
        for algorithm in args.algorithms:
            jobs = by_key.get((recipe, algorithm), [])
            records = {s: rec for j in jobs for s, rec in j["records"].items()}
            errors = [e for j in jobs for e in j["errors"].values()]
            val = next((j.get("val_acc") for j in jobs if j["ways"] == cfg.meta.ways), None)
            train_s = sum(j.get("train_s") or 0.0 for j in jobs)
            cells = [_cell(records.get(s)) for s in settings]
            if errors:
                cells = [c if c != "—" else "error" for c in cells]
            name = f"**{algorithm}**" if algorithm in BASELINES else algorithm
            lines.append("| " + " | ".join([name, *cells, "—" if val is None else f"{100 * val:.1f}",
                                             "—" if algorithm == "scratch" else f"{train_s:.0f}"]) + " |")
            for s, rec in records.items():
                kind = "baseline" if algorithm in BASELINES else "meta"
                if kind not in best[s] or rec["accuracy"] > best[s][kind][0]:
                    best[s][kind] = (rec["accuracy"], rec["ci"], algorithm)
        lines.append("")
        for s in settings:
            if "meta" in best[s] and "baseline" in best[s]:
                (ma, mc, mn), (ba, bc, bn) = best[s]["meta"], best[s]["baseline"]
                verdict = ("meta-learning is ahead" if ma - mc > ba + bc else
                           "the baselines are ahead" if ba - bc > ma + mc else "the intervals overlap")
                lines.append(f"- {_label(s, q)}: best meta-learner {mn} {100 * ma:.1f} ± {100 * mc:.1f}, "
                             f"best baseline {bn} {100 * ba:.1f} ± {100 * bc:.1f}: {verdict}.")
        errors = [f"{r['algorithm']}: {e}" for r in results if r["recipe"] == recipe for e in r["errors"].values()]
        lines += [f"- error in {e}" for e in errors]
        lines.append("")
    lines.append("Baselines in bold: **scratch** (a fresh Conv-4 trained on each support set), **baseline** and "
                 "**baseline++** (Chen et al. 2019: pre-train a classifier on the source classes, fit a new linear or "
                 "cosine head on each support set).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, 100 episodes, 5-way 1-shot only")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--steps", type=int, default=None, help=f"training iterations (quick: {QUICK_STEPS})")
    parser.add_argument("--episodes", type=int, default=None, help=f"target episodes (quick: {QUICK_EPISODES}; 600)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per run")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of the runs; an earlier invocation's folder resumes it (same options)")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md", help="file to write")
    parser.add_argument("--no-write", action="store_true", help="print the table instead of writing it")
    parser.add_argument("--render", type=Path, default=None,
                        help="write the table of an earlier invocation's results.json instead of running anything")
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        vars(args).update(saved["args"])
        body = render(saved["results"], saved["shown"], args, saved["command"], saved["wall_s"])
        if args.no_write:
            print(body)
        else:
            write_section(SECTION, body, path=args.results, heading=HEADING, title=HEADER)
        return
    if args.quick:
        args.steps = args.steps or QUICK_STEPS
    args.episodes = args.episodes or (QUICK_EPISODES if args.quick else 600)
    mode = "quick" if args.quick else "full"
    root = args.out or ROOT / "runs" / f"meta-results-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    args.out_root = str(root.relative_to(ROOT)) if root.is_relative_to(ROOT) else str(root)
    command = ".venv/bin/python benchmarks/meta_results.py " + " ".join(sys.argv[1:] if argv is None else argv)
    command = re.sub(r"\s+", " ", command).strip()
    jobs, shown = plan(args, root)
    results = [saved for job in jobs if (saved := _saved_result(job)) is not None and not saved["errors"]
               and set(saved["records"]) >= set(job["settings"])]
    done = {(r["recipe"], r["algorithm"], r["ways"]) for r in results}
    todo = [job for job in jobs if (job["recipe"], job["algorithm"], job["ways"]) not in done]
    print(f"{len(jobs)} runs, {args.workers} at a time, {args.threads} thread(s) each -> {root}"
          + (f" ({len(results)} done in earlier sittings)" if results else ""), flush=True)
    from metaxfer.engine.runs import SittingClock

    with SittingClock(root / "sittings.json") as clock, multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for r in pool.imap_unordered(run_job, todo):
            results.append(r)
            cells = ", ".join(f"{s} {_cell(rec)}" for s, rec in r["records"].items())
            problem = f" ERROR {r['errors']}" if r["errors"] else ""
            print(f"[{len(results)}/{len(jobs)}] {r['recipe']:8s} {r['algorithm']:11s} {r['wall_s']:6.0f} s  "
                  f"{cells}{problem}", flush=True)
    wall = clock.write()
    saved_args = {k: vars(args)[k] for k in ("quick", "steps", "episodes", "threads", "workers", "out_root",
                                             "recipes", "algorithms")}
    (root / "results.json").write_text(json.dumps({"command": command, "args": saved_args, "shown": shown,
                                                   "wall_s": wall, "jobs": jobs, "results": results}, indent=1))
    body = render(results, shown, args, command, wall)
    if args.no_write:
        print(body)
    else:
        write_section(SECTION, body, path=args.results, heading=HEADING, title=HEADER)
        print(f"wrote the Meta-learning section of {args.results} ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()

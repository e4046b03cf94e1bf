"""Run the GAN transfer recipes and write their table into docs/results.md.

Each recipe (``configs/gan-*.yaml``) is trained with ``metaxfer train``; its final evaluation holds the transfer
accuracies (``eval/transfer/<set>/acc`` with a 95% interval) and the judge's measures of the made images
(``eval/judge/<set>/...``); this script keeps its row as ``gan-results.json`` in the run folder, next to the method's
own ``transfer.json`` (per-seed accuracies). The table goes between ``<!-- gan-results:start -->`` and ``<!-- gan-results:end -->`` in
``docs/results.md`` (the markers are appended at the end of the file when absent; nothing else is changed).

    python benchmarks/gan_results.py --quick       # short runs (minutes), labelled "quick" in the table
    python benchmarks/gan_results.py               # the recipes' own settings
    python benchmarks/gan_results.py --only gan-digits-translation --root runs/gan-results

A run folder that already exists is continued (``metaxfer resume``) when it holds an interrupted run, and reused when
it holds a finished one, so a long sitting that is stopped loses nothing; the table's time adds up the sittings.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: The section of docs/results.md this script writes (between ``<!-- gan-results:start -->`` and its end marker).
SECTION = "gan-results"
#: The file in each run folder that keeps this script's row (the method's own transfer.json is left alone).
ROW_FILE = "gan-results.json"

#: recipe → (what it compares, overrides of the quick setting)
RECIPES: dict[str, tuple[str, list[str]]] = {
    "gan-digits-translation": (
        "MNIST → optdigits (16×16): source only / CycleGAN-translated / target oracle",
        ["train.steps=60", "train.eval_every=60", "train.checkpoint_every=60", "cyclegan.width=8", "cyclegan.blocks=1",
         "cyclegan.transfer.steps=150", "cyclegan.transfer.seeds=1"],
    ),
    "gan-fewshot-glyphs": (
        "font glyphs, 20 new letters, 1 shot: shots / + DAGAN variants / + classic augmentations",
        ["train.steps=60", "train.eval_every=60", "train.checkpoint_every=60", "dagan.width=8", "dagan.d_width=8",
         "dagan.eval_images=100", "dagan.feature_epochs=1", "dagan.transfer.steps=150", "dagan.transfer.seeds=1"],
    ),
    "gan-fewshot-glyphs-long": (
        "the same with the DAGAN trained 3000 steps instead of 400",
        ["train.steps=120", "train.eval_every=120", "train.checkpoint_every=120", "dagan.width=8", "dagan.d_width=8",
         "dagan.eval_images=100", "dagan.feature_epochs=1", "dagan.transfer.steps=150", "dagan.transfer.seeds=1"],
    ),
    "gan-fewshot-emoji-plants": (
        "emoji plants, 1 shot (Twemoji or OpenMoji), test on the other style: shots / + DAGAN variants / + classic "
        "augmentations",
        ["train.steps=60", "train.eval_every=60", "train.checkpoint_every=60", "dagan.width=8", "dagan.d_width=8",
         "dagan.feature_epochs=1", "dagan.transfer.steps=100", "dagan.transfer.seeds=2"],
    ),
    "gan-emoji-style": (
        "Twemoji ↔ OpenMoji translation (no classifier: L1 to the same emoji in the other style)",
        ["train.steps=40", "train.eval_every=40", "train.checkpoint_every=40", "cyclegan.width=8", "cyclegan.blocks=1"],
    ),
}


#: rows that run another row's config with more overrides (at every size): row → (config name, overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "gan-fewshot-glyphs-long": ("gan-fewshot-glyphs",
                                ["train.steps=3000", "train.eval_every=1000", "train.checkpoint_every=1000"]),
}


def run_recipe(name: str, *, quick: bool, root: Path, threads: int) -> dict:
    """Train one recipe with the CLI and return its summary plus the command and the time it took."""
    from metaxfer.engine import Run
    from metaxfer.engine.runs import SittingClock

    out = root / f"{name}{'-quick' if quick else ''}"
    config, extra = VARIANTS.get(name, (name, []))
    overrides = (extra if not quick else []) + (RECIPES[name][1] if quick else []) + [f"threads={threads}", "device=cpu"]
    cmd = [sys.executable, "-m", "metaxfer", "train", f"configs/{config}.yaml", *overrides, "--out", str(out)]
    shown = " ".join(["metaxfer", "train", f"configs/{config}.yaml", *overrides, "--out", str(out)])
    # wall time over every sitting that worked on this run (a long run may take several); kept beside the run folder,
    # which `metaxfer train` wants empty
    clock_file = root / "sittings" / f"{out.name}.json"
    if out.exists() and any(out.iterdir()):
        state = Run.open(out).state() if (out / "run.json").exists() else "not a run"
        if state != "not a run":
            changed = config_changes(out, config, overrides)
            if changed:
                raise SystemExit(f"{out} was trained with another configuration than configs/{config}.yaml gives now "
                                 f"(key: run's value != now: {'; '.join(changed[:6])}): remove it to train again, or "
                                 "pass another --root")
        if state == "finished" and (out / ROW_FILE).exists():
            print(f"{out}: finished earlier, reusing it", flush=True)
            return json.loads((out / ROW_FILE).read_text())
        if state not in ("resumable", "finished"):
            raise SystemExit(f"{out} exists and holds a {state} run: remove it or pass another --root")
        cmd = [sys.executable, "-m", "metaxfer", "resume", str(out)]
        if state == "finished":  # trained, but this script stopped before writing its row: nothing to run
            cmd = []
    else:
        clock_file.unlink(missing_ok=True)  # a fresh run: an old clock belongs to a removed folder
    with SittingClock(clock_file) as clock:
        if cmd:
            print(f"$ {shown}" if cmd[3] == "train" else f"$ metaxfer resume {out}  # continuing: {shown}", flush=True)
            proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    seconds = clock.write()
    summary = json.loads((out / "summary.json").read_text())
    final = summary["final"]
    transfer: dict[str, dict[str, float]] = {}
    judged: dict[str, dict[str, float]] = {}
    for key, value in final.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[1] in ("transfer", "judge"):
            (transfer if parts[1] == "transfer" else judged).setdefault(parts[2], {})[parts[3]] = value
    result = {"recipe": name, "quick": quick, "command": shown, "seconds": round(seconds, 1), "final": final,
              "transfer": transfer, "judged": judged,
              "ci": "95%: Student t over classifier seeds when seeds >= 2, else Wilson interval over test images"}
    (out / ROW_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def config_changes(out: Path, name: str, overrides: list[str]) -> list[str]:
    """``key: was != now`` for every setting in which the run in ``out`` differs from ``configs/<name>.yaml`` with
    ``overrides`` (empty when it is the same run), so that a changed recipe is not answered by a stale run."""
    from metaxfer.engine.config import config_diff, config_to_dict, load_config

    return config_diff(config_to_dict(load_config(out / "config.yaml")),
                       config_to_dict(load_config(ROOT / "configs" / f"{name}.yaml", overrides)))


def _cell(r: dict[str, float]) -> str:
    return f"{100 * r['acc']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def table(results: list[dict], *, quick: bool, threads: int) -> str:
    """The markdown section, without its markers (a blank line at each end keeps it apart from them)."""
    label = "QUICK runs (--quick: a few dozen GAN steps; the numbers show the pipeline works, not what the recipes reach)" \
        if quick else "full recipe settings"
    lines = ["", f"### GAN transfer recipes ({label})", "",
             f"Written by `python benchmarks/gan_results.py{' --quick' if quick else ''}` (CPU, {threads} threads, "
             "torch " + _torch_version() + "). Accuracy on the real target test images in %, with a 95% interval: "
             "Student t over classifier seeds where a recipe uses two or more seeds (cut to [0, 100]), else the Wilson "
             "interval over test images. Judge: a classifier trained on half of each "
             "class's real test images labels the other half (real) and each kind of made image against the class it "
             "was made for (accuracy %); spread: mean L1 distance between two images of one class (pixels in [0, 1]; "
             "docs/gans.md). Each run folder holds this row (`gan-results.json`), the sample grids (`samples/`) and "
             "the method's `transfer.json` with per-seed accuracies (in the digits, glyphs and plants folders an "
             "earlier version of this script wrote its row over that file).", "",
             "| recipe | what | training sets: accuracy [95% CI] | judge: accuracy % (spread) | other | time |",
             "|---|---|---|---|---|---|"]
    for r in results:
        sets = "; ".join(f"{k}: {_cell(v)}" for k, v in r["transfer"].items()) or "—"
        judged = "; ".join(f"{k}: {100 * v['acc']:.1f}" + (f" ({v['spread']:.3f})" if "spread" in v else "")
                           for k, v in r.get("judged", {}).items()) or "—"
        other = ", ".join(f"{k.removeprefix('eval/')}={v:.3g}" for k, v in r["final"].items()
                          if "/transfer/" not in k and "/judge/" not in k)
        lines.append(f"| `{r['recipe']}` | {RECIPES[r['recipe']][0]} | {sets} | {judged} | {other} | "
                     f"{r['seconds']:.0f} s |")
    # run folders inside the repository are shown relative to it (the commands are run from its root)
    lines += ["", "Commands:", "", "```"] + [r["command"].replace(f"{ROOT}/", "") for r in results] + ["```", ""]
    return "\n".join(lines)


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a few minutes in all)")
    parser.add_argument("--only", nargs="*", choices=list(RECIPES), default=None)
    parser.add_argument("--root", default="runs/gan-results", help="parent folder of the run folders")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/results.md alone")
    args = parser.parse_args()
    names = args.only or list(RECIPES)
    root = Path(args.root)
    root = root if root.is_absolute() else ROOT / root
    done = {n: run_recipe(n, quick=args.quick, root=root, threads=args.threads) for n in names}
    for name in RECIPES:  # recipes finished in earlier sittings under the same root keep their rows
        earlier = root / f"{name}{'-quick' if args.quick else ''}" / ROW_FILE
        if name not in done and earlier.exists():
            done[name] = json.loads(earlier.read_text())
    results = [done[n] for n in RECIPES if n in done]
    section = table(results, quick=args.quick, threads=args.threads)
    print(section)
    if not args.no_write:
        write_section(SECTION, section, path=Path(args.results), strip=False)
        print(f"\nwritten to {args.results}; commands: {' ; '.join(shlex.quote(r['command']) for r in results)}")


if __name__ == "__main__":
    main()

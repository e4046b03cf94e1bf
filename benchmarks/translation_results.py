"""Perform the translation transfer runs and write their table into ``docs/results.md``.

Two sizes:

* ``--quick``: the small comparison of ``benchmarks/translation_quick.py`` (15 meta-training pairs, 5 unseen test
  pairs, d_model 64, 16,000 training pairs per initialisation, 50 fine-tuning steps), run through that script with
  K = 16, 64 and 256. About 10 minutes on 2 busy CPU cores.
* default: :class:`metaxfer.text.compare.ComparisonConfig`'s full-size settings (18 meta-training pairs, 6 unseen test
  pairs, d_model 128, 200,000 pairs per initialisation, fine-tuning length chosen on the validation pairs). Hours on
  a CPU; minutes on a GPU.

    .venv/bin/python benchmarks/translation_results.py --quick [--json out.json] [--no-write]

The table (mean ± 95 % CI over the unseen test pairs of chrF, BLEU and exact match, per method and K; paired chrF
differences against scratch and against joint training) is printed and written between the markers
``<!-- translation-results:start -->`` and ``<!-- translation-results:end -->`` of ``docs/results.md`` (appended at
the end of the file when they are absent). Nothing else in the file is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from metaxfer.text.compare import ComparisonConfig, ComparisonResult, run_comparison

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_doc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
#: The section of docs/results.md this script writes, and its markers.
SECTION = "translation-results"
START, END = results_doc.markers(SECTION)
METHODS = ("scratch", "joint", "fomaml", "reptile")
KS = (16, 64, 256)


def result_from_dict(data: dict[str, Any]) -> ComparisonResult:
    """Rebuild a :class:`ComparisonResult` from its JSON form (JSON turns the integer keys K and steps into strings).

    Args:
        data: ``ComparisonResult.to_dict()`` after a JSON round trip.

    Returns:
        The result, with integer K and step keys again.
    """
    scores = {m: {int(k): v for k, v in by_k.items()} for m, by_k in data["scores"].items()}
    chosen = {m: {int(k): int(s) for k, s in by_k.items()} for m, by_k in data["chosen_steps"].items()}
    validation = {m: {int(k): {int(s): float(v) for s, v in by_s.items()} for k, by_s in by_k.items()}
                  for m, by_k in data["validation"].items()}
    return ComparisonResult(data["config"], data["languages"], scores, chosen, validation, data["pretrain"],
                            seconds=float(data.get("seconds", 0.0)))


def run_quick(*, ks: tuple[int, ...], adversary: bool) -> tuple[ComparisonResult, str]:
    """Run ``benchmarks/translation_quick.py`` (its settings, unchanged) and read back its JSON result.

    Returns:
        The result and the exact command that was run.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quick.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "translation_quick.py"), "--ks", *map(str, ks),
               "--json", str(out), *(["--adversary"] if adversary else [])]
        subprocess.run(cmd, check=True)
        data = json.loads(out.read_text())
    return result_from_dict(data), quick_command(ks=ks, adversary=adversary)


def quick_command(*, ks: tuple[int, ...], adversary: bool) -> str:
    """The command line of ``translation_quick.py`` that :func:`run_quick` runs (without its ``--json``)."""
    return " ".join(["python benchmarks/translation_quick.py --ks", *map(str, ks),
                     *(["--adversary"] if adversary else [])])


def settings(config: dict[str, Any]) -> str:
    """One line with the sizes that matter, read from the result's own config."""
    model = config.get("model", {})
    steps = list(config.get("finetune_steps", []))
    chosen = f"chosen among {steps} on the validation pairs" if len(steps) > 1 else f"{steps[0] if steps else '?'}"
    return (f"Settings: d_model {model.get('d_model')}, {model.get('encoder_layers')} + {model.get('decoder_layers')} "
            f"layers, ff {model.get('ff_dim')}, max_len {model.get('max_len')}; {config.get('pretrain_pairs', 0):,} "
            f"training pairs per initialisation; fine-tuning steps {chosen}; {config.get('eval_pairs')} test phrases "
            f"per pair, beam {config.get('beam_size')}, {config.get('draws')} draw(s) of K pairs, seed "
            f"{config.get('seed')}.")


def run_full(*, ks: tuple[int, ...], adversary: bool) -> ComparisonResult:
    """The full-size comparison (``ComparisonConfig`` defaults)."""
    methods = ("scratch", "joint", *(("joint-adv",) if adversary else ()), "fomaml", "reptile")
    return run_comparison(ComparisonConfig(methods=methods, ks=ks), report=print)


def verdicts(result: ComparisonResult) -> list[str]:
    """One plain sentence per meta-learner and K: does it beat scratch, and how does it compare with joint?"""
    lines = []
    for method in result.scores:
        if method in ("scratch", "joint"):
            continue
        for k in result.scores[method]:
            vs_scratch = result.versus(method, "scratch", k) if "scratch" in result.scores else None
            vs_joint = result.versus(method, "joint", k) if "joint" in result.scores else None
            parts = [f"{method}, K = {k}:"]
            if vs_scratch is not None:
                lo = vs_scratch.mean - vs_scratch.half_width
                parts.append(f"vs scratch {vs_scratch} chrF ("
                             + ("beats it by more than the 95 % interval" if lo > 0 else
                                "**not** above scratch by more than the interval") + ");")
            if vs_joint is not None:
                lo, hi = vs_joint.mean - vs_joint.half_width, vs_joint.mean + vs_joint.half_width
                word = "better than" if lo > 0 else "worse than" if hi < 0 else "not distinguishable from"
                parts.append(f"vs joint {vs_joint} ({word} multilingual joint training + fine-tuning).")
            lines.append("- " + " ".join(parts))
    return lines


def criterion(result: ComparisonResult, *, ks: tuple[int, ...] = (16, 64)) -> str:
    """Whether each meta-learner beats scratch at every K of ``ks`` by more than the paired 95 % interval."""
    if "scratch" not in result.scores:
        return "No scratch baseline in this result."
    verdict = []
    for method in result.scores:
        if method in ("scratch", "joint", "joint-adv"):
            continue
        shown = [k for k in ks if k in result.scores[method]]
        failed = [k for k in shown if not result.versus(method, "scratch", k).low > 0]
        verdict.append(f"{method}: " + ("**met**" if shown and not failed else
                                        "not met (K = " + ", ".join(map(str, failed or ks)) + ")"))
    return ("Meta-learned initialisation beats training from scratch at K = " + " and ".join(map(str, ks))
            + " by more than the paired 95 % interval: " + "; ".join(verdict) + ".")


def render(result: ComparisonResult, *, command: str, label: str, note: str = "") -> str:
    """The Markdown section (without the markers); ``note`` (e.g. how busy the machine was) follows the command."""
    per_pair = []
    for method in result.scores:
        for k in result.scores[method]:
            cells = ", ".join(f"{x} {v['chrf']:.1f}" for x, v in sorted(result.scores[method][k].items()))
            per_pair.append(f"| {method} | {k} | {cells} |")
    vs_joint = []
    for method in result.scores:
        if method not in ("scratch", "joint") and "joint" in result.scores:
            vs_joint.append("  " + "   ".join(f"{method} - joint, K={k}: {result.versus(method, 'joint', k)}"
                                              for k in result.scores[method]))
    return "\n".join([
        f"## Translation: cross-lingual transfer to unseen pairs ({label})",
        "",
        f"Command: {command} ({platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{result.seconds:.0f} s in total, written {time.strftime('%Y-%m-%d')}).{' ' + note if note else ''}",
        "",
        settings(result.config),
        "",
        "Languages (* a script not seen in meta-training):",
        "",
        "```",
        result.languages,
        "```",
        "",
        "Mean ± 95 % CI over the unseen test pairs; Δ: paired chrF difference over the same pairs (same K "
        "adaptation pairs for every method).",
        "",
        "```",
        result.table(),
        "",
        "paired Δ chrF vs joint",
        *vs_joint,
        "```",
        "",
        "Per pair chrF:",
        "",
        "| method | K | chrF per test pair |",
        "|---|---|---|",
        *per_pair,
        "",
        "What it says:",
        "",
        criterion(result),
        "",
        *verdicts(result),
        "",
    ])


def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace the text between the translation markers of ``path`` (appending the markers if absent) with
    :func:`results_doc.write_section`: the file is re-read right before writing so concurrent edits of other sections
    are kept."""
    results_doc.write_section(SECTION, text, path=path, strip=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the small comparison of translation_quick.py")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--adversary", action="store_true", help="also run joint-adv")
    parser.add_argument("--json", type=Path, default=None, help="also write the full result here")
    parser.add_argument("--from-json", type=Path, default=None, help="render a saved result instead of running")
    parser.add_argument("--note", default="", help="a sentence put after the command, e.g. the machine's load")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/results.md alone")
    args = parser.parse_args()
    ks = tuple(args.ks)
    if args.from_json:
        result = result_from_dict(json.loads(args.from_json.read_text()))
    elif args.quick:
        result, _ = run_quick(ks=ks, adversary=args.adversary)
    else:
        result = run_full(ks=ks, adversary=args.adversary)
    flags = " ".join([*(["--quick"] if args.quick else []), "--ks", *map(str, ks),
                      *(["--adversary"] if args.adversary else [])])
    command = f"`python benchmarks/translation_results.py {flags}`"
    if args.quick:
        command += f" (it runs `{quick_command(ks=ks, adversary=args.adversary)}`)"
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=1, default=str))
    label = "quick, small settings" if args.quick else "full size"
    section = render(result, command=command, label=label, note=args.note)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

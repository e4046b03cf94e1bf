"""Does weighing generated support images less than the real shots stop them from hurting ProtoNet?

The finished comparisons of ``benchmarks/run_results.py`` show every GAN- or augmentation-enlarged support set
lowering ProtoNet's accuracy. This script scores each enlarged ProtoNet path of a recipe again with the generated
images weighing ``w`` (``augment.made_weight``: weighted class means, the real shots weigh 1) for each ``--weights``
value, on the same target episodes, and prints, for each, the accuracy and the paired difference against ProtoNet
alone. Weight 1 is the path as the comparison scored it.

    .venv/bin/python benchmarks/support_weights.py                               # every recipe, full size
    .venv/bin/python benchmarks/support_weights.py --recipes glyphs --size default --weights 0.5 0.1
    .venv/bin/python benchmarks/support_weights.py --augments classic dagan meta-gan   # meta-GAN: ~12 min a weight

It needs the comparison folder ``runs/results/<recipe>-<size>`` (``benchmarks/run_results.py --size <size>``),
whose trainings it reuses (read only, through a link) and whose ProtoNet and weight-1 scores it copies; its own
runs stay in ``runs/support-weights/<recipe>-<size>`` (run again, it reuses what it scored). The tables go into
docs/results.md (section ``support-weights``) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
from pathlib import Path

from metaxfer.compare import load_recipe, run_comparison
from metaxfer.compare.recipe import PathSpec, Recipe
from metaxfer.compare.runner import PathResult
from metaxfer.meta.evaluation import confidence_interval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Augment kinds swept by default: the cheap ones (classic augmentation, DAGAN); ``meta-gan`` and ``scratch-gan``
#: adapt or train a GAN per class and episode (about 12 min per weight at full size).
DEFAULT_AUGMENTS = ("classic", "dagan")


def _kind(spec: PathSpec) -> str:
    """``classic``, ``dagan``, ``meta-gan``, ``scratch-gan``: the augmenter behind a path, as its name says."""
    assert spec.augment is not None
    return spec.augment.kind if spec.augment.kind != "run" else spec.name.split("+", 1)[1]


def plan(recipe: Recipe, *, weights: list[float], augments: list[str]) -> tuple[str, list[PathSpec]]:
    """ProtoNet's path name and the weighted variants of its enlarged paths (weight 1 keeps the path's name)."""
    plain = [p for p in recipe.paths if p.augment is None and p.classifier.training == "protonet"]
    if not plain:
        raise SystemExit(f"recipe {recipe.name} has no ProtoNet path without augmentation to compare with")
    out = [plain[0]]
    for spec in recipe.paths:
        if spec.augment is None or spec.classifier.training != "protonet" or _kind(spec) not in augments:
            continue
        for w in weights:
            name = spec.name if w == 1 else f"{spec.name}@w{w:g}"
            out.append(dataclasses.replace(spec, name=name,
                                           augment=dataclasses.replace(spec.augment, made_weight=float(w))))
    return plain[0].name, out


def prepare(source: Path, work: Path, names: list[str]) -> None:
    """The work folder: a link to the source comparison's trainings, and its scores of the unchanged paths."""
    if not (source / "comparison.json").is_file():
        raise SystemExit(f"{source} holds no finished comparison; run benchmarks/run_results.py with that recipe and "
                         "size first")
    work.mkdir(parents=True, exist_ok=True)
    link = work / "trainings"
    if not link.exists():
        link.symlink_to((source / "trainings").resolve(), target_is_directory=True)
    for name in names:
        found = source / "paths" / name
        if (found / "result.json").is_file() and not (work / "paths" / name / "result.json").is_file():
            shutil.copytree(found, work / "paths" / name, dirs_exist_ok=True)  # its score and pictures


def pin_trainings(recipe: Recipe, specs: list[PathSpec], *, size: str, source: Path) -> Recipe:
    """The recipe with each training's config pinned to what the source comparison trained.

    A recipe's config may have changed since its comparison ran (e.g. a new evaluation option of the DAGAN run), and
    the runner refuses a training folder of another config. The values the trainings were run with are added as
    overrides (printed), so the augmenters are read from those very runs; a path whose training was pinned is scored
    again at weight 1 too (its score key names the overrides)."""
    from metaxfer.compare.runner import _training_config
    from metaxfer.engine.config import config_to_dict, flatten_config, load_config

    trainings = dict(recipe.trainings)
    for name in recipe.trainings_used(specs):
        written = source / "trainings" / name / "config.yaml"
        if not written.is_file():
            continue
        old = flatten_config(config_to_dict(load_config(written)))
        new = flatten_config(config_to_dict(_training_config(recipe, name, size, "cpu")))
        pins = [f"{k}={json.dumps(v)}" for k, v in old.items()
                if k not in ("device", "threads") and k in new and new[k] != v]
        if pins:
            print(f"training {name}: pinned to the config it was trained with: {' '.join(pins)}", flush=True)
            field = size if size in ("quick", "full") else "overrides"  # after the size's own overrides
            trainings[name] = dataclasses.replace(trainings[name], **{field: [*getattr(trainings[name], field), *pins]})
    return dataclasses.replace(recipe, trainings=trainings)


def table(recipe: Recipe, size: str, results: list[PathResult], reference: str, specs: list[PathSpec]) -> str:
    by_name = {r.name: r for r in results}
    ref = by_name[reference]
    minutes = sum(by_name[s.name].eval_seconds for s in specs[1:]) / 60
    lines = [f"### {recipe.title or recipe.name} ({size} size)", "",
             f"{ref.episodes} target episodes; {reference} alone: {100 * ref.accuracy:.1f} ± {100 * ref.ci95:.1f}. "
             f"Paired difference: the path minus {reference}, per episode, mean ± 95% CI. Scoring the rows took "
             f"{minutes:.1f} min (generating the images included).", "",
             "| path | made weight | accuracy | − " + reference + " |", "|---|---|---|---|"]
    for spec in specs[1:]:
        r = by_name[spec.name]
        diff, half = confidence_interval([a - b for a, b in zip(r.accuracies, ref.accuracies)])
        base = spec.name.split("@", 1)[0]
        lines.append(f"| {base} | {spec.augment.made_weight:g} | {100 * r.accuracy:.1f} ± {100 * r.ci95:.1f} | "
                     f"{100 * diff:+.1f} ± {100 * half:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["digits", "glyphs", "omniglot"])
    parser.add_argument("--size", default="full", choices=("quick", "default", "full"))
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 0.5, 0.2, 0.05])
    parser.add_argument("--augments", nargs="+", default=list(DEFAULT_AUGMENTS),
                        choices=("classic", "dagan", "meta-gan", "scratch-gan"))
    parser.add_argument("--source", type=Path, default=ROOT / "runs" / "results", help="parent of the comparisons")
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "support-weights", help="parent of its runs")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave docs/results.md alone")
    args = parser.parse_args(argv)
    if any(w <= 0 for w in args.weights):
        parser.error("--weights must be positive (a generated image's weight against a real shot's 1)")
    given = shlex.join(sys.argv[1:] if argv is None else argv)
    command = f".venv/bin/python benchmarks/support_weights.py {given}".strip()
    sections = []
    for name in args.recipes:
        recipe = load_recipe(name)
        reference, specs = plan(recipe, weights=args.weights, augments=args.augments)
        work, source = args.root / f"{name}-{args.size}", args.source / f"{name}-{args.size}"
        prepare(source, work, [s.name for s in specs])
        recipe = pin_trainings(recipe, specs, size=args.size, source=source)
        comparison = run_comparison(dataclasses.replace(recipe, paths=specs), out=work, size=args.size, say=print,
                                    device="cpu", workers=1, command=command)
        sections.append(table(recipe, args.size, comparison.results, reference, specs))
        print(sections[-1], flush=True)
    header = (f"Produced by `{command}`: each enlarged ProtoNet path again with its generated images weighing less "
              "than the real shots in the class means (`augment.made_weight`); trainings and target episodes are "
              "those of the recipe's comparison in docs/results.md, so weight 1 repeats its row.")
    if not args.no_write:
        write_section("support-weights", "\n\n".join([header, *sections]),
                      heading="Weighing generated support images")
        print(json.dumps({"wrote": "docs/results.md", "section": "support-weights"}))


if __name__ == "__main__":
    main()

"""Train and measure the text → image recipes and write their tables into docs/results.md.

First the measuring networks (judges) of the source and target styles are trained once (cached, shared by the runs;
see docs/text2image.md); then two runs of ``metaxfer train`` (one per initialisation of the GAN), each followed at its
last evaluation by the measures and the adaptation to OpenMoji from K images:

* ``configs/text2image-emoji.yaml``: GAN-INT-CLS trained jointly on the seen Twemoji classes;
* ``configs/text2image-emoji-reptile.yaml``: the same networks, initialisation meta-learnt with Reptile over tasks of
  seen classes (the same number of GAN updates).

Both use the same split and the same frozen text encoder (trained first in each run, with the same seed). The script
then draws picture grids with the prompts printed under them (seen and unseen classes, 9 languages) from the joint
run, writes ``text2image[-quick].json``, the runs' logs and the grids into the root folder, and its tables into
``docs/results.md`` between ``<!-- text2image-results:start -->`` and ``<!-- text2image-results:end -->`` (``--quick``:
``<!-- text2image-results-quick:start -->`` ... ``-quick:end -->``, so a quick run never overwrites the full one);
the markers are appended at the end of the file when absent, and nothing else changes.

    python benchmarks/text2image_results.py --quick              # 288 classes, short runs: a pipeline check
    python benchmarks/text2image_results.py --parallel           # the recipes as written, the two runs side by side
    python benchmarks/text2image_results.py --tones              # unseen combinations (text2image-emoji-tones)

``--tones`` runs ``configs/text2image-emoji-tones.yaml`` instead (hands, body parts and people gesturing in six skin
tones; each unseen class is an unseen gesture–tone combination) and writes its own section
(``text2image-tones``, or ``text2image-tones-quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: The two sections of docs/results.md, by ``--quick`` (one per size: a quick run never overwrites the full one).
SECTIONS = {False: "text2image-results", True: "text2image-results-quick"}
RECIPES = {"joint": "text2image-emoji", "reptile": "text2image-emoji-reptile"}
GRID_LANGUAGES = ("en", "de", "fr", "ru", "ar", "fa", "ja", "ko", "zh")

#: Overrides of the quick setting: 288 classes (Animals & Nature, Food & Drink), short phases, light measuring nets;
#: the same number of GAN updates for both initialisations (500 joint steps; 125 Reptile steps of 4 inner steps).
QUICK_COMMON = [
    "data.options={size: 32, categories: [Animals & Nature, Food & Drink]}", "data.batch_size=32",
    "train.log_every=100", "t2i.encoder_steps=800", "t2i.measure.classifier_steps=400",
    "t2i.measure.encoder_steps=400", "t2i.adapt.steps=80", "t2i.adapt.repeats=1",
]
QUICK = {
    "joint": QUICK_COMMON + ["train.steps=1300", "train.eval_every=1300", "train.checkpoint_every=1300"],
    "reptile": QUICK_COMMON + ["train.steps=925", "train.eval_every=925", "train.checkpoint_every=925"],
    "tones": ["train.steps=2200", "t2i.encoder_steps=1000", "train.eval_every=2200", "train.checkpoint_every=2200",
              "t2i.measure.classifier_steps=600", "t2i.measure.encoder_steps=400"],
}
#: The compositional recipe (``--tones``) and its sections.
TONES = {"tones": "text2image-emoji-tones"}
#: Every recipe this script runs, by the name its runs go by.
ALL_RECIPES = {**RECIPES, **TONES}
TONE_SECTIONS = {False: "text2image-tones", True: "text2image-tones-quick"}


def build_judges(*, quick: bool, threads: int, recipe: str = "joint") -> float:
    """Train (or load) the measuring networks of the source and target styles once, before the runs, so that the two
    runs share them instead of training them twice (they are cached; see docs/text2image.md)."""
    import torch

    from metaxfer.engine import load_config
    from metaxfer.engine.device import cpu_threads
    from metaxfer.methods.text2image import Text2ImageMethod

    t0 = time.perf_counter()
    cfg = load_config(ROOT / "configs" / f"{ALL_RECIPES[recipe]}.yaml",
                      (QUICK[recipe] if quick else []) + ["device=cpu"])
    with cpu_threads(threads):
        method = Text2ImageMethod(cfg, device=torch.device("cpu"))
        method.kit(method.pairs)
        if cfg.t2i.adapt.enabled:  # type: ignore[attr-defined]
            method.kit(method.target_pairs())
    seconds = time.perf_counter() - t0
    print(f"judges ready in {seconds:.0f} s", flush=True)
    return seconds


def start_recipe(init: str, *, quick: bool, root: Path, threads: int) -> dict[str, Any]:
    """Start one recipe with the command line (a child process); :func:`finish_recipe` waits for it."""
    name = ALL_RECIPES[init]
    out = root / f"{name}{'-quick' if quick else ''}"
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty: remove it or pass another --root")
    overrides = (QUICK[init] if quick else []) + [f"threads={threads}", "device=cpu", "train.tensorboard=false"]
    shown = " ".join(["metaxfer", "train", f"configs/{name}.yaml", *[_quote(o) for o in overrides], "--out",
                      _shown(str(out))])
    print(f"$ {shown}", flush=True)
    log = open(root / f"{name}{'-quick' if quick else ''}.log", "w")  # noqa: SIM115 - closed in finish_recipe
    proc = subprocess.Popen([sys.executable, "-m", "metaxfer", "train", f"configs/{name}.yaml", *overrides, "--out",
                             str(out)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    return {"init": init, "name": name, "out": out, "shown": shown, "overrides": overrides, "proc": proc, "log": log,
            "t0": time.perf_counter()}


def finish_recipe(job: dict[str, Any]) -> dict[str, Any]:
    """Wait for a started recipe; return its summary, command and time."""
    code = job["proc"].wait()
    seconds = time.perf_counter() - job["t0"]
    job["log"].close()
    name, out, shown, overrides, init = job["name"], job["out"], job["shown"], job["overrides"], job["init"]
    if code != 0:
        tail = Path(job["log"].name).read_text()[-4000:]
        raise SystemExit(f"{name} failed (exit {code}):\n{tail}")
    summary = json.loads((out / "summary.json").read_text())
    config = yaml.safe_load((out / "config.yaml").read_text())
    return {"init": init, "recipe": name, "run": str(out), "command": shown, "seconds": round(seconds, 1),
            "overrides": overrides, "final": summary["final"], "shots": config["t2i"]["adapt"]["shots"],
            "adapt": config["t2i"]["adapt"]["enabled"], "classes": summary["final"].get("eval/info/classes"),
            "languages": len(set(k.split("/")[3] for k in summary["final"] if k.startswith("eval/test/lang/")))}


def _quote(text: str) -> str:
    return f"'{text}'" if any(ch in text for ch in " {}[]&") else text


def draw_grids(run: dict[str, Any], root: Path, *, quick: bool) -> list[str]:
    """Captioned grids from a run: seen and unseen classes, one column per language, the real image first."""
    import torch

    from metaxfer.crossmodal import CaptionFonts, captioned_grid
    from metaxfer.crossmodal.pairs import pairs_from_domain, split_classes, default_group
    from metaxfer.data import create_domain
    from metaxfer.data.grid import save_image
    from metaxfer.methods.text2image import load_text2image_model

    model = load_text2image_model(run["run"])
    cfg = model.config
    mc = cfg.t2i  # type: ignore[attr-defined]
    pairs = pairs_from_domain(create_domain(cfg.data.domain, **cfg.data.options), languages=list(mc.languages) or None)
    split = split_classes(pairs, val_fraction=mc.val_fraction, test_fraction=mc.test_fraction,
                          group=default_group(pairs.groups) if mc.group == "auto" else mc.group,
                          heldout_languages=mc.heldout_languages, seed=cfg.data.split_seed)
    fonts = CaptionFonts(size=10)
    written = []
    langs = [x for x in GRID_LANGUAGES if x in pairs.languages]
    for title, classes in (("seen", split.train), ("unseen", split.test)):
        chosen = [classes[int(i)] for i in torch.linspace(0, len(classes) - 1, 6).round().long()]
        images, captions = [], []
        for c in chosen:
            images.append(pairs.images[pairs.image_indices([c])[0]])
            captions.append(f"real: {pairs.class_names[c]}")
            for lang in langs:
                texts = pairs.texts_of(c, [lang])
                if texts:
                    images.append(model.generate([texts[0]], seed=c)[0])
                    captions.append(f"{lang}: {texts[0]}")
                else:
                    images.append(torch.full_like(images[-1], 255))
                    captions.append(f"{lang}: (no name)")
        grid = captioned_grid(torch.stack(images), captions, columns=len(langs) + 1, scale=3, caption_fonts=fonts,
                              title=f"{title} classes ({run['recipe']}, step {model.step}): real image, then generated "
                                    "from its name in each language")
        prefix = f"{run['init']}-" if run["init"] in TONES else ""
        path = root / f"grid-{prefix}{title}{'-quick' if quick else ''}.png"
        save_image(grid, path)
        written.append(str(path))
    return written


def _shown(path: str) -> str:
    """A path relative to the repository where it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def tables(results: dict[str, dict[str, Any]], *, quick: bool, threads: int, seconds: float, grids: list[str],
           parallel: bool) -> str:
    """The markdown section, without its markers (a blank line at each end keeps it apart from them)."""
    joint, reptile = results["joint"]["final"], results["reptile"]["final"]

    def get(final: dict[str, float], key: str) -> float | None:
        return final.get(f"eval/{key}")

    label = ("QUICK (288 classes: Animals & Nature, Food & Drink; short phases): a pipeline check, not what the "
             "recipes reach" if quick else "full recipes (all 1,852 Twemoji classes)")
    lines = ["", f"## Text → image: unseen descriptions and adaptation to a new style ({label})", "",
             f"Written by `python benchmarks/text2image_results.py{' --quick' if quick else ''}` ({platform.machine()}, "
             f"{os.cpu_count()} CPU cores, {threads} torch thread(s) per run, "
             f"{'the two runs side by side, ' if parallel else ''}{seconds / 60:.0f} min in all, written "
             f"{time.strftime('%Y-%m-%d')}; runs are deterministic, so only the time depends on the machine's load). "
             "Protocol: `docs/text2image.md`. Numbers in %; *chance* is what a uniform guess among the evaluated "
             "classes gets (class), or always naming the commonest subcategory (group); R-precision ranks 100 "
             "descriptions (chance 1 %) unless fewer exist in a language; intervals are 95 % Student t over classes.", ""]
    n_test = get(joint, "test/n")
    n_langs = results["joint"]["languages"]
    lines += [f"### Twemoji: descriptions of unseen classes (test classes, {n_langs} training languages)", "",
              f"{int(get(joint, 'test/class_chance') and round(1 / get(joint, 'test/class_chance')) or 0)} unseen "
              f"test classes, {int(n_test or 0)} prompts. Class accuracy: the class classifier's top-1 among the "
              "test classes; group: the subcategory classifier (trained on seen classes only); CAS: a classifier "
              "trained on the generated test images, tested on the real ones (one per class; chance as for class "
              "accuracy).", "",
              "| generator | class acc [95% CI] | top-5 | chance | group acc [95% CI] | group chance | R-precision | CAS | FID |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, final in (("GAN-INT-CLS, joint", joint), ("GAN-INT-CLS, Reptile init (no adaptation)", reptile)):
        lines.append(
            f"| {name} | {_pct(get(final, 'test/class_acc'))} [{_pct(get(final, 'test/class_acc_ci_low'))}, "
            f"{_pct(get(final, 'test/class_acc_ci_high'))}] | {_pct(get(final, 'test/class_top5'))} | "
            f"{_pct(get(final, 'test/class_chance'))} | {_pct(get(final, 'test/group_acc'))} "
            f"[{_pct(get(final, 'test/group_acc_ci_low'))}, {_pct(get(final, 'test/group_acc_ci_high'))}] | "
            f"{_pct(get(final, 'test/group_chance'))} | {_pct(get(final, 'test/r_precision'))} | "
            f"{_pct(get(final, 'test/cas'))} | {get(final, 'test/fid') or float('nan'):.1f} |")
    lines.append(
        f"| retrieval baseline: real image of the seen class with the nearest description | "
        f"{_pct(get(joint, 'retrieval/class_acc'))} | {_pct(get(joint, 'retrieval/class_top5'))} | "
        f"{_pct(get(joint, 'retrieval/class_chance'))} | {_pct(get(joint, 'retrieval/group_acc'))} | "
        f"{_pct(get(joint, 'retrieval/group_chance'))} | {_pct(get(joint, 'retrieval/r_precision'))} | — | "
        f"{get(joint, 'retrieval/fid') or float('nan'):.1f} |")
    lines += ["", f"Real images, for scale: the class classifier is right on {_pct(get(joint, 'info/classifier_aug_acc'))} "
              f"% of augmented real images; real images reach R-precision {_pct(get(joint, 'info/real_r_precision'))} "
              "% (all classes, first description).", ""]
    lines += ["### Seen classes and a held-out language (joint run)", "",
              "| prompts | class acc | chance | group acc | R-precision |", "|---|---|---|---|---|"]
    for key, what in (("seen", "seen classes, first training language (the names it was trained on)"),
                      ("heldout", "seen classes, Indonesian (never trained on)"), ("val", "validation classes (unseen)")):
        lines.append(f"| {what} | {_pct(get(joint, f'{key}/class_acc'))} | {_pct(get(joint, f'{key}/class_chance'))} | "
                     f"{_pct(get(joint, f'{key}/group_acc'))} | {_pct(get(joint, f'{key}/r_precision'))} |")
    langs = [k.split("/")[3] for k in joint if k.startswith("eval/test/lang/") and k.endswith("/class_acc")]
    lines += ["", "Unseen test classes per prompt language (joint run), class accuracy / R-precision:", "",
              "| " + " | ".join(langs) + " |", "|" + "---|" * len(langs),
              "| " + " | ".join(f"{_pct(get(joint, f'test/lang/{x}/class_acc'))} / "
                                f"{_pct(get(joint, f'test/lang/{x}/r_precision'))}" for x in langs) + " |", ""]
    shots = results["joint"]["shots"]
    lines += [f"### Adaptation to OpenMoji from K = {shots} images (one per seen class; OpenMoji test classes never seen)",
              "", "Fine-tuning of the generator and discriminator on the K OpenMoji images with their names (same "
              "steps and learning rate for every start); measured with OpenMoji's own measuring networks on the "
              f"unseen test classes ({n_langs} languages) and on the seen classes outside the K (first language).", "",
              "| start | test class acc | test group acc | test R-precision | test FID | others class acc | others FID |",
              "|---|---|---|---|---|---|---|"]
    rows = [("Twemoji GAN, not adapted", joint, "none"), ("fine-tuned from the joint GAN", joint, "finetune"),
            ("fine-tuned from the Reptile initialisation", reptile, "finetune"),
            ("trained from scratch on the K images", joint, "scratch")]
    for what, final, variant in rows:
        p = f"adapt/{variant}"
        lines.append(f"| {what} | {_pct(get(final, f'{p}/test/class_acc'))} | {_pct(get(final, f'{p}/test/group_acc'))}"
                     f" | {_pct(get(final, f'{p}/test/r_precision'))} | {get(final, f'{p}/test/fid') or float('nan'):.1f}"
                     f" | {_pct(get(final, f'{p}/others/class_acc'))} | "
                     f"{get(final, f'{p}/others/fid') or float('nan'):.1f} |")
    lines += ["", f"Chance: test {_pct(get(joint, 'adapt/none/test/class_chance'))} %, others "
              f"{_pct(get(joint, 'adapt/none/others/class_chance'))} %. OpenMoji's class classifier is right on "
              f"{_pct(get(joint, 'adapt/info/target_classifier_aug_acc'))} % of augmented real OpenMoji images.", "",
              "Grids (prompts printed under the images): " + ", ".join(f"`{_shown(g)}`" for g in grids) + ".", "",
              "Commands:", "", "```"] + [results[k]["command"] for k in ("joint", "reptile")] + ["```", ""]
    return "\n".join(lines)


def tones_table(run: dict[str, Any], *, quick: bool, threads: int, seconds: float, grids: list[str]) -> str:
    """The markdown section of the compositional recipe (``--tones``), without its markers."""
    final = run["final"]

    def get(key: str) -> float | None:
        return final.get(f"eval/{key}")

    def ci(key: str) -> str:
        low, high = get(f"{key}_ci_low"), get(f"{key}_ci_high")
        return "" if low is None or high is None else f" [{_pct(low)}, {_pct(high)}]"

    n_test = round(1 / get("test/class_chance")) if get("test/class_chance") else 0
    label = "QUICK (1,000 encoder + 1,200 GAN steps): a pipeline check" if quick else "the recipe as written"
    lines = ["", f"## Text → image: unseen gesture–tone combinations ({label})", "",
             f"Written by `python benchmarks/text2image_results.py --tones{' --quick' if quick else ''}` "
             f"({platform.machine()}, {os.cpu_count()} CPU cores, {threads} torch thread(s), {seconds / 60:.0f} min in "
             f"all, written {time.strftime('%Y-%m-%d')}; deterministic, only the time depends on the machine's load). "
             "`configs/text2image-emoji-tones.yaml`: hands, body parts and people gesturing on Twemoji, each in the "
             "default yellow and five skin tones; within each family of variants one class is an unseen test class "
             "and one an unseen validation class (protocol: `docs/text2image.md`, \"Unseen combinations\"). "
             "Numbers in %; intervals are 95 % Student t over classes.", "",
             f"{n_test} unseen test classes, {int(get('test/n') or 0)} prompts ({run['languages']} training "
             "languages). *Among test*: the class classifier's top-1 among the test classes (mostly: the right "
             "gesture); *among all*: top-1 among every class of the style, seen or not (the right gesture *and* "
             "tone); *sibling*: top-1 among the variants of the prompt's own emoji (the right tone; chance about "
             "1/6).", "",
             "| images for the unseen descriptions | among test [95% CI] | chance | among all | chance | sibling "
             "[95% CI] | chance | R-precision | CAS | FID |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for what, key in (("GAN-INT-CLS (generated)", "test"),
                      ("retrieval baseline: real image of the seen class with the nearest description", "retrieval")):
        cas = _pct(get(f"{key}/cas")) if key == "test" else "—"
        lines.append(
            f"| {what} | {_pct(get(f'{key}/class_acc'))}{ci(f'{key}/class_acc')} | {_pct(get(f'{key}/class_chance'))} "
            f"| {_pct(get(f'{key}/class_acc_all'))} | {_pct(1 / run['classes']) if run['classes'] else '—'} | "
            f"{_pct(get(f'{key}/sibling_acc'))}{ci(f'{key}/sibling_acc')} | {_pct(get(f'{key}/sibling_chance'))} | "
            f"{_pct(get(f'{key}/r_precision'))} | {cas} | {get(f'{key}/fid') or float('nan'):.1f} |")
    lines += ["", "| prompts | among the set | chance | among all | sibling | R-precision |", "|---|---|---|---|---|---|"]
    for key, what in (("seen", "seen classes, first training language"),
                      ("val", "validation classes (unseen)"),
                      ("heldout", "seen classes, Indonesian (never trained on)")):
        lines.append(f"| {what} | {_pct(get(f'{key}/class_acc'))} | {_pct(get(f'{key}/class_chance'))} | "
                     f"{_pct(get(f'{key}/class_acc_all'))} | {_pct(get(f'{key}/sibling_acc'))} | "
                     f"{_pct(get(f'{key}/r_precision'))} |")
    lines += ["", f"Real images, for scale: the class classifier is right on {_pct(get('info/classifier_aug_acc'))} % "
              "of augmented real images.", "",
              "Grids (prompts printed under the images): " + ", ".join(f"`{_shown(g)}`" for g in grids) + ".", "",
              "Command:", "", "```", run["command"], "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="288 classes and short phases (a pipeline check)")
    parser.add_argument("--root", default="runs/text2image-results", help="parent folder of the run folders")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave docs/results.md alone")
    parser.add_argument("--parallel", action="store_true", help="run the two recipes side by side (one core each)")
    parser.add_argument("--tones", action="store_true", help="the compositional recipe (unseen gesture-tone pairs)")
    args = parser.parse_args()
    root = Path(args.root)
    root = root if root.is_absolute() else ROOT / root
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.tones:
        build_judges(quick=args.quick, threads=args.threads, recipe="tones")
        run = finish_recipe(start_recipe("tones", quick=args.quick, root=root, threads=args.threads))
        grids = draw_grids(run, root, quick=args.quick)
        seconds = time.perf_counter() - t0
        (root / f"text2image-tones{'-quick' if args.quick else ''}.json").write_text(
            json.dumps({"quick": args.quick, "seconds": round(seconds, 1), "run": run, "grids": grids}, indent=2)
            + "\n")
        section = tones_table(run, quick=args.quick, threads=args.threads, seconds=seconds, grids=grids)
        if not args.no_write:
            write_section(TONE_SECTIONS[args.quick], section, path=Path(args.results), strip=False)
        print(section)
        return
    build_judges(quick=args.quick, threads=args.threads)
    if args.parallel:
        jobs = [start_recipe(init, quick=args.quick, root=root, threads=args.threads) for init in RECIPES]
        results = {job["init"]: finish_recipe(job) for job in jobs}
    else:
        results = {init: finish_recipe(start_recipe(init, quick=args.quick, root=root, threads=args.threads))
                   for init in RECIPES}
    grids = draw_grids(results["joint"], root, quick=args.quick)
    seconds = time.perf_counter() - t0
    (root / f"text2image{'-quick' if args.quick else ''}.json").write_text(
        json.dumps({"quick": args.quick, "seconds": round(seconds, 1), "runs": results, "grids": grids}, indent=2) + "\n")
    section = tables(results, quick=args.quick, threads=args.threads, seconds=seconds, grids=grids,
                     parallel=args.parallel)
    if not args.no_write:
        write_section(SECTIONS[args.quick], section, path=Path(args.results), strip=False)
    print(section)


if __name__ == "__main__":
    main()

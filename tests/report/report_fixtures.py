"""A fake-but-realistic ``metaxfer run`` folder for the report tests, built on the fly (no binary fixtures).

Six paths over the four families; three have engine run folders with ``metrics.jsonl`` shaped like the engine's
(``step`` plus ``<step name>/<metric>`` averages and ``eval/...`` rows every few steps), the GAN ones also sample grids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from metaxfer.report import Accuracy, Comparison, ImageRef, PathResult, Seconds, Setting

# name, family, mean, ci95, train seconds, has an engine run folder
PATHS = [
    ("scratch", "baseline", 0.412, 0.021, 3.1, False),
    ("finetune", "baseline", 0.538, 0.024, 12.4, False),
    ("protonet", "meta-learning", 0.705, 0.019, 88.0, True),
    ("maml", "meta-learning", 0.662, 0.022, 140.5, True),
    ("dagan+protonet", "gan", 0.671, 0.020, 201.2, True),
    ("metagan", "meta-gan", 0.741, 0.018, 260.0, True),
]
EPISODES = 600


def write_png(path: Path, *, size: tuple[int, int] = (96, 64), seed: int = 0, text: str = "") -> Path:
    """A small RGB picture (noise blocks and a label) saved as PNG."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    img = Image.fromarray(np.kron(cells, np.ones((8, 8, 1), dtype=np.uint8)), "RGB")
    if text:
        ImageDraw.Draw(img).text((2, 2), text, fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def write_metrics(folder: Path, *, steps: int, gan: bool, seed: int) -> Path:
    """An engine-like metrics.jsonl: a row every 10 steps, evaluation every 50, and a torn last line."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(10, steps + 1, 10):
        t = s / steps
        row: dict[str, float] = {"step": s}
        if gan:
            row["d/loss"] = 1.4 - 0.5 * t + 0.05 * rng.standard_normal()
            row["g/loss"] = 0.7 + 0.6 * t + 0.05 * rng.standard_normal()
            row["lr/g"] = 2e-4
        else:
            row["train/loss"] = 1.6 * math.exp(-3 * t) + 0.2 + 0.03 * rng.standard_normal()
            row["train/acc"] = min(1.0, 0.3 + 0.6 * t + 0.02 * rng.standard_normal())
            row["lr"] = 1e-3
        if s % 50 == 0:
            row["eval/acc"] = min(1.0, 0.35 + 0.4 * t)
            row["eval/ci"] = 0.02
            row["eval/loss"] = 1.5 * math.exp(-2 * t) + 0.3
        lines.append(json.dumps(row))
    path = folder / "metrics.jsonl"
    path.write_text("\n".join(lines) + '\n{"step": 999, "train/lo', encoding="utf-8")
    return path


def build_comparison(run_dir: Path, *, paths: list[tuple] | None = None) -> Comparison:
    """Write the path run folders and pictures under ``run_dir`` and return the comparison describing them."""
    results = []
    for i, (name, family, mean, ci, train, has_run) in enumerate(paths or PATHS):
        run = None
        images: list[ImageRef] = []
        if has_run:
            run = f"paths/{name.replace('+', '-')}"
            gan = family in ("gan", "meta-gan")
            write_metrics(run_dir / run, steps=200, gan=gan, seed=i)
            if gan:
                for s in (100, 200):
                    write_png(run_dir / run / "samples" / f"step-{s:08d}.png", size=(160, 80), seed=10 * i + s,
                              text=f"{name} {s}")
                images.append(ImageRef(title="Generated target classes", path=f"{run}/generated.png",
                                       caption=f"Samples of {name} for the five target classes."))
                write_png(run_dir / run / "generated.png", size=(128, 96), seed=100 + i, text="generated")
        results.append(PathResult(name=name, family=family, description=f"the {name} path",
                                  accuracy=Accuracy(mean=mean, ci95=ci, n=EPISODES),
                                  seconds=Seconds(train=train, evaluate=2.5 + i), run=run, images=images,
                                  metrics={"FID": 40.0 + i} if family in ("gan", "meta-gan") else {}))
    write_png(run_dir / "figures" / "episodes.png", size=(200, 64), seed=7, text="target episodes")
    return Comparison(
        recipe="digits-to-glyphs",
        title="Digits → glyphs: every transfer path",
        description="Every path is evaluated on the same 5-way 1-shot glyph episodes.",
        created="2024-05-01T12:30:00+02:00",
        command="metaxfer run digits-to-glyphs --quick",
        versions={"python": "3.11.9", "metaxfer": "0.1.0", "torch": "2.13.0"},
        device="cpu",
        threads=2,
        setting=Setting(source="synthetic-digits", target="glyphs", ways=5, shots=1, queries=15, episodes=EPISODES,
                        seed=0, fingerprint="3f2a9c1e"),
        paths=results,
        images=[ImageRef(title="Target episodes", path="figures/episodes.png", caption="Three target episodes.")],
        config={"recipe": "digits-to-glyphs", "episodes": {"ways": 5, "shots": 1, "count": EPISODES},
                "paths": [p[0] for p in (paths or PATHS)], "train": {"steps": 200, "lr": 0.001}},
    )


def make_run(run_dir: Path, **kwargs) -> Comparison:
    """:func:`build_comparison` and save its comparison.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    comparison = build_comparison(run_dir, **kwargs)
    comparison.save(run_dir)
    return comparison

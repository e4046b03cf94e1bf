"""``metaxfer generate``: draw images from text descriptions with a trained ``text2image`` run.

    metaxfer generate "grinning cat" --model runs/text2image-emoji-20260101-120000 --out cat.png
    metaxfer generate "ニヤッと笑う猫" --model RUN --out cat-ja.png --n 16
    metaxfer generate "red apple" "pomme rouge" "rotes auto" --model RUN --out grid.png --n 4

A prompt may be in any language (the run's text encoder reads UTF-8 bytes); it is normalised like the training
descriptions (case folded, ``_`` and ``:`` as spaces). One prompt and ``--n 1`` writes the image itself, enlarged
``--scale`` times; several images make a grid: one row per prompt with the prompt printed under its first image (one
prompt: as the grid's title), in an installed font that has the prompt's characters. The run's best checkpoint
(highest validation class accuracy) is used unless ``--checkpoint`` says otherwise; the EMA generator draws the images.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import typer
from PIL import Image

from metaxfer.crossmodal.encoders import encode_bytes
from metaxfer.crossmodal.grids import captioned_grid
from metaxfer.crossmodal.pairs import normalize_description
from metaxfer.data.grid import save_image
from metaxfer.engine.device import cpu_threads, resolve_device
from metaxfer.errors import MetaxferError
from metaxfer.methods.text2image import load_text2image_model

__all__ = ["register", "generate_cmd", "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

#: Output formats (by file suffix) the command writes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _check_prompts(prompts: list[str], *, max_len: int) -> list[str]:
    cleaned = []
    for number, prompt in enumerate(prompts, start=1):
        text = normalize_description(prompt)
        if not text:
            raise MetaxferError(f"prompt {number} is empty; give a description such as \"grinning cat\" (in any of "
                                "the run's languages)")
        if len(text.encode("utf-8")) > max_len:
            kept = int((encode_bytes([text], max_len=max_len) != 0).sum())
            typer.echo(f"note: prompt {number} is {len(text.encode('utf-8'))} UTF-8 bytes; the text encoder reads the "
                       f"first {kept}", err=True)
        cleaned.append(prompt)
    return cleaned


def generate_cmd(
    prompts: list[str] = typer.Argument(..., help="One or more descriptions, in any of the run's languages."),
    model_dir: Path = typer.Option(..., "--model", "-m",
                                   help="A run folder of `metaxfer train configs/text2image-*.yaml`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png, .jpg, .webp, ...)."),
    n: int = typer.Option(1, "--n", "-n", min=1, max=256, help="Images per prompt (more than one: a grid)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise: the same seed draws the same images."),
    scale: int = typer.Option(4, "--scale", min=1, max=16, help="Enlargement of each image (nearest neighbour)."),
    columns: int = typer.Option(0, "--columns", min=0, help="Grid columns (0: n for several prompts, else √n)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best (validation-selected), last, or a folder."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads (0: the run's `threads` setting)."),
) -> None:
    """Draw images from text descriptions with a trained text-to-image run."""
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise MetaxferError(f"--out {out}: unknown image format {out.suffix or '(no suffix)'!r}; end the file name "
                            f"with one of {', '.join(IMAGE_SUFFIXES)}")
    if out.exists() and out.is_dir():
        raise MetaxferError(f"--out {out} is a folder; give an image file name such as {out / 'cat.png'}")
    model = load_text2image_model(model_dir, checkpoint=checkpoint, device=resolve_device(device))
    prompts = _check_prompts(list(prompts), max_len=model.encoder.max_len)
    with cpu_threads(threads or model.config.threads):
        images = model.generate(prompts, per_prompt=n, seed=seed)
    if len(images) == 1:
        arr = images[0].permute(1, 2, 0).numpy()
        picture = Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    else:
        cols = columns or (n if len(prompts) > 1 else math.ceil(math.sqrt(n)))
        if len(prompts) > 1:
            captions = [p if i % n == 0 else "" for p in prompts for i in range(n)]
            title = None
        else:
            captions, title = [""] * len(images), prompts[0]
        picture = captioned_grid(images, captions, columns=min(cols, len(images)), scale=scale, title=title,
                                 lines=1 if len(prompts) > 1 else 0)
    save_image(picture, out)
    c, h, w = images.shape[1:]
    typer.echo(f"wrote {out}: {len(images)} image(s) of {h}×{w} from {model.checkpoint} (step {model.step})", err=True)


def register(app: typer.Typer) -> None:
    """Add ``generate`` to the root command."""
    app.command("generate")(generate_cmd)

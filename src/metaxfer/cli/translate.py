"""``metaxfer translate``: adapt a trained ``translation`` run to a new English → X pair and translate lines.

    metaxfer translate --model runs/translation-reptile-20260101-120000 --adapt en-de.tsv --lang de < phrases.txt
    metaxfer translate --model RUN --adapt train.en --adapt-target train.de --lang de --input in.txt --output out.txt
    metaxfer translate --model RUN --adapt pairs.tsv --lang hy --steps 100 --beam 4

The pair file is ``english<TAB>translation`` per line (``--adapt-target`` makes it a Moses pair of line-aligned
files). The run's best checkpoint (highest validation chrF) is fine-tuned on those pairs, then every input line is
translated: one output line per input line, in order. Empty (or white-space) input lines give empty output lines and
are not sent to the model. Input text is normalised like the training corpora (NFC, control characters removed,
white space collapsed). Lines that are not mostly Latin letters are translated anyway, with a warning (the model reads
English). Input that is not UTF-8, or a line too long for the model, stops the command before any fine-tuning with
the line number and the fix.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
import typer

from metaxfer.engine.device import cpu_threads, resolve_device
from metaxfer.errors import DataFormatError, DataNotFoundError, MetaxferError
from metaxfer.methods.translation import TranslationModel, load_translation_model
from metaxfer.text.adapt import fine_tune
from metaxfer.text.corpora import ParallelCorpus, normalize_text, read_moses, read_tsv
from metaxfer.text.decoding import translate
from metaxfer.text.optim import OptimizerSpec
from metaxfer.text.scripts import normalize_language, script_fraction
from metaxfer.text.tokenizer import filter_by_length

__all__ = ["register", "translate_cmd", "read_input_lines", "read_adaptation_pairs"]

log = logging.getLogger(__name__)

_PAIR_NAME = re.compile(r"(?:^|[^A-Za-z])en[-_]([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)$")


def read_input_lines(data: bytes, *, name: str) -> list[str]:
    """Decode the lines to translate (UTF-8, an optional byte-order mark) and normalise each one.

    Args:
        data: The raw input.
        name: Its name in error messages (a path, or ``<stdin>``).

    Returns:
        One normalised string per input line; empty lines stay empty strings.

    Raises:
        DataFormatError: The input is not UTF-8 (the message gives the line and the fix).
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"{name}, line {number}: not UTF-8 (byte {exc.start} of the line is {raw[exc.start]:#04x}); convert "
                f"the file first, e.g. `iconv -f LATIN1 -t UTF-8 {name} > fixed.txt`") from None
        out.append(normalize_text(text))
    return out


def _infer_language(path: Path) -> str:
    stem = path.name
    for suffix in (".gz", ".tsv", ".txt"):
        stem = stem.removesuffix(suffix)
    found = _PAIR_NAME.search(stem)
    if not found:
        raise MetaxferError(f"cannot tell the target language of {path.name}: give --lang (a CLDR code such as de) "
                            f"or name the file en-<code>.tsv")
    return found.group(1)


def read_adaptation_pairs(adapt: Path, *, lang: str, target: Path | None = None) -> ParallelCorpus:
    """Read the adaptation pairs: a TSV file, or a Moses pair of files when ``target`` is given.

    Raises:
        DataNotFoundError: A file is missing.
        DataFormatError: A malformed file (the library's message: file, line, fix), or one with no usable pair.
        UnknownNameError: ``lang`` is not a CLDR code.
    """
    for path in (adapt, target):
        if path is not None and not path.is_file():
            raise DataNotFoundError(f"pair file {path} does not exist")
    if target is not None:
        return read_moses(adapt, target, src_lang="en", tgt_lang=lang)
    return read_tsv(adapt, src_lang="en", tgt_lang=lang)


def _warn_scripts(lines: Sequence[str]) -> None:
    fractions = [script_fraction(text, "Latn") if text else None for text in lines]
    odd = [i for i, f in enumerate(fractions, start=1) if f is not None and f < 0.5]
    if odd:
        shown = ", ".join(map(str, odd[:10])) + (" ..." if len(odd) > 10 else "")
        typer.echo(f"warning: {len(odd)} input line(s) are not mostly Latin letters (lines {shown}); the model "
                   "translates from English, so expect poor output for them", err=True)


def translate_cmd(
    model_dir: Path = typer.Option(..., "--model", "-m",
                                   help="A run folder of `metaxfer train configs/translation-*.yaml`."),
    adapt: Path = typer.Option(..., "--adapt", "-a",
                               help="Adaptation pairs: english<TAB>translation per line (.tsv/.gz)."),
    adapt_target: Optional[Path] = typer.Option(
        None, "--adapt-target", help="Target side of a Moses pair (then --adapt is the English side)."),
    lang: Optional[str] = typer.Option(None, "--lang", "-l",
                                       help="Target language (CLDR code); default: from a file name en-XX.tsv."),
    steps: int = typer.Option(100, "--steps", min=0, help="Fine-tuning steps on the pairs (0: none)."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Fine-tuning Adam learning rate."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Pairs per fine-tuning step."),
    beam: int = typer.Option(4, "--beam", min=1, help="Beam width (1: greedy)."),
    input_path: str = typer.Option("-", "--input", "-i", help="Lines to translate: a file, or - for standard input."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write translations here (default: stdout)."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best (validation-selected), last, or a folder."),
    seed: int = typer.Option(0, "--seed", help="Seed of fine-tuning."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads (0: the run's `threads` setting)."),
) -> None:
    """Fine-tune a trained translation run on a new pair file, then translate lines (one output line per input)."""
    loaded = load_translation_model(model_dir, checkpoint=checkpoint, device=resolve_device(device))
    with cpu_threads(threads or loaded.config.threads):
        _adapt_and_translate(loaded, adapt=adapt, adapt_target=adapt_target, lang=lang, steps=steps, lr=lr,
                             batch_size=batch_size, beam=beam, input_path=input_path, output=output, seed=seed)


def _adapt_and_translate(loaded: TranslationModel, *, adapt: Path, adapt_target: Path | None, lang: str | None,
                         steps: int, lr: float, batch_size: int, beam: int, input_path: str, output: Path | None,
                         seed: int) -> None:
    if not lr > 0:
        raise MetaxferError(f"--lr must be positive, got {lr}")
    code = normalize_language(lang if lang is not None else _infer_language(adapt))
    pairs = read_adaptation_pairs(adapt, lang=code, target=adapt_target)
    model, params, tokenizer = loaded.with_language(code)
    usable = filter_by_length(pairs, tokenizer, max_len=int(model.max_len))
    if len(usable) < len(pairs):
        typer.echo(f"note: {len(pairs) - len(usable)} of {len(pairs)} pairs in {adapt} are longer than the model's "
                   f"max_len={model.max_len} tokens and were left out", err=True)
    if len(usable) == 0:
        raise DataFormatError(f"{adapt}: no pair short enough for the model (max_len={model.max_len} tokens)")

    if input_path == "-":
        lines = read_input_lines(sys.stdin.buffer.read(), name="<stdin>")
    else:
        source = Path(input_path)
        if not source.is_file():
            raise DataNotFoundError(f"input file {source} does not exist (use --input - for standard input)")
        lines = read_input_lines(source.read_bytes(), name=str(source))
    limit = int(model.max_len) - 2
    for number, text in enumerate(lines, start=1):
        if len(tokenizer.encode(text)) > limit:
            raise DataFormatError(f"{input_path}, line {number}: {text[:40]!r}... has {len(tokenizer.encode(text))} "
                                  f"tokens; the model takes at most {limit}: split it into shorter phrases")
    _warn_scripts(lines)

    typer.echo(f"adapting {loaded.checkpoint} (step {loaded.step}) to en-{code} on {len(usable)} pairs, "
               f"{steps} steps", err=True)
    if steps > 0:
        torch.manual_seed(seed)  # dropout, if the run has any
        params, losses = fine_tune(model, params, tokenizer, usable, steps=steps,
                                   optimizer=OptimizerSpec(kind="adam", lr=lr), batch_size=batch_size, seed=seed)
        if not torch.isfinite(torch.tensor(losses[-1])):
            raise MetaxferError(f"fine-tuning diverged (loss {losses[-1]}); lower --lr (now {lr})")
        typer.echo(f"fine-tuning loss {losses[0]:.3f} -> {losses[-1]:.3f}", err=True)
    todo = [i for i, text in enumerate(lines) if text]
    hyps = translate(model, tokenizer, [lines[i] for i in todo], code, beam_size=beam, params=params) if todo else []
    out = [""] * len(lines)
    for i, hyp in zip(todo, hyps):
        out[i] = hyp
    text = "".join(f"{line}\n" for line in out)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"{len(out)} lines -> {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``translate`` to the root command."""
    app.command("translate")(translate_cmd)

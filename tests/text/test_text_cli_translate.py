"""``metaxfer translate``: adapt a tiny trained run to a small pair file and translate lines; clear errors for a
missing run, bad pair files, unknown language codes and bad input."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from metaxfer.cli.main import main
from metaxfer.cli.translate import read_input_lines
from metaxfer.errors import DataFormatError

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [("Monday", "Montag"), ("Germany", "Deutschland"), ("red", "rot"), ("water", "Wasser")]
TINY = [
    "train.steps=2", "train.eval_every=2", "train.log_every=1", "threads=1",
    "translation.train_languages=[fr,es]", "translation.val_languages=[nb]", "translation.test_languages=[de]",
    "translation.d_model=32", "translation.ff_dim=64", "translation.heads=2", "translation.eval_pairs=2",
    "translation.eval_steps=1", "translation.eval_k=2", "translation.batch_size=4",
]


def _main(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: bytes = b"") -> int:
    monkeypatch.setattr(sys, "argv", ["metaxfer", *argv])
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("translate") / "run"
    mp = pytest.MonkeyPatch()
    try:
        code = _main(mp, "train", str(ROOT / "configs" / "translation-joint.yaml"), *TINY, "--device", "cpu",
                     "--out", str(out))
    finally:
        mp.undo()
    assert code == 0
    return out


@pytest.fixture()
def pair_file(tmp_path: Path) -> Path:
    path = tmp_path / "en-de.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    return path


def test_adapts_to_the_pair_file_and_keeps_empty_lines(run_dir, pair_file, tmp_path, monkeypatch, capsys):
    # No --lang: it is read from the file name en-de.tsv. Enough steps to learn the four pairs by heart.
    out = tmp_path / "out.txt"
    lines = b"Monday\n\nGermany\n   \nred\nwater\n"
    assert _main(monkeypatch, "translate", "--model", str(run_dir), "--adapt", str(pair_file), "--steps", "150",
                 "--lr", "0.005", "--beam", "2", "--output", str(out), stdin=lines) == 0
    got = out.read_text(encoding="utf-8").split("\n")
    assert got[-1] == "" and len(got) - 1 == 6
    assert got[1] == "" and got[3] == ""
    right = sum(h == t for h, (_, t) in zip([got[0], got[2], got[4], got[5]], PAIRS))
    assert right >= 3, got
    assert "to en-de on 4 pairs" in capsys.readouterr().err


def test_input_file_to_stdout_with_a_moses_pair(run_dir, tmp_path, monkeypatch, capsys):
    src, tgt, text = tmp_path / "train.en", tmp_path / "train.hy", tmp_path / "in.txt"
    src.write_text("one\ntwo\n", encoding="utf-8")
    tgt.write_text("մեկ\nերկու\n", encoding="utf-8")
    text.write_text("one\n\ntwo\n", encoding="utf-8")
    assert _main(monkeypatch, "translate", "-m", str(run_dir), "--adapt", str(src), "--adapt-target", str(tgt),
                 "--lang", "hy", "--steps", "2", "--beam", "1", "--input", str(text)) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 3 and out.split("\n")[1] == ""


def test_clear_errors(run_dir, pair_file, tmp_path, monkeypatch, capsys):
    def error(*argv: str, stdin: bytes = b"x\n") -> str:
        assert _main(monkeypatch, "translate", *argv, stdin=stdin) == 2
        return capsys.readouterr().err

    base = ("--model", str(run_dir), "--steps", "0")
    assert "not a run folder" in error("--model", str(tmp_path / "nope"), "--adapt", str(pair_file))
    assert "unknown language code 'xx_zz'" in error(*base, "--adapt", str(pair_file), "--lang", "xx_zz")
    odd = tmp_path / "pairs.tsv"
    odd.write_text("Monday\tMontag\n", encoding="utf-8")
    assert "give --lang" in error(*base, "--adapt", str(odd))
    odd.write_text("Monday Montag\n", encoding="utf-8")
    assert "line 1" in error(*base, "--adapt", str(odd), "--lang", "de")
    src, tgt = tmp_path / "a.en", tmp_path / "a.de"
    src.write_text("one\ntwo\nthree\n", encoding="utf-8")
    tgt.write_text("eins\nzwei\n", encoding="utf-8")
    msg = error(*base, "--adapt", str(src), "--adapt-target", str(tgt), "--lang", "de")
    assert "3" in msg and "2" in msg
    odd.write_text("\n  \n", encoding="utf-8")
    assert str(odd) in error(*base, "--adapt", str(odd), "--lang", "de")
    assert "does not exist" in error(*base, "--adapt", str(tmp_path / "missing.tsv"), "--lang", "de")
    assert "not UTF-8" in error(*base, "--adapt", str(pair_file), stdin=b"caf\xe9\n")
    assert "split it into shorter phrases" in error(*base, "--adapt", str(pair_file), stdin=b"word " * 40 + b"\n")
    assert "input file" in error(*base, "--adapt", str(pair_file), "--input", str(tmp_path / "none.txt"))


def test_non_latin_input_is_translated_with_a_warning(run_dir, pair_file, monkeypatch, capsys):
    assert _main(monkeypatch, "translate", "-m", str(run_dir), "--adapt", str(pair_file), "--steps", "0",
                 "--beam", "1", stdin="Привет мир\nhello\n".encode()) == 0
    captured = capsys.readouterr()
    assert "not mostly Latin letters (lines 1)" in captured.err
    assert captured.out.count("\n") == 2


def test_read_input_lines_normalises_and_keeps_empty_lines():
    assert read_input_lines(b"\xef\xbb\xbfa  b\r\n\n\tc\x07\n", name="x") == ["a b", "", "c"]
    assert read_input_lines(b"no newline at end", name="x") == ["no newline at end"]
    with pytest.raises(DataFormatError, match="x, line 2: not UTF-8"):
        read_input_lines(b"ok\n\xff\n", name="x")

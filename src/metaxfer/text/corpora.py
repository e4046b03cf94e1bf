"""The parallel-corpus layer: :class:`ParallelCorpus`, the packaged English → X corpora, and readers for the user's
own TSV and Moses-style files of any size.

Every pair goes through one cleaning step (:class:`PairCleaner`):

* text is normalised: Unicode NFC, control characters removed, runs of white space collapsed to one space;
* a line that is empty on both sides is skipped (blank separator lines are common in Moses files);
* an *invalid* pair (one side empty, a U+FFFD replacement character left by an earlier wrong decoding, or a side whose
  letters are mostly (≥ 50 %) not in the script of its language, e.g. Cyrillic text in a file labelled ``de``) is
  dropped and counted (``on_invalid="drop"``, the default; the counts are logged and kept in
  ``corpus.metadata["dropped"]``), or stops the read with a :class:`~metaxfer.errors.DataFormatError` naming the file,
  line and problem (``on_invalid="error"``);
* exact duplicates (same source and target) are kept once.

Structural problems always raise a :class:`~metaxfer.errors.DataFormatError` before any training starts: bytes that
are not valid in the file's encoding (the message gives the line and how to convert the file), a TSV line with too
few columns, two Moses files with different numbers of lines. Unknown language codes raise
:class:`~metaxfer.errors.UnknownNameError` with the closest known codes.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError
from metaxfer.text.packaged import CORPUS_SOURCES
from metaxfer.text.scripts import language_script, normalize_language, script_fraction

__all__ = [
    "ParallelCorpus",
    "PairCleaner",
    "normalize_text",
    "load_corpus",
    "load_corpora",
    "available_languages",
    "read_tsv",
    "read_moses",
    "write_tsv",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
OnInvalid = Literal["drop", "error"]


@dataclass
class ParallelCorpus:
    """Aligned phrase pairs of one language pair.

    Attributes:
        src_lang: Source language code (``"en"``).
        tgt_lang: Target language code (``"de"``).
        sources: Source phrases, normalised (see :func:`normalize_text`).
        targets: Their translations, same length.
        keys: One stable id per pair (``"cldr/territory:FR"``, ``"pairs.tsv:12"``).
        metadata: JSON-able facts: ``origin``, ``license``, ``dropped`` (counts by reason), ...
    """

    src_lang: str
    tgt_lang: str
    sources: list[str]
    targets: list[str]
    keys: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.sources) == len(self.targets) == len(self.keys):
            raise DataFormatError(
                f"corpus {self.name}: {len(self.sources)} sources, {len(self.targets)} targets and {len(self.keys)} "
                f"keys; give one target and one key per source"
            )

    @property
    def name(self) -> str:
        """``"en-de"``."""
        return f"{self.src_lang}-{self.tgt_lang}"

    def __len__(self) -> int:
        return len(self.sources)

    def pairs(self) -> list[tuple[str, str]]:
        """The (source, target) pairs."""
        return list(zip(self.sources, self.targets))

    def subset(self, indices: Iterable[int]) -> ParallelCorpus:
        """The pairs at ``indices`` (in that order), with the same languages and metadata."""
        idx = list(indices)
        return ParallelCorpus(
            self.src_lang,
            self.tgt_lang,
            [self.sources[i] for i in idx],
            [self.targets[i] for i in idx],
            [self.keys[i] for i in idx],
            dict(self.metadata),
        )

    def reversed(self) -> ParallelCorpus:
        """The same pairs in the other direction (X → English)."""
        return ParallelCorpus(self.tgt_lang, self.src_lang, list(self.targets), list(self.sources), list(self.keys),
                              dict(self.metadata))

    def describe(self) -> str:
        """One line: name, size, origin."""
        return f"{self.name}: {len(self)} pairs from {self.metadata.get('origin', '?')}"


# ------------------------------------------------------------------------------------------------------- cleaning
_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFC-normalise ``text``, drop control characters and collapse white space (tabs and newlines included)."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return _WS.sub(" ", text).strip()


class PairCleaner:
    """Normalise, check and deduplicate pairs of one language pair (see the module docstring for the rules).

    Args:
        src_lang: Source language code; checked against CLDR unless ``src_script`` is given.
        tgt_lang: Target language code; checked against CLDR unless ``tgt_script`` is given.
        on_invalid: ``"drop"`` (count and skip) or ``"error"`` (raise) for invalid pairs.
        src_script: The source script (ISO 15924); by default CLDR's likely script of ``src_lang``.
        tgt_script: The target script; by default CLDR's likely script of ``tgt_lang``.
        min_script_fraction: A side is in the wrong script when fewer of its letters than this are in its script.
        max_chars: Drop (or reject) pairs with a side longer than this many characters; ``None`` for no limit.

    Raises:
        UnknownNameError: A language code is unknown and no script was given for it.
        ValueError: ``on_invalid`` is not one of the two policies.
    """

    def __init__(
        self,
        src_lang: str,
        tgt_lang: str,
        *,
        on_invalid: OnInvalid = "drop",
        src_script: str | None = None,
        tgt_script: str | None = None,
        min_script_fraction: float = 0.5,
        max_chars: int | None = None,
    ) -> None:
        if on_invalid not in ("drop", "error"):
            raise ValueError(f"on_invalid must be 'drop' or 'error', not {on_invalid!r}")
        self.src_lang, self.src_script = _resolve_language(src_lang, src_script)
        self.tgt_lang, self.tgt_script = _resolve_language(tgt_lang, tgt_script)
        self.on_invalid = on_invalid
        self.min_script_fraction = min_script_fraction
        self.max_chars = max_chars
        self.dropped: Counter[str] = Counter()
        self._seen: set[tuple[str, str]] = set()

    def problem(self, src: str, tgt: str) -> tuple[str, str] | None:
        """Why a normalised pair is invalid, as ``(short reason, explanation)``, or ``None`` when it is fine.

        Short reasons are ``"<side>: empty"``, ``"<side>: bad encoding"``, ``"<side>: too long"`` and
        ``"<side>: wrong script"`` with side ``source`` or ``target``; they key ``dropped``.
        """
        for side, text, lang, script in (("source", src, self.src_lang, self.src_script),
                                         ("target", tgt, self.tgt_lang, self.tgt_script)):
            if not text:
                return f"{side}: empty", f"the {side} side is empty"
            if "\ufffd" in text:
                return f"{side}: bad encoding", (f"{side} {text!r} holds U+FFFD, the mark of text decoded with the "
                                                 f"wrong encoding")
            if self.max_chars is not None and len(text) > self.max_chars:
                return f"{side}: too long", f"{side} is longer than max_chars={self.max_chars}"
            fraction = script_fraction(text, script)
            if fraction is not None and fraction < self.min_script_fraction:
                return f"{side}: wrong script", f"{side} {text!r} is not in the {script} script expected for {lang!r}"
        return None

    def add(self, src: str, tgt: str, *, where: str) -> tuple[str, str] | None:
        """Clean one raw pair.

        Args:
            src: Raw source text.
            tgt: Raw target text.
            where: Where the pair comes from (``"pairs.tsv, line 12"``), for error messages.

        Returns:
            The normalised pair to keep, or ``None`` when it is skipped (blank, invalid and dropped, or a duplicate).

        Raises:
            DataFormatError: The pair is invalid and ``on_invalid="error"``.
        """
        src, tgt = normalize_text(src), normalize_text(tgt)
        if not src and not tgt:
            self.dropped["blank line"] += 1
            return None
        problem = self.problem(src, tgt)
        if problem is not None:
            if self.on_invalid == "error":
                raise DataFormatError(
                    f"{where}: {problem[1]}. Fix the data, or pass on_invalid='drop' to skip such pairs with a count"
                )
            self.dropped[problem[0]] += 1
            return None
        if (src, tgt) in self._seen:
            self.dropped["duplicate"] += 1
            return None
        self._seen.add((src, tgt))
        return src, tgt

    def report(self, name: str, *, level: int = logging.WARNING) -> None:
        """Log what was dropped: one line at ``level`` for invalid pairs, one debug line for blanks and duplicates."""
        invalid = {k: v for k, v in self.dropped.items() if k not in ("blank line", "duplicate")}
        if invalid:
            log.log(level, "%s: dropped %d invalid pairs (%s)", name, sum(invalid.values()),
                        ", ".join(f"{k}: {v}" for k, v in sorted(invalid.items())))
        if self.dropped["blank line"] or self.dropped["duplicate"]:
            log.debug("%s: skipped %d blank lines and %d duplicates", name, self.dropped["blank line"],
                      self.dropped["duplicate"])


def _resolve_language(lang: str, script: str | None) -> tuple[str, str]:
    if script is None:
        return normalize_language(lang), language_script(lang)
    code = str(lang).strip().replace("-", "_")
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z0-9]{2,8})*", code):
        raise UnknownNameError(f"{lang!r} is not a language code: use ISO 639 letters such as 'de', 'pt_BR', 'sr_Latn'")
    if not re.fullmatch(r"[A-Z][a-z]{3}", script):
        raise UnknownNameError(f"{script!r} is not an ISO 15924 script code such as 'Latn', 'Cyrl', 'Arab'")
    return code, script


# --------------------------------------------------------------------------------------------------- packaged sources
def available_languages(source: str = "cldr") -> list[str]:
    """Target languages a packaged source can provide on this installation.

    Raises:
        UnknownNameError: No such source; the message lists the valid ones.
    """
    return CORPUS_SOURCES.get(source).languages()


def load_corpus(
    tgt_lang: str,
    *,
    sources: Sequence[str] = ("cldr",),
    on_invalid: OnInvalid = "drop",
    max_chars: int | None = None,
) -> ParallelCorpus:
    """English → ``tgt_lang`` phrase pairs from packaged sources (see :mod:`metaxfer.text.packaged`).

    Args:
        tgt_lang: Target language code, e.g. ``"de"``.
        sources: Registered corpus sources to merge (``"cldr"``, ``"emoji"``, ``"iso-codes"``, ``"gettext"``).
        on_invalid: What to do with invalid pairs: ``"drop"`` or ``"error"``.
        max_chars: Longest phrase kept, in characters (``None``: no limit).

    Returns:
        The merged corpus; keys are ``"<source>/<concept>"``.

    Raises:
        UnknownNameError: Unknown source or language code.
        DataNotFoundError: No source in ``sources`` has the language here (the message lists what is needed).
    """
    if isinstance(sources, str):
        sources = (sources,)
    lang = normalize_language(tgt_lang)
    cleaner = PairCleaner("en", lang, on_invalid=on_invalid, max_chars=max_chars)
    out_src: list[str] = []
    out_tgt: list[str] = []
    keys: list[str] = []
    used = []
    for name in sources:
        source = CORPUS_SOURCES.get(name)
        if lang not in source.languages():
            continue
        used.append(name)
        for key, src, tgt in source.pairs(lang):
            kept = cleaner.add(src, tgt, where=f"{name} corpus, en-{lang}, {key}")
            if kept is not None:
                out_src.append(kept[0])
                out_tgt.append(kept[1])
                keys.append(f"{name}/{key}")
    if not used:
        needs = "; ".join(f"{n}: {CORPUS_SOURCES.get(n).requires}" for n in sources)
        raise DataNotFoundError(
            f"no corpus source among {list(sources)} has English-{lang} pairs on this machine ({needs}); "
            f"available_languages(source) lists the languages of a source"
        )
    cleaner.report(f"en-{lang}", level=logging.INFO)  # packaged data: expected, e.g. untranslated unit symbols
    meta = {
        "origin": "+".join(used),
        "license": "; ".join(CORPUS_SOURCES.get(n).license for n in used),
        "dropped": dict(cleaner.dropped),
        "src_script": cleaner.src_script,
        "tgt_script": cleaner.tgt_script,
    }
    return ParallelCorpus("en", lang, out_src, out_tgt, keys, meta)


def load_corpora(languages: Iterable[str], **options: Any) -> dict[str, ParallelCorpus]:
    """:func:`load_corpus` for several target languages, keyed by canonical language code."""
    out = {}
    for lang in languages:
        corpus = load_corpus(lang, **options)
        out[corpus.tgt_lang] = corpus
    return out


# --------------------------------------------------------------------------------------------------------- files
def _open_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, decoded line without its newline), failing clearly on undecodable bytes."""
    if not path.is_file():
        raise DataNotFoundError(f"parallel text file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                bad = raw[exc.start: exc.end]
                raise DataFormatError(
                    f"{path}, line {number}: bytes {bad!r} at byte {exc.start} are not valid {encoding}. The file is "
                    f"in another encoding: convert it (`iconv -f LATIN1 -t UTF-8 in.txt > out.txt`) or pass its "
                    f"encoding (encoding='latin-1')"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line.rstrip("\r\n")


def read_tsv(
    path: PathLike,
    *,
    src_lang: str,
    tgt_lang: str,
    columns: tuple[int, int] = (0, 1),
    header: bool = False,
    encoding: str = "utf-8",
    on_invalid: OnInvalid = "drop",
    src_script: str | None = None,
    tgt_script: str | None = None,
    max_chars: int | None = None,
    limit: int | None = None,
) -> ParallelCorpus:
    """Read tab-separated pairs, one per line (``source<TAB>target``; ``.gz`` files are read as gzip).

    The file is streamed, so its size is limited only by the memory the kept pairs take; ``limit`` stops early.

    Args:
        path: The file.
        src_lang: Source language code.
        tgt_lang: Target language code.
        columns: Which columns hold the source and the target (other columns are ignored).
        header: Skip the first line.
        encoding: Text encoding of the file.
        on_invalid: ``"drop"`` or ``"error"`` for invalid pairs (see the module docstring).
        src_script: Script of the source when its language is not in CLDR (or to override CLDR).
        tgt_script: Script of the target, likewise.
        max_chars: Longest phrase kept.
        limit: Stop after this many kept pairs.

    Returns:
        The corpus; keys are ``"<file name>:<line>"``.

    Raises:
        DataNotFoundError: The file does not exist.
        DataFormatError: Undecodable bytes, a line with too few columns (blank lines are skipped), or an invalid pair
            with ``on_invalid="error"``.
        UnknownNameError: An unknown language code.
    """
    path = Path(path)
    cleaner = PairCleaner(src_lang, tgt_lang, on_invalid=on_invalid, src_script=src_script, tgt_script=tgt_script,
                          max_chars=max_chars)
    need = max(columns) + 1
    srcs, tgts, keys = [], [], []
    for number, line in _open_lines(path, encoding):
        if header and number == 1:
            continue
        if not line.strip():
            cleaner.dropped["blank line"] += 1
            continue
        fields = line.split("\t")
        if len(fields) < need:
            raise DataFormatError(
                f"{path}, line {number}: {len(fields)} tab-separated column(s), need {need} (source column "
                f"{columns[0]}, target column {columns[1]}): {line[:80]!r}. Separate source and target with one TAB"
            )
        kept = cleaner.add(fields[columns[0]], fields[columns[1]], where=f"{path}, line {number}")
        if kept is not None:
            srcs.append(kept[0])
            tgts.append(kept[1])
            keys.append(f"{path.name}:{number}")
            if limit is not None and len(srcs) >= limit:
                break
    return _file_corpus(cleaner, srcs, tgts, keys, origin=str(path))


def read_moses(
    src_path: PathLike,
    tgt_path: PathLike,
    *,
    src_lang: str,
    tgt_lang: str,
    encoding: str = "utf-8",
    on_invalid: OnInvalid = "drop",
    src_script: str | None = None,
    tgt_script: str | None = None,
    max_chars: int | None = None,
    limit: int | None = None,
) -> ParallelCorpus:
    """Read a Moses-style pair of files: line *i* of ``src_path`` translates line *i* of ``tgt_path``.

    Both files are streamed side by side; arguments are those of :func:`read_tsv`.

    Raises:
        DataFormatError: The files have different numbers of lines (the message gives both counts), undecodable
            bytes, or an invalid pair with ``on_invalid="error"``.
    """
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    cleaner = PairCleaner(src_lang, tgt_lang, on_invalid=on_invalid, src_script=src_script, tgt_script=tgt_script,
                          max_chars=max_chars)
    srcs, tgts, keys = [], [], []
    a, b = _open_lines(src_path, encoding), _open_lines(tgt_path, encoding)
    count = 0
    while True:
        left, right = next(a, None), next(b, None)
        if left is None or right is None:
            if left is None and right is None:
                break
            longer, rest = (src_path, a) if right is None else (tgt_path, b)
            total_longer = count + 1 + sum(1 for _ in rest)
            raise DataFormatError(
                f"mismatched parallel files: {src_path} has {total_longer if longer == src_path else count} lines and "
                f"{tgt_path} has {total_longer if longer == tgt_path else count}; line i of one must translate line i "
                f"of the other (check for a missing or extra line, or a line break inside a sentence)"
            )
        count += 1
        kept = cleaner.add(left[1], right[1], where=f"{src_path.name}/{tgt_path.name}, line {count}")
        if kept is not None:
            srcs.append(kept[0])
            tgts.append(kept[1])
            keys.append(f"{src_path.name}:{count}")
            if limit is not None and len(srcs) >= limit:
                break
    return _file_corpus(cleaner, srcs, tgts, keys, origin=f"{src_path} + {tgt_path}")


def _file_corpus(cleaner: PairCleaner, srcs: list[str], tgts: list[str], keys: list[str], *,
                 origin: str) -> ParallelCorpus:
    name = f"{origin} ({cleaner.src_lang}-{cleaner.tgt_lang})"
    cleaner.report(name)
    if not srcs:
        raise DataFormatError(
            f"{name}: no usable pairs (skipped: {dict(cleaner.dropped) or 'nothing, the file is empty'}); check the "
            f"file, its language codes and its encoding"
        )
    meta = {"origin": origin, "dropped": dict(cleaner.dropped), "src_script": cleaner.src_script,
            "tgt_script": cleaner.tgt_script}
    return ParallelCorpus(cleaner.src_lang, cleaner.tgt_lang, srcs, tgts, keys, meta)


def write_tsv(corpus: ParallelCorpus, path: PathLike) -> Path:
    """Write ``corpus`` as UTF-8 ``source<TAB>target`` lines, atomically (temporary file, then rename).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with io.open(fd, "w", encoding="utf-8", newline="\n") as fh:
            for src, tgt in zip(corpus.sources, corpus.targets):
                fh.write(f"{normalize_text(src)}\t{normalize_text(tgt)}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

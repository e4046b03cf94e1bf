"""One vocabulary for every language: UTF-8 bytes, optionally characters learnt from the training text, and one tag
token per target language; plus the tensors a translation batch is made of.

Token layout (ids never move when languages are added, so a trained model stays valid):

====================  ==============================================================
``0 .. 3``            ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``
``4 .. 259``          the 256 byte values
``260 .. 260+C-1``    C characters (``Tokenizer.train``; none for a pure byte tokenizer)
``260+C ..``          language tags ``<2de>``, ``<2fr>``, ... in the order given
====================  ==============================================================

A character tokenizer falls back to the UTF-8 bytes of any character it has not learnt, so text in a script never
seen in training is still encoded losslessly. Encoder input is ``<2xx> text <eos>``; decoder input is
``<2xx> text`` and decoder output ``text <eos>``: the target language is told to both the encoder and the decoder.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import logging

import torch

from metaxfer.errors import DataFormatError, UnknownNameError
from metaxfer.text.corpora import ParallelCorpus

__all__ = ["Tokenizer", "TranslationBatch", "encode_pairs", "filter_by_length", "PAD", "BOS", "EOS", "UNK",
           "BYTE_OFFSET"]

log = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
BYTE_OFFSET = len(SPECIALS)
_CHAR_OFFSET = BYTE_OFFSET + 256


class Tokenizer:
    """Byte (and optionally character) tokenizer with language tags.

    Args:
        languages: Target languages that get a tag token, in id order.
        chars: Learnt characters (each a single code point), in id order; empty for a byte tokenizer.

    Raises:
        ValueError: A duplicate language or character, or a "character" that is not one code point.
    """

    def __init__(self, *, languages: Sequence[str], chars: Sequence[str] = ()) -> None:
        self.chars: tuple[str, ...] = tuple(chars)
        self.languages: tuple[str, ...] = tuple(languages)
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"duplicate language tags in {list(self.languages)}")
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("chars must be distinct single characters")
        self._char_id = {c: _CHAR_OFFSET + i for i, c in enumerate(self.chars)}
        self._tag_offset = _CHAR_OFFSET + len(self.chars)
        self._lang_id = {x: self._tag_offset + i for i, x in enumerate(self.languages)}

    # ----------------------------------------------------------------------------------------------- construction
    @classmethod
    def train(cls, texts: Iterable[str], *, languages: Sequence[str], min_count: int = 2,
              max_chars: int = 2000) -> Tokenizer:
        """Learn a character vocabulary from training text (nothing is downloaded).

        Args:
            texts: Training phrases (both sides).
            languages: Languages that get a tag.
            min_count: A character needs this many occurrences to get its own id (others use bytes).
            max_chars: Keep at most this many characters, the most frequent first.

        Returns:
            A character tokenizer with byte fallback.
        """
        counts = Counter(ch for text in texts for ch in text)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [c for c, n in ranked if n >= min_count and ord(c) >= 128]
        # ASCII already has one byte each: a character id would only duplicate it.
        return cls(languages=languages, chars=kept[:max_chars])

    def add_languages(self, languages: Iterable[str]) -> Tokenizer:
        """A tokenizer with extra language tags appended (existing ids unchanged); languages it has are skipped."""
        extra = [x for x in languages if x not in self._lang_id]
        return Tokenizer(languages=self.languages + tuple(dict.fromkeys(extra)), chars=self.chars)

    # ---------------------------------------------------------------------------------------------------- sizes
    @property
    def kind(self) -> str:
        """``"byte"`` or ``"char"``."""
        return "char" if self.chars else "byte"

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return self._tag_offset + len(self.languages)

    def lang_id(self, lang: str) -> int:
        """The tag id of ``lang``.

        Raises:
            UnknownNameError: No tag for ``lang``; the message says how to add one.
        """
        try:
            return self._lang_id[lang]
        except KeyError:
            close = difflib.get_close_matches(lang, self.languages, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"the tokenizer has no tag for language {lang!r}.{hint} It has: {', '.join(self.languages)}. Add it "
                f"with tokenizer.add_languages([{lang!r}]) and grow the model's embeddings (expand_vocab)"
            ) from None

    def tag_ids(self, languages: Iterable[str] | None = None) -> list[int]:
        """Tag ids of ``languages`` (all languages by default)."""
        return [self.lang_id(x) for x in (self.languages if languages is None else languages)]

    def non_output_ids(self) -> list[int]:
        """Ids a decoder must never emit: ``<pad>``, ``<bos>``, ``<unk>`` and every language tag."""
        return [PAD, BOS, UNK, *range(self._tag_offset, self.vocab_size)]

    # ------------------------------------------------------------------------------------------------ encoding
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no tags, no ``<eos>``)."""
        out: list[int] = []
        for ch in text:
            cid = self._char_id.get(ch)
            if cid is not None:
                out.append(cid)
            else:
                out.extend(BYTE_OFFSET + b for b in ch.encode("utf-8"))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids: stops at the first ``<eos>``, skips other special and tag tokens, and replaces byte runs
        that are not valid UTF-8 with U+FFFD."""
        parts: list[str] = []
        buf = bytearray()
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if BYTE_OFFSET <= i < _CHAR_OFFSET:
                buf.append(i - BYTE_OFFSET)
                continue
            if buf:
                parts.append(buf.decode("utf-8", errors="replace"))
                buf.clear()
            if _CHAR_OFFSET <= i < self._tag_offset:
                parts.append(self.chars[i - _CHAR_OFFSET])
        if buf:
            parts.append(buf.decode("utf-8", errors="replace"))
        return "".join(parts)

    # --------------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: ``{"kind", "languages", "chars"}``."""
        return {"kind": self.kind, "languages": list(self.languages), "chars": "".join(self.chars)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`state_dict`.

        Raises:
            DataFormatError: The state is not a tokenizer state.
        """
        if not isinstance(state, dict) or "languages" not in state or "chars" not in state:
            raise DataFormatError(f"not a tokenizer state (want keys kind, languages, chars): {state!r:.200}")
        return cls(languages=list(state["languages"]), chars=list(state["chars"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.state_dict() == other.state_dict()

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, languages={len(self.languages)})"


@dataclass
class TranslationBatch:
    """Padded token tensors of a batch of pairs.

    Attributes:
        src: Encoder input ``<2xx> source <eos>``, (B, S), padded with ``<pad>`` = 0.
        tgt_in: Decoder input ``<2xx> target``, (B, T).
        tgt_out: Decoder output ``target <eos>``, (B, T).
        lang: Index of each row's target language in the tokenizer's language list, (B,).
    """

    src: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    lang: torch.Tensor

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def to(self, device: torch.device | str) -> TranslationBatch:
        """The batch on ``device``."""
        return TranslationBatch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device),
                                self.lang.to(device))

    def index(self, rows: torch.Tensor) -> TranslationBatch:
        """Rows ``rows``, with all-padding columns at the end trimmed."""
        return TranslationBatch(_trim(self.src[rows]), _trim(self.tgt_in[rows]), _trim(self.tgt_out[rows]),
                                self.lang[rows])

    @staticmethod
    def concat(batches: Sequence[TranslationBatch]) -> TranslationBatch:
        """Join batches row-wise (padding to the widest)."""
        return TranslationBatch(*(torch.cat(_padded(batches, key)) for key in ("src", "tgt_in", "tgt_out")),
                                torch.cat([b.lang for b in batches]))

    @staticmethod
    def stack(batches: Sequence[TranslationBatch]) -> TranslationBatch:
        """Stack equally long batches along a new leading task dimension (padding to the widest): tensors become
        (T, B, L) and ``lang`` (T, B), the input of the task-parallel inner loop.

        Raises:
            ValueError: The batches have different numbers of rows.
        """
        if len({len(b) for b in batches}) != 1:
            raise ValueError(f"cannot stack batches of {sorted({len(b) for b in batches})} rows: use one size")
        return TranslationBatch(*(torch.stack(_padded(batches, key)) for key in ("src", "tgt_in", "tgt_out")),
                                torch.stack([b.lang for b in batches]))


def _padded(batches: Sequence[TranslationBatch], key: str) -> list[torch.Tensor]:
    parts = [getattr(b, key) for b in batches]
    width = max(p.shape[-1] for p in parts)
    return [torch.nn.functional.pad(p, (0, width - p.shape[-1]), value=PAD) for p in parts]


def _trim(x: torch.Tensor) -> torch.Tensor:
    used = (x != PAD).any(dim=0).nonzero()
    return x[:, : int(used.max()) + 1] if used.numel() else x[:, :1]


def encode_pairs(
    tokenizer: Tokenizer,
    sources: Sequence[str],
    targets: Sequence[str],
    langs: str | Sequence[str],
    *,
    max_len: int,
) -> TranslationBatch:
    """Encode pairs into a :class:`TranslationBatch`.

    Args:
        tokenizer: The tokenizer.
        sources: Source phrases.
        targets: Target phrases (same length).
        langs: The target language of all rows, or one per row.
        max_len: Longest allowed sequence, tags and ``<eos>`` included (the model's positional limit).

    Returns:
        The batch.

    Raises:
        DataFormatError: Lengths differ, or a phrase is longer than ``max_len`` tokens (the message says how to
            filter such pairs first).
    """
    if len(sources) != len(targets):
        raise DataFormatError(f"{len(sources)} sources but {len(targets)} targets: give one target per source")
    lang_list = [langs] * len(sources) if isinstance(langs, str) else list(langs)
    if len(lang_list) != len(sources):
        raise DataFormatError(f"{len(lang_list)} languages for {len(sources)} pairs: give one language per pair")
    src_rows, in_rows, out_rows, lang_idx = [], [], [], []
    for s, t, x in zip(sources, targets, lang_list):
        tag = tokenizer.lang_id(x)
        s_ids, t_ids = tokenizer.encode(s), tokenizer.encode(t)
        if len(s_ids) + 2 > max_len or len(t_ids) + 1 > max_len:
            raise DataFormatError(
                f"pair ({s[:40]!r}, {t[:40]!r}) needs {max(len(s_ids) + 2, len(t_ids) + 1)} tokens, more than "
                f"max_len={max_len}: drop long pairs first (filter_by_length) or use a model with a larger max_len"
            )
        src_rows.append([tag, *s_ids, EOS])
        in_rows.append([tag, *t_ids])
        out_rows.append([*t_ids, EOS])
        lang_idx.append(tag - tokenizer.lang_id(tokenizer.languages[0]))
    return TranslationBatch(_pad(src_rows), _pad(in_rows), _pad(out_rows), torch.tensor(lang_idx, dtype=torch.long))


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max((len(r) for r in rows), default=1)
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def filter_by_length(corpus: ParallelCorpus, tokenizer: Tokenizer, *, max_len: int) -> ParallelCorpus:
    """The pairs of ``corpus`` that :func:`encode_pairs` accepts under ``max_len`` (the others are counted in
    ``metadata["dropped"]["too long for the model"]`` and logged)."""
    keep = [i for i, (s, t) in enumerate(zip(corpus.sources, corpus.targets))
            if len(tokenizer.encode(s)) + 2 <= max_len and len(tokenizer.encode(t)) + 1 <= max_len]
    out = corpus.subset(keep)
    if len(keep) < len(corpus):
        dropped = dict(out.metadata.get("dropped", {}))
        dropped["too long for the model"] = len(corpus) - len(keep)
        out.metadata["dropped"] = dropped
        log.info("%s: %d of %d pairs are longer than max_len=%d tokens and were left out", corpus.name,
                 len(corpus) - len(keep), len(corpus), max_len)
    return out

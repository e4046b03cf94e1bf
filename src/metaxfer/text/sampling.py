"""Random batches of language pairs for training: mixed-language batches, per-language batches, and support/query
tasks, all drawn from pairs encoded once, with a seeded generator whose state is a tensor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from metaxfer.errors import EpisodeError
from metaxfer.text.corpora import ParallelCorpus
from metaxfer.text.tokenizer import Tokenizer, TranslationBatch, encode_pairs

__all__ = ["PairSampler"]


class PairSampler:
    """Random batches from several language pairs, pre-encoded once.

    Args:
        tokenizer: The tokenizer (with tags for every target language).
        corpora: Training corpora (English → X), one per target language.
        max_len: The model's max_len (longer pairs must be filtered out first).
        seed: Seed of the sampler's generator.
        device: Where batches are put.

    Raises:
        EpisodeError: No corpora, or an empty one.
    """

    def __init__(self, tokenizer: Tokenizer, corpora: Sequence[ParallelCorpus], *, max_len: int, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        if not corpora:
            raise EpisodeError("a PairSampler needs at least one corpus")
        empty = [c.name for c in corpora if len(c) == 0]
        if empty:
            raise EpisodeError(f"corpora {empty} have no pairs")
        self.tokenizer = tokenizer
        self.languages = [c.tgt_lang for c in corpora]
        self.device = torch.device(device)
        self.data = {c.tgt_lang: encode_pairs(tokenizer, c.sources, c.targets, c.tgt_lang, max_len=max_len)
                     for c in corpora}
        self.generator = torch.Generator().manual_seed(seed)

    def random_language(self) -> str:
        """A language drawn uniformly."""
        return self.languages[int(torch.randint(len(self.languages), (1,), generator=self.generator))]

    def batch(self, size: int, *, lang: str | None = None) -> TranslationBatch:
        """``size`` random pairs of ``lang``, or of languages drawn uniformly per row when ``lang`` is None."""
        if lang is not None:
            data = self.data[lang]
            return data.index(torch.randint(len(data), (size,), generator=self.generator)).to(self.device)
        picks = torch.randint(len(self.languages), (size,), generator=self.generator)
        parts = []
        for i, x in enumerate(self.languages):
            n = int((picks == i).sum())
            if n:
                data = self.data[x]
                parts.append(data.index(torch.randint(len(data), (n,), generator=self.generator)))
        return TranslationBatch.concat(parts).to(self.device)

    def task(self, lang: str, *, support: int, query: int) -> tuple[TranslationBatch, TranslationBatch]:
        """Disjoint support and query batches of one language pair.

        Raises:
            EpisodeError: The pair has fewer than ``support + query`` pairs.
        """
        data = self.data[lang]
        if support + query > len(data):
            raise EpisodeError(f"en-{lang} has {len(data)} training pairs, fewer than support {support} + query "
                               f"{query}: lower the sizes or drop this language")
        idx = torch.randperm(len(data), generator=self.generator)
        return data.index(idx[:support]).to(self.device), data.index(idx[support: support + query]).to(self.device)

    def tasks(self, langs: Sequence[str], *, support: int,
              query: int) -> tuple[TranslationBatch, TranslationBatch]:
        """:meth:`task` for each language in turn, stacked along a leading task dimension (see
        ``TranslationBatch.stack``)."""
        pairs = [self.task(x, support=support, query=query) for x in langs]
        return TranslationBatch.stack([p[0] for p in pairs]), TranslationBatch.stack([p[1] for p in pairs])

    def batches(self, langs: Sequence[str], size: int) -> TranslationBatch:
        """:meth:`batch` of ``size`` pairs for each language in turn, stacked along a leading task dimension."""
        return TranslationBatch.stack([self.batch(size, lang=x) for x in langs])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator state."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"])

"""Splits for cross-lingual transfer: languages into meta-train / validation / unseen test, and phrases into
train / val / test, with checks that no held-out phrase reaches training.

Phrases are split by their English side, by a salted hash of the case-folded phrase. The same English phrase therefore
falls in the same split in *every* language: the test phrases of an unseen pair were never seen during meta-training,
in any language. Validation and test pairs whose target also occurs among the pair's training targets (two English
phrases with one translation, e.g. the language and the script "Georgian") are removed from those splits.

Each language pair is one task. The unseen test languages cover scripts seen in meta-training (e.g. German, Latin
script, after French and Spanish) and scripts never seen (e.g. Armenian).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from metaxfer.errors import EpisodeError, MetaxferError
from metaxfer.text.corpora import ParallelCorpus
from metaxfer.text.scripts import language_script, normalize_language

__all__ = [
    "LeakageError",
    "phrase_bucket",
    "split_phrases",
    "check_no_leakage",
    "LanguageSplit",
    "split_languages",
    "TransferSplit",
    "build_transfer_split",
    "sample_pairs",
]

log = logging.getLogger(__name__)

PHRASE_SPLITS = ("train", "val", "test")


class LeakageError(MetaxferError, ValueError):
    """A held-out phrase appears in training data."""


def phrase_bucket(text: str, *, seed: int = 0) -> float:
    """A number in [0, 1) fixed by the case-folded phrase and ``seed``: the same on every machine and run."""
    digest = hashlib.blake2b(f"{seed}\x00{text.casefold()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_phrases(
    corpus: ParallelCorpus, *, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict[str, ParallelCorpus]:
    """Cut one pair's phrases into train / val / test by their source phrase (see the module docstring).

    Args:
        corpus: The pairs.
        fractions: Expected shares of train, val and test (they must sum to 1).
        seed: Salt of the hash; the same seed gives the same split for every language.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``; the metadata of each records ``split`` and, for val/test,
        ``removed_target_overlap`` (pairs dropped because their target is also a training target).

    Raises:
        ValueError: Fractions that are negative or do not sum to 1.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative shares (train, val, test) summing to 1, got "
                         f"{fractions}")
    cut1, cut2 = fractions[0], fractions[0] + fractions[1]
    buckets: dict[str, list[int]] = {name: [] for name in PHRASE_SPLITS}
    for i, src in enumerate(corpus.sources):
        u = phrase_bucket(src, seed=seed)
        buckets["train" if u < cut1 else "val" if u < cut2 else "test"].append(i)
    train_targets = {corpus.targets[i].casefold() for i in buckets["train"]}
    out = {}
    for name, idx in buckets.items():
        removed = 0
        if name != "train":
            kept = [i for i in idx if corpus.targets[i].casefold() not in train_targets]
            removed, idx = len(idx) - len(kept), kept
        part = corpus.subset(idx)
        part.metadata.update(split=name, split_seed=seed)
        if name != "train":
            part.metadata["removed_target_overlap"] = removed
        out[name] = part
    return out


def check_no_leakage(
    train: Iterable[ParallelCorpus], held_out: Iterable[ParallelCorpus], *, same_pair_targets: bool = True
) -> None:
    """Raise if a held-out phrase occurs in training data.

    Checks that no source phrase of ``held_out`` occurs (case-folded) as a source of any ``train`` corpus, whatever
    its language, and (``same_pair_targets``) that no held-out target occurs among the training targets of the same
    language pair.

    Raises:
        LeakageError: With the number of leaked phrases and a few examples.
    """
    train = list(train)
    sources = {s.casefold() for c in train for s in c.sources}
    targets: dict[str, set[str]] = {}
    for c in train:
        targets.setdefault(c.name, set()).update(t.casefold() for t in c.targets)
    leaks: list[str] = []
    for c in held_out:
        for s, t in zip(c.sources, c.targets):
            if s.casefold() in sources:
                leaks.append(f"{c.name} source {s!r}")
            elif same_pair_targets and t.casefold() in targets.get(c.name, ()):
                leaks.append(f"{c.name} target {t!r}")
    if leaks:
        raise LeakageError(
            f"{len(leaks)} held-out phrases occur in training data, e.g. {'; '.join(leaks[:5])}. Split phrases with "
            f"split_phrases (by source phrase, one seed for all languages) instead of by position"
        )


@dataclass(frozen=True)
class LanguageSplit:
    """Which language pairs are meta-training tasks, validation tasks and unseen test tasks.

    Attributes:
        train: Meta-training target languages.
        val: Validation languages (choose fine-tuning settings; never used to train the initialisation).
        test: Unseen test languages.
        scripts: Script of every language above (ISO 15924).
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    scripts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.train or not self.test:
            raise ValueError("a language split needs at least one meta-training and one test language")
        groups = {"train": set(self.train), "val": set(self.val), "test": set(self.test)}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = groups[a] & groups[b]
            if both:
                raise ValueError(f"languages {sorted(both)} are both in {a} and {b}: each language belongs to one "
                                 f"split")
        missing = (groups["train"] | groups["val"] | groups["test"]) - set(self.scripts)
        if missing:
            raise ValueError(f"no script given for {sorted(missing)}; build splits with LanguageSplit.of(...)")

    @classmethod
    def of(cls, *, train: Sequence[str], val: Sequence[str] = (), test: Sequence[str],
           scripts: Mapping[str, str] | None = None) -> LanguageSplit:
        """An explicit split; codes are validated and their scripts looked up in CLDR (or taken from ``scripts``)."""
        given = dict(scripts or {})
        norm = {g: tuple(normalize_language(x) for x in group) for g, group in
                (("train", train), ("val", val), ("test", test))}
        all_scripts = {x: given.get(x) or language_script(x) for group in norm.values() for x in group}
        return cls(norm["train"], norm["val"], norm["test"], all_scripts)

    @property
    def seen_scripts(self) -> frozenset[str]:
        """Scripts of the meta-training languages."""
        return frozenset(self.scripts[x] for x in self.train)

    def unseen_script(self, lang: str) -> bool:
        """Whether ``lang`` is written in a script that no meta-training language uses."""
        return self.scripts[lang] not in self.seen_scripts

    def describe(self) -> str:
        """One line per split, with scripts; unseen scripts are starred."""
        def fmt(langs: Sequence[str]) -> str:
            return ", ".join(f"{x} ({self.scripts[x]}{'*' if self.unseen_script(x) else ''})" for x in langs)
        return f"meta-train: {fmt(self.train)}\nvalidation: {fmt(self.val)}\ntest: {fmt(self.test)}  (* unseen script)"


def split_languages(
    languages: Sequence[str],
    *,
    n_val: int = 2,
    n_test: int = 4,
    holdout_scripts: Sequence[str] | None = None,
    n_unseen_script: int | None = None,
    seed: int = 0,
) -> LanguageSplit:
    """Split languages into meta-train / val / test so that the test languages cover seen and unseen scripts.

    Every language written in a held-out script is kept out of meta-training and validation: up to
    ``n_unseen_script`` of them are test languages and the others are left out. The rest of the test languages (and
    the validation languages) are drawn from scripts that keep at least one meta-training language.

    Args:
        languages: Candidate language codes.
        n_val: Number of validation languages.
        n_test: Number of test languages.
        holdout_scripts: Scripts never seen in meta-training; by default one non-Latin script drawn at random.
        n_unseen_script: Test languages in held-out scripts (default: half of ``n_test``, at least 1).
        seed: Seed of the draw.

    Returns:
        The split.

    Raises:
        EpisodeError: Too few languages for the numbers asked, or a held-out script no language uses.
    """
    langs = sorted({normalize_language(x) for x in languages})
    scripts = {x: language_script(x) for x in langs}
    rng = random.Random(seed)
    by_script: dict[str, list[str]] = {}
    for x in langs:
        by_script.setdefault(scripts[x], []).append(x)
    if holdout_scripts is None:
        choices = sorted(s for s in by_script if s != "Latn")
        if not choices:
            raise EpisodeError("every language is in the Latin script: name holdout_scripts explicitly or add others")
        holdout_scripts = [rng.choice(choices)]
    unknown = [s for s in holdout_scripts if s not in by_script]
    if unknown:
        raise EpisodeError(f"no candidate language is written in {unknown}; scripts present: {sorted(by_script)}")
    n_unseen = max(1, n_test // 2) if n_unseen_script is None else n_unseen_script
    held = [x for s in holdout_scripts for x in by_script[s]]
    rng.shuffle(held)
    unseen_test, left_out = held[:n_unseen], held[n_unseen:]
    if left_out:
        log.info("languages of held-out scripts not used as test tasks (left out): %s", ", ".join(left_out))
    rest = [x for x in langs if x not in held]
    rng.shuffle(rest)
    n_seen = n_test - len(unseen_test)
    if len(rest) < n_seen + n_val + 1:
        raise EpisodeError(
            f"{len(rest)} languages outside the held-out scripts cannot give {n_seen} seen-script test, {n_val} "
            f"validation and at least 1 meta-training language: pass more languages or ask for fewer"
        )
    picked: list[str] = []
    counts = {s: len(v) for s, v in by_script.items()}
    for x in rest:  # a seen-script test or val language needs another language of its script left in meta-training
        if len(picked) < n_seen + n_val and counts[scripts[x]] >= 2:
            picked.append(x)
            counts[scripts[x]] -= 1
    if len(picked) < n_seen + n_val:
        raise EpisodeError("too few languages share a script to pick seen-script test and validation languages")
    seen_test, val = picked[:n_seen], picked[n_seen:]
    train = [x for x in rest if x not in picked]
    return LanguageSplit(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(seen_test + unseen_test)), scripts)


@dataclass
class TransferSplit:
    """Everything a transfer experiment reads: the language split and each language's phrase splits.

    Attributes:
        languages: The language split.
        phrases: ``phrases[lang]["train" | "val" | "test"]``: the phrase splits of each language pair.
    """

    languages: LanguageSplit
    phrases: dict[str, dict[str, ParallelCorpus]]

    def meta_train(self) -> dict[str, ParallelCorpus]:
        """The training phrases of the meta-training languages: all that initialisations may learn from."""
        return {x: self.phrases[x]["train"] for x in self.languages.train}

    def support_pool(self, lang: str) -> ParallelCorpus:
        """Where the K adaptation pairs of a validation or test language are drawn from (its train phrases)."""
        return self.phrases[lang]["train"]

    def evaluation(self, lang: str) -> ParallelCorpus:
        """What a validation language is scored on (its val phrases) or a test language (its test phrases)."""
        return self.phrases[lang]["test" if lang in self.languages.test else "val"]

    def check(self) -> None:
        """Verify the guarantees: no evaluation phrase in meta-training (any language) or in its own support pool.

        Raises:
            LeakageError: If one is broken.
        """
        evaluation = [self.evaluation(x) for x in self.languages.val + self.languages.test]
        check_no_leakage(self.meta_train().values(), evaluation, same_pair_targets=False)
        for x in self.languages.val + self.languages.test:
            check_no_leakage([self.support_pool(x)], [self.evaluation(x)])


def build_transfer_split(
    corpora: Mapping[str, ParallelCorpus],
    languages: LanguageSplit,
    *,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> TransferSplit:
    """Split every pair's phrases with one seed, and check the result for leakage.

    Args:
        corpora: English → X corpora keyed by X, covering every language of ``languages``.
        languages: The language split.
        fractions: Train / val / test shares of phrases.
        seed: Salt of the phrase hash.

    Raises:
        EpisodeError: A language of the split has no corpus.
        LeakageError: Should a guarantee fail (it cannot with this construction; the check guards future changes).
    """
    needed = languages.train + languages.val + languages.test
    missing = [x for x in needed if x not in corpora]
    if missing:
        raise EpisodeError(f"no corpus for languages {missing}; load them with load_corpora({list(needed)})")
    split = TransferSplit(languages, {x: split_phrases(corpora[x], fractions=fractions, seed=seed) for x in needed})
    split.check()
    return split


def sample_pairs(corpus: ParallelCorpus, k: int, *, generator: torch.Generator) -> ParallelCorpus:
    """``k`` distinct pairs drawn at random (the K-shot adaptation set).

    Raises:
        EpisodeError: The corpus has fewer than ``k`` pairs.
    """
    if k < 1 or k > len(corpus):
        raise EpisodeError(f"cannot draw {k} pairs from {corpus.name}, which has {len(corpus)}; use 1 <= K <= "
                           f"{len(corpus)}")
    idx = torch.randperm(len(corpus), generator=generator)[:k].tolist()
    return corpus.subset(idx)

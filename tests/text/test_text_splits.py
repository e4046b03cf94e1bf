"""Language and phrase splits: determinism, coverage of seen and unseen scripts, and no leakage."""

from __future__ import annotations

import pytest
import torch

from metaxfer.errors import EpisodeError
from metaxfer.text.corpora import ParallelCorpus, load_corpora
from metaxfer.text.splits import (
    LanguageSplit,
    LeakageError,
    build_transfer_split,
    check_no_leakage,
    phrase_bucket,
    sample_pairs,
    split_languages,
    split_phrases,
)

pytest.importorskip("babel")


def _corpus(lang: str, pairs: list[tuple[str, str]]) -> ParallelCorpus:
    return ParallelCorpus("en", lang, [s for s, _ in pairs], [t for _, t in pairs], [str(i) for i in range(len(pairs))])


@pytest.fixture(scope="module")
def corpora() -> dict[str, ParallelCorpus]:
    return load_corpora(["fr", "es", "ru", "de", "hy", "nb"])


def test_phrase_bucket_is_stable_case_insensitive_and_seeded() -> None:
    assert phrase_bucket("Germany") == phrase_bucket("GERMANY")
    assert phrase_bucket("Germany", seed=1) != phrase_bucket("Germany", seed=0)
    assert 0.0 <= phrase_bucket("x") < 1.0
    # blake2b of "0\x00germany": the same on every machine, so splits are reproducible anywhere
    assert phrase_bucket("Germany") == pytest.approx(0.9983233976373544, abs=1e-15)
    values = [phrase_bucket(f"phrase {i}") for i in range(4000)]
    assert abs(sum(v < 0.7 for v in values) / 4000 - 0.7) < 0.03


def test_split_phrases_fractions_and_same_phrase_same_split_in_every_language(corpora) -> None:
    fr = split_phrases(corpora["fr"], seed=3)
    ru = split_phrases(corpora["ru"], seed=3)
    n = sum(len(v) for v in fr.values())
    assert abs(len(fr["train"]) / len(corpora["fr"]) - 0.7) < 0.05
    assert n <= len(corpora["fr"])
    fr_where = {s: name for name, c in fr.items() for s in c.sources}
    ru_where = {s: name for name, c in ru.items() for s in c.sources}
    common = set(fr_where) & set(ru_where)
    assert len(common) > 1000
    assert all(fr_where[s] == ru_where[s] for s in common)
    assert fr["test"].metadata["split"] == "test" and fr["test"].metadata["split_seed"] == 3


def test_split_phrases_removes_held_out_targets_that_are_training_targets() -> None:
    pairs = [(f"w{i}", f"t{i}") for i in range(200)] + [(f"alias {i}", f"t{i}") for i in range(200)]
    parts = split_phrases(_corpus("de", pairs), seed=0)
    train_targets = set(parts["train"].targets)
    assert not train_targets & set(parts["test"].targets)
    assert not train_targets & set(parts["val"].targets)
    assert parts["test"].metadata["removed_target_overlap"] > 0
    check_no_leakage([parts["train"]], [parts["val"], parts["test"]])


def test_split_phrases_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        split_phrases(_corpus("de", [("a", "b")]), fractions=(0.5, 0.5, 0.5))


def test_check_no_leakage_catches_sources_across_languages_and_targets_within_a_pair() -> None:
    train = [_corpus("fr", [("house", "maison"), ("dog", "chien")])]
    with pytest.raises(LeakageError, match="1 held-out phrases occur in training data, e.g. en-de source 'House'"):
        check_no_leakage(train, [_corpus("de", [("House", "Haus"), ("cat", "Katze")])])
    with pytest.raises(LeakageError, match="en-fr target 'chien'"):
        check_no_leakage(train, [_corpus("fr", [("hound", "chien")])])
    check_no_leakage(train, [_corpus("de", [("cat", "chien")])])  # a target of another pair is no leak


def test_language_split_of_validates_and_reports_scripts() -> None:
    split = LanguageSplit.of(train=["fr", "ru"], val=["es"], test=["de", "hy"])
    assert split.scripts["hy"] == "Armn" and split.seen_scripts == {"Latn", "Cyrl"}
    assert split.unseen_script("hy") and not split.unseen_script("de")
    assert "hy (Armn*)" in split.describe()
    with pytest.raises(ValueError, match=r"languages \['fr'\] are both in train and test"):
        LanguageSplit.of(train=["fr", "ru"], test=["fr"])
    with pytest.raises(ValueError, match="at least one meta-training and one test language"):
        LanguageSplit.of(train=[], test=["fr"])


def test_split_languages_covers_seen_and_unseen_scripts() -> None:
    langs = ["fr", "es", "it", "pt", "de", "nl", "sv", "ru", "uk", "bg", "hy", "ka", "el", "he"]
    for seed in range(5):
        split = split_languages(langs, n_val=2, n_test=4, seed=seed)
        assert len(split.test) == 4 and len(split.val) == 2
        unseen = [x for x in split.test if split.unseen_script(x)]
        seen = [x for x in split.test if not split.unseen_script(x)]
        assert unseen and seen
        assert all(not split.unseen_script(x) for x in split.val)
        assert set(split.train) | set(split.val) | set(split.test) <= set(langs)
    fixed = split_languages(langs, holdout_scripts=["Armn", "Geor"], n_test=4, seed=0)
    assert {"hy", "ka"} <= set(fixed.test) and fixed.unseen_script("hy") and fixed.unseen_script("ka")
    assert split_languages(langs, seed=7) == split_languages(langs, seed=7)


def test_split_languages_errors() -> None:
    with pytest.raises(EpisodeError, match="no candidate language is written in"):
        split_languages(["fr", "de", "ru", "es"], holdout_scripts=["Thai"])
    with pytest.raises(EpisodeError, match="cannot give"):
        split_languages(["fr", "de", "hy"], n_val=2, n_test=3, holdout_scripts=["Armn"])
    with pytest.raises(EpisodeError, match="every language is in the Latin script"):
        split_languages(["fr", "de", "es"])


def test_transfer_split_has_no_leakage_from_test_phrases_into_meta_training(corpora) -> None:
    languages = LanguageSplit.of(train=["fr", "es", "ru"], val=["nb"], test=["de", "hy"])
    split = build_transfer_split(corpora, languages, seed=0)
    meta_sources = {s.casefold() for c in split.meta_train().values() for s in c.sources}
    for lang in ("de", "hy", "nb"):
        held = split.evaluation(lang)
        assert len(held) > 100
        assert not meta_sources & {s.casefold() for s in held.sources}
        assert not {t.casefold() for t in split.support_pool(lang).targets} & {t.casefold() for t in held.targets}
    assert split.evaluation("de").metadata["split"] == "test"
    assert split.evaluation("nb").metadata["split"] == "val"
    # the support pool of an unseen pair may share English phrases with meta-training (that is allowed)
    assert meta_sources & {s.casefold() for s in split.support_pool("de").sources}


def test_transfer_split_check_catches_a_leak_built_by_hand(corpora) -> None:
    languages = LanguageSplit.of(train=["fr"], test=["de"])
    split = build_transfer_split(corpora, languages, seed=0)
    de_test = split.phrases["de"]["test"]
    leaked = split.phrases["fr"]["train"]
    split.phrases["fr"]["train"] = ParallelCorpus("en", "fr", leaked.sources + de_test.sources[:1],
                                                  leaked.targets + ["x"], leaked.keys + ["leak"])
    with pytest.raises(LeakageError):
        split.check()


def test_build_transfer_split_needs_every_corpus(corpora) -> None:
    languages = LanguageSplit.of(train=["fr"], test=["it"])
    with pytest.raises(EpisodeError, match=r"no corpus for languages \['it'\]"):
        build_transfer_split(corpora, languages)


def test_sample_pairs_is_seeded_and_distinct(corpora) -> None:
    a = sample_pairs(corpora["de"], 16, generator=torch.Generator().manual_seed(1))
    b = sample_pairs(corpora["de"], 16, generator=torch.Generator().manual_seed(1))
    c = sample_pairs(corpora["de"], 16, generator=torch.Generator().manual_seed(2))
    assert a.pairs() == b.pairs() and a.pairs() != c.pairs()
    assert len(set(a.keys)) == 16
    with pytest.raises(EpisodeError, match="cannot draw 5 pairs from en-x, which has 2"):
        sample_pairs(_corpus("x", [("a", "b"), ("c", "d")]), 5, generator=torch.Generator())

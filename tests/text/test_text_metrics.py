"""chrF / BLEU (checked against sacrebleu called directly), exact match, and intervals (against scipy)."""

from __future__ import annotations

import math

import pytest

from metaxfer.errors import UnknownNameError
from metaxfer.text.metrics import (
    TEXT_METRICS,
    bleu,
    bleu_tokenizer,
    chrf,
    exact_match,
    mean_ci,
    paired_difference,
    score_all,
    t_quantile_975,
)

sacrebleu = pytest.importorskip("sacrebleu")

HYPS = ["the cat sat on the mat", "Deutschland", "rote Beete", "Vereinigte Staaten von Amerika"]
REFS = ["the cat sat on a mat", "Deutschland", "Rote Bete", "Vereinigte Staaten"]


def test_chrf_and_bleu_are_sacrebleu_corpus_scores() -> None:
    assert chrf(HYPS, REFS) == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert bleu(HYPS, REFS, "de") == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="13a").score)
    assert chrf(REFS, REFS) == pytest.approx(100.0)
    assert bleu(REFS, REFS) == pytest.approx(100.0)
    assert 0.0 < chrf(HYPS, REFS) < 100.0


def test_bleu_uses_character_tokens_for_scripts_without_spaces() -> None:
    assert bleu_tokenizer("ja") == "char" and bleu_tokenizer("zh_Hant") == "zh" and bleu_tokenizer("de") == "13a"
    hyp, ref = ["東京タワーです"], ["東京タワーだ"]
    assert bleu(hyp, ref, "ja") == pytest.approx(sacrebleu.corpus_bleu(hyp, [ref], tokenize="char").score)
    assert bleu(hyp, ref, "ja") > 0.0 == bleu(hyp, ref, "de")  # one "word" each: 13a sees no overlap


def test_exact_match_normalises_unicode_and_whitespace_but_not_case() -> None:
    assert exact_match(["Cafe\u0301 ", "x", "Haus"], ["Café", "y", "haus"]) == pytest.approx(100 / 3)


def test_metric_errors_and_registry() -> None:
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        chrf(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no references"):
        exact_match([], [])
    assert set(TEXT_METRICS.names()) == {"bleu", "chrf", "exact"}
    scores = score_all(HYPS, REFS, "de")
    assert scores == {"chrf": chrf(HYPS, REFS), "bleu": bleu(HYPS, REFS, "de"), "exact": 25.0}
    with pytest.raises(UnknownNameError, match="Valid text metric names: bleu, chrf, exact"):
        score_all(HYPS, REFS, metrics=("ter",))


def test_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in [1, 2, 5, 9, 29, 30, 35, 45, 70, 150, 400, 999, 5000]:
        assert t_quantile_975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=2e-3)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_mean_ci_and_paired_difference() -> None:
    xs = [10.0, 12.0, 14.0, 16.0]
    ci = mean_ci(xs)
    sd = math.sqrt(sum((x - 13.0) ** 2 for x in xs) / 3)
    assert ci.mean == 13.0 and ci.n == 4
    assert ci.half_width == pytest.approx(3.1824 * sd / 2)
    assert ci.low < 13.0 < ci.high and str(ci) == f"13.0 ± {ci.half_width:.1f}"
    single = mean_ci([5.0])
    assert math.isnan(single.half_width) and str(single) == "5.0"
    # a constant improvement on every pair has a zero-width paired interval, though each method's own is wide
    a, b = [30.0, 50.0, 70.0], [20.0, 40.0, 60.0]
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(10.0) and diff.half_width == pytest.approx(0.0)
    assert mean_ci(a).half_width > 40
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])

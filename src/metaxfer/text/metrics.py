"""Translation scores (chrF and BLEU with :mod:`sacrebleu`, exact match) and their mean over language pairs with a
95 % confidence interval.

Scores are corpus-level per language pair (what sacrebleu reports), on a 0-100 scale. Across pairs, the mean comes
with a Student-t interval: ``mean ± t(0.975, n-1) · sd / sqrt(n)``. Comparing two methods on the same pairs, use
:func:`paired_difference`: the interval of the per-pair differences is much tighter than the two separate intervals.

BLEU needs word boundaries: languages written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Burmese, Tibetan)
are scored on characters (sacrebleu's ``zh`` and ``char`` tokenizers), the others with ``13a``.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metaxfer.errors import MissingDependencyError
from metaxfer.registry import Registry

__all__ = [
    "TEXT_METRICS",
    "chrf",
    "bleu",
    "exact_match",
    "score_all",
    "bleu_tokenizer",
    "MeanCI",
    "mean_ci",
    "paired_difference",
    "t_quantile_975",
]

#: name → ``fn(hypotheses, references, lang) -> float`` on a 0-100 scale.
TEXT_METRICS: Registry[Callable[[Sequence[str], Sequence[str], str | None], float]] = Registry("text metric")

_NO_SPACE_LANGS = {"zh": "zh", "yue": "zh", "ja": "char", "th": "char", "lo": "char", "km": "char", "my": "char",
                   "bo": "char", "dz": "char"}


def _sacrebleu():  # noqa: ANN202 - a module
    try:
        import sacrebleu
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MissingDependencyError("chrF and BLEU are computed with sacrebleu: `pip install sacrebleu`") from exc
    return sacrebleu


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references: give one per reference")
    if not references:
        raise ValueError("no references to score against")


def bleu_tokenizer(lang: str | None) -> str:
    """The sacrebleu tokenizer used for BLEU in ``lang`` (``13a``, or ``zh`` / ``char`` for scripts without spaces)."""
    if lang is None:
        return "13a"
    return _NO_SPACE_LANGS.get(lang.split("_")[0], "13a")


def chrf(hypotheses: Sequence[str], references: Sequence[str], lang: str | None = None) -> float:
    """Corpus chrF (character 6-grams, β = 2) with sacrebleu's defaults, 0-100."""
    _check(hypotheses, references)
    return float(_sacrebleu().corpus_chrf(list(hypotheses), [list(references)]).score)


def bleu(hypotheses: Sequence[str], references: Sequence[str], lang: str | None = None) -> float:
    """Corpus BLEU (4-grams, brevity penalty) with sacrebleu and the tokenizer of :func:`bleu_tokenizer`, 0-100.

    Short phrases have few 4-grams, so BLEU of one- or two-word phrases is often 0 unless they match exactly;
    chrF is the more informative score here.
    """
    _check(hypotheses, references)
    return float(_sacrebleu().corpus_bleu(list(hypotheses), [list(references)], tokenize=bleu_tokenizer(lang)).score)


def exact_match(hypotheses: Sequence[str], references: Sequence[str], lang: str | None = None) -> float:
    """Percentage of hypotheses equal to their reference after NFC normalisation and stripping (case-sensitive)."""
    _check(hypotheses, references)
    same = sum(unicodedata.normalize("NFC", h).strip() == unicodedata.normalize("NFC", r).strip()
               for h, r in zip(hypotheses, references))
    return 100.0 * same / len(references)


TEXT_METRICS.register("chrf", chrf)
TEXT_METRICS.register("bleu", bleu)
TEXT_METRICS.register("exact", exact_match)


def score_all(hypotheses: Sequence[str], references: Sequence[str], lang: str | None = None,
              *, metrics: Sequence[str] = ("chrf", "bleu", "exact")) -> dict[str, float]:
    """Several registered metrics at once: ``{"chrf": ..., "bleu": ..., "exact": ...}``."""
    return {name: TEXT_METRICS.get(name)(hypotheses, references, lang) for name in metrics}


# ----------------------------------------------------------------------------------------------- intervals
# Two-sided 95 % Student-t quantiles t(0.975, df); in between, interpolated linearly in 1/df (error < 1e-3).
_T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060, 9: 2.2622,
         10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199, 17: 2.1098, 18: 2.1009,
         19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739, 23: 2.0687, 24: 2.0639, 25: 2.0595, 26: 2.0555, 27: 2.0518,
         28: 2.0484, 29: 2.0452, 30: 2.0423, 40: 2.0211, 50: 2.0086, 60: 2.0003, 80: 1.9901, 100: 1.9840,
         120: 1.9799, 200: 1.9719, 500: 1.9647, 1000: 1.9623}
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (the half-width factor of a 95 % interval)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df in _T975:
        return _T975[df]
    keys = sorted(_T975)
    if df > keys[-1]:
        lo_df, lo_t, hi_inv, hi_t = keys[-1], _T975[keys[-1]], 0.0, _Z975
    else:
        hi = next(k for k in keys if k > df)
        lo = max(k for k in keys if k < df)
        lo_df, lo_t, hi_inv, hi_t = lo, _T975[lo], 1.0 / hi, _T975[hi]
    w = (1.0 / df - hi_inv) / (1.0 / lo_df - hi_inv)
    return hi_t + w * (lo_t - hi_t)


@dataclass(frozen=True)
class MeanCI:
    """A mean with its 95 % confidence half-width.

    Attributes:
        mean: The mean.
        half_width: Half-width of the interval (``nan`` with one value).
        n: Number of values.
    """

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.half_width:.1f}" if self.n > 1 else f"{self.mean:.1f}"


def mean_ci(values: Sequence[float]) -> MeanCI:
    """Mean of ``values`` with a two-sided 95 % Student-t interval.

    Raises:
        ValueError: ``values`` is empty or holds a NaN.
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("cannot average an empty list of scores")
    if any(math.isnan(x) for x in xs):
        raise ValueError(f"scores hold NaN: {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return MeanCI(mean, float("nan"), 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return MeanCI(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> MeanCI:
    """Mean and 95 % interval of ``a[i] - b[i]`` (two methods scored on the same pairs).

    Raises:
        ValueError: Lengths differ or are zero.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    return mean_ci([x - y for x, y in zip(a, b)])

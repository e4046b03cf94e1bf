"""Few-shot evaluation on fixed episodes: mean accuracy with a 95% confidence interval, seeds and episodes recorded.

The interval is the normal approximation used throughout the few-shot literature, ``z · s / √n`` with ``s`` the
sample standard deviation of the per-episode accuracies and ``z`` ≈ 1.96; with the customary 600 episodes the
Student-t quantile differs from z by 0.2%.

Example:
    >>> episodes = EpisodeSampler(domain, ways=5, shots=1, queries=15, classes=split.test).fixed(600, seed=0)
    >>> result = evaluate(algorithm, episodes)
    >>> print(result)             # e.g. "97.41 ± 0.35 % over 600 episodes (seed 0, episodes 3f2a9c0d1e4b5a67)"
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch.nn.functional as F

from metaxfer.data.episodes import Episode, EpisodeSet
from metaxfer.errors import EpisodeError
from metaxfer.meta.base import MetaAlgorithm

__all__ = ["EvaluationResult", "confidence_interval", "evaluate"]


def confidence_interval(values: Sequence[float], *, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation confidence interval.

    Args:
        values: Per-episode measurements (at least one).
        confidence: Coverage, in (0, 1).

    Returns:
        ``(mean, z · std / √n)``; the half-width is 0 for a single value.

    Raises:
        ValueError: No values, or ``confidence`` outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(values)
    if n == 0:
        raise ValueError("cannot compute a confidence interval of no values")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    return mean, z * statistics.stdev(values) / math.sqrt(n)


@dataclass
class EvaluationResult:
    """Accuracy of an algorithm on a set of episodes.

    Attributes:
        accuracy: Mean per-episode query accuracy, in [0, 1].
        ci: Half-width of the confidence interval of the mean (same units).
        confidence: Coverage of ``ci`` (0.95).
        std: Sample standard deviation of the per-episode accuracies.
        loss: Mean per-episode query cross-entropy.
        episodes: Number of episodes.
        accuracies: Every episode's accuracy, in order.
        seed: Seed of the fixed episode set, when known.
        fingerprint: :meth:`EpisodeSet.fingerprint` of the episodes, when known.
        ways, shots, queries: The episodes' shape.
    """

    accuracy: float
    ci: float
    confidence: float
    std: float
    loss: float
    episodes: int
    accuracies: list[float] = field(repr=False)
    seed: int | None = None
    fingerprint: str | None = None
    ways: int = 0
    shots: int = 0
    queries: int = 0

    def __str__(self) -> str:
        where = ", ".join(
            s for s in (
                f"seed {self.seed}" if self.seed is not None else "",
                f"episodes {self.fingerprint}" if self.fingerprint else "",
            ) if s
        )
        return (
            f"{100 * self.accuracy:.2f} ± {100 * self.ci:.2f} % over {self.episodes} episodes"
            + (f" ({where})" if where else "")
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable), per-episode accuracies included."""
        return asdict(self)


def evaluate(
    algorithm: MetaAlgorithm,
    episodes: EpisodeSet | Iterable[Episode],
    *,
    batch_size: int = 16,
    confidence: float = 0.95,
) -> EvaluationResult:
    """Adapt to each episode's support set, score its queries, and summarise.

    The algorithm is put in evaluation mode for the call (this matters for ``"running"`` batch norm) and restored
    afterwards; its meta-parameters are not changed.

    Args:
        algorithm: The algorithm to test.
        episodes: A fixed :class:`~metaxfer.data.EpisodeSet` (its seed and fingerprint are recorded) or any
            iterable of episodes.
        batch_size: Episodes handed to :meth:`MetaAlgorithm.predict_batch` at once (batched algorithms embed them
            in one pass).
        confidence: Coverage of the interval.

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        EpisodeError: There are no episodes.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = algorithm.training
    algorithm.eval()
    accs: list[float] = []
    losses: list[float] = []
    shape = (0, 0, 0)
    try:
        chunk: list[Episode] = []

        def flush() -> None:
            for episode, logits in zip(chunk, algorithm.predict_batch(chunk)):
                y = episode.query_y.to(logits.device)
                accs.append(float((logits.argmax(-1) == y).float().mean()))
                losses.append(float(F.cross_entropy(logits.float(), y)))
            chunk.clear()

        for episode in episodes:
            shape = (episode.ways, episode.shots, episode.queries)
            chunk.append(episode)
            if len(chunk) == batch_size:
                flush()
        if chunk:
            flush()
    finally:
        algorithm.train(was_training)
    if not accs:
        raise EpisodeError("evaluate() got no episodes: pass an EpisodeSet or a non-empty list of episodes")
    mean, half = confidence_interval(accs, confidence=confidence)
    return EvaluationResult(
        accuracy=mean,
        ci=half,
        confidence=confidence,
        std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
        loss=math.fsum(losses) / len(losses),
        episodes=len(accs),
        accuracies=accs,
        seed=episodes.seed if isinstance(episodes, EpisodeSet) else None,
        fingerprint=episodes.fingerprint() if isinstance(episodes, EpisodeSet) else None,
        ways=shape[0],
        shots=shape[1],
        queries=shape[2],
    )

"""Evaluation on fixed episodes: mean ± confidence interval computed right, seeds and episodes recorded,
repeatable, and the model's mode restored."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.errors import EpisodeError
from metaxfer.meta import confidence_interval, create_algorithm, evaluate


def test_confidence_interval_values() -> None:
    values = [0.2, 0.4, 0.6, 0.8, 1.0]
    mean, half = confidence_interval(values)
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(1.959964 * statistics.stdev(values) / math.sqrt(5), rel=1e-6)
    _, half99 = confidence_interval(values, confidence=0.99)
    assert half99 == pytest.approx(2.575829 * statistics.stdev(values) / math.sqrt(5), rel=1e-6)
    assert confidence_interval([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="no values"):
        confidence_interval([])
    with pytest.raises(ValueError, match="confidence"):
        confidence_interval(values, confidence=95)


def test_evaluate_records_episodes_and_matches_per_episode_accuracy() -> None:
    domain = create_domain("synthetic", num_classes=10, per_class=10, size=16, seed=0)
    sampler = EpisodeSampler(domain, ways=5, shots=1, queries=3, seed=0)
    episodes = sampler.fixed(12, seed=7)
    torch.manual_seed(0)
    algo = create_algorithm("protonet", image_size=16, backbone_kwargs={"hidden": 8}, norm="running")
    algo.train()
    result = evaluate(algo, episodes, batch_size=5)
    assert algo.training  # mode restored
    assert result.episodes == 12 and result.seed == 7 and result.fingerprint == episodes.fingerprint()
    assert (result.ways, result.shots, result.queries) == (5, 1, 3)
    algo.eval()  # evaluate() predicts in evaluation mode (running batch-norm statistics)
    manual = [float((algo.predict(e).argmax(-1) == e.query_y).float().mean()) for e in episodes]
    assert result.accuracies == pytest.approx(manual, abs=1e-12)
    assert result.accuracy == pytest.approx(sum(manual) / 12)
    assert result.ci == pytest.approx(confidence_interval(manual)[1])
    assert f"{100 * result.accuracy:.2f} ± {100 * result.ci:.2f} %" in str(result)
    assert "seed 7" in str(result) and episodes.fingerprint() in str(result)
    json.dumps(result.to_dict())
    again = evaluate(algo, sampler.fixed(12, seed=7), batch_size=1)
    assert again.accuracies == pytest.approx(result.accuracies, abs=1e-12)
    plain = evaluate(algo, list(episodes)[:3])
    assert plain.seed is None and plain.fingerprint is None and plain.episodes == 3
    with pytest.raises(EpisodeError, match="no episodes"):
        evaluate(algo, [])

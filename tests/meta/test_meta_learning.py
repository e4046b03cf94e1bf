"""Every registered algorithm learns a small synthetic few-shot problem well above chance within a short budget, and
every meta-trained one ends clearly better than it started.

5-way 1-shot episodes of procedural blob classes (16×16 pixels): meta-training on 20 classes, evaluation on 30
fixed episodes of 20 other classes. Chance is 20%.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.meta import ALGORITHMS, create_algorithm, evaluate

#: name -> (outer steps of 4 tasks, algorithm options). A newly registered algorithm must be added here.
BUDGETS: dict[str, tuple[int, dict[str, Any]]] = {
    "maml": (30, {"inner_lr": 0.4, "outer_lr": 3e-3}),
    "fomaml": (40, {"inner_lr": 0.1, "inner_steps": 5, "outer_lr": 3e-3}),
    "metasgd": (30, {"inner_lr": 0.4, "outer_lr": 3e-3}),
    "anil": (30, {"inner_lr": 0.4, "outer_lr": 3e-3}),
    "reptile": (40, {"inner_lr": 0.02, "inner_steps": 5, "outer_lr": 1.0}),
    "metalstm": (25, {"outer_lr": 3e-3, "hidden": 8}),
    "protonet": (30, {"outer_lr": 3e-3}),
    "matchingnet": (30, {"outer_lr": 3e-3}),
    "metagan": (30, {"outer_lr": 3e-3}),
    "baseline": (30, {"num_classes": 40, "outer_lr": 1e-2}),
    "baseline++": (30, {"num_classes": 40, "outer_lr": 1e-2}),
    "scratch": (0, {"steps": 20, "lr": 1e-2}),
}

@pytest.fixture(scope="module")
def problem() -> tuple[EpisodeSampler, object]:
    domain = create_domain("synthetic", num_classes=40, per_class=20, size=16, jitter=0.12, seed=0)
    train = EpisodeSampler(domain, ways=5, shots=1, queries=5, classes=range(20), seed=0)
    test = EpisodeSampler(domain, ways=5, shots=1, queries=5, classes=range(20, 40)).fixed(30, seed=1)
    return train, test


def test_every_algorithm_has_a_budget() -> None:
    assert sorted(BUDGETS) == ALGORITHMS.names()


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_algorithm_learns_synthetic_task(name: str, problem) -> None:
    train, test = problem
    steps, options = BUDGETS[name]
    torch.manual_seed(0)
    algo = create_algorithm(name, ways=5, image_size=16, backbone_kwargs={"hidden": 16}, **options)
    before = evaluate(algo, test)
    if not algo.needs_meta_training:
        assert before.accuracy >= 0.40, f"{name}: {before}"
        return
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        metrics = algo.outer_step([train.sample(g) for _ in range(4)])
        assert all(v == v for v in metrics.values()), f"NaN in {metrics}"
    after = evaluate(algo, test)
    print(f"{name}: {before} -> {after}")
    assert after.accuracy >= 0.40, f"{name}: {before} -> {after}"
    assert after.accuracy >= before.accuracy + 0.05, f"{name} did not learn: {before} -> {after}"

"""A Reptile outer step moves the parameters by θ ← θ + ε · mean_t(φ_t − θ), φ_t being plain SGD on task t."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.meta import Reptile
from metaxfer.models import create_backbone


@pytest.mark.parametrize("backbone", ["mlp", "conv4"])
def test_reptile_step_follows_its_formula(backbone: str) -> None:
    domain = create_domain("synthetic", num_classes=6, per_class=5, size=16, seed=2)
    episodes = [EpisodeSampler(domain, ways=3, shots=2, queries=1, seed=s).sample() for s in range(3)]
    torch.manual_seed(0)
    kw = {"hidden": (12,)} if backbone == "mlp" else {"hidden": 4}
    net = create_backbone(backbone, image_size=16, num_classes=3, **kw).double()
    eps, lr, steps = 0.7, 0.2, 4
    algo = Reptile(net, inner_lr=lr, inner_steps=steps, outer_lr=eps)
    theta = {n: p.detach().clone() for n, p in net.named_parameters()}

    # Reference: a deep copy trained with torch.optim.SGD on each support set.
    phis = []
    for e in episodes:
        learner = copy.deepcopy(net)
        opt = torch.optim.SGD(learner.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(learner(e.support_x.double() / 255), e.support_y).backward()
            opt.step()
        phis.append({n: p.detach() for n, p in learner.named_parameters()})

    metrics = algo.outer_step(episodes)
    for n, p in net.named_parameters():
        mean_phi = torch.stack([phi[n] for phi in phis]).mean(0)
        expected = theta[n] + eps * (mean_phi - theta[n])
        assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-12), n
    assert metrics["distance"] > 0


def test_reptile_prediction_is_the_fine_tuned_network() -> None:
    domain = create_domain("synthetic", num_classes=6, per_class=5, size=16, seed=2)
    episode = EpisodeSampler(domain, ways=3, shots=2, queries=2, seed=0).sample()
    torch.manual_seed(0)
    net = create_backbone("mlp", image_size=16, hidden=(12,), num_classes=3).double()
    algo = Reptile(net, inner_lr=0.3, inner_steps=2, eval_inner_steps=6)
    learner = copy.deepcopy(net)
    opt = torch.optim.SGD(learner.parameters(), lr=0.3)
    for _ in range(6):
        opt.zero_grad()
        F.cross_entropy(learner(episode.support_x.double() / 255), episode.support_y).backward()
        opt.step()
    expected = learner(episode.query_x.double() / 255)
    assert torch.allclose(algo.predict(episode), expected.detach(), atol=1e-12)

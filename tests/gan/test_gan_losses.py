"""The GAN loss functions against values computed by hand from their definitions, and the objective registry."""

from __future__ import annotations

import math

import pytest
import torch

from metaxfer.errors import UnknownNameError
from metaxfer.gan import GAN_OBJECTIVES, create_objective, losses

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.fixture(params=[(2,), (2, 1, 1, 1)], ids=["scores", "patch-map"])
def scores(request: pytest.FixtureRequest) -> tuple[torch.Tensor, torch.Tensor]:
    shape = request.param
    return torch.tensor(REAL, dtype=torch.float64).view(shape), torch.tensor(FAKE, dtype=torch.float64).view(shape)


def test_minimax_family_matches_log_sigmoid_definitions(scores: tuple[torch.Tensor, torch.Tensor]) -> None:
    real, fake = scores
    d_expected = mean([-math.log(sigmoid(r)) for r in REAL]) + mean([-math.log(1 - sigmoid(f)) for f in FAKE])
    assert float(losses.minimax_d_loss(real, fake)) == pytest.approx(d_expected, rel=1e-12)
    g_minimax = mean([math.log(1 - sigmoid(f)) for f in FAKE])
    g_nonsaturating = mean([-math.log(sigmoid(f)) for f in FAKE])
    assert float(losses.minimax_g_loss(fake)) == pytest.approx(g_minimax, rel=1e-12)
    assert float(losses.nonsaturating_g_loss(fake)) == pytest.approx(g_nonsaturating, rel=1e-12)


def test_least_squares_hinge_wasserstein_hand_values(scores: tuple[torch.Tensor, torch.Tensor]) -> None:
    real, fake = scores
    # 0.5 * mean((2-1)^2, (-1-1)^2) + 0.5 * mean(0.5^2, 3^2) = 0.5 * 2.5 + 0.5 * 4.625
    assert float(losses.least_squares_d_loss(real, fake)) == pytest.approx(3.5625)
    assert float(losses.least_squares_g_loss(fake)) == pytest.approx(0.5 * mean([0.25, 16.0]))  # 4.0625
    # relu(1-2), relu(1+1) -> mean 1; relu(1+0.5), relu(1-3) -> mean 0.75
    assert float(losses.hinge_d_loss(real, fake)) == pytest.approx(1.75)
    assert float(losses.hinge_g_loss(fake)) == pytest.approx(1.25)
    assert float(losses.wasserstein_d_loss(real, fake)) == pytest.approx(-1.25 - 0.5)
    assert float(losses.wasserstein_g_loss(fake)) == pytest.approx(1.25)


def test_nonsaturating_loss_keeps_a_gradient_where_minimax_saturates() -> None:
    rejected = torch.tensor([-12.0], requires_grad=True)  # the discriminator is sure this sample is fake
    (g_minimax,) = torch.autograd.grad(losses.minimax_g_loss(rejected), rejected)
    (g_ns,) = torch.autograd.grad(losses.nonsaturating_g_loss(rejected), rejected)
    assert abs(float(g_minimax)) < 1e-4
    assert float(g_ns) == pytest.approx(-1.0, abs=1e-4)


def test_auxiliary_and_task_terms_are_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    z0 = math.exp(2) + 1 + math.exp(-1)
    z1 = 1 + math.e + 1
    expected = mean([-math.log(math.exp(2) / z0), -math.log(1 / z1)])
    assert float(losses.auxiliary_class_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)
    assert float(losses.task_consistency_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_cycle_and_identity_losses_are_mean_absolute_error() -> None:
    x = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])
    assert float(losses.cycle_consistency_loss(x, x)) == 0.0
    assert float(losses.identity_loss(x * 0.5, x)) == pytest.approx(mean([0.5, 0.5, 0.25, 0.0]))


def test_objective_registry() -> None:
    assert GAN_OBJECTIVES.names() == ["hinge", "least-squares", "minimax", "nonsaturating", "wgan-gp"]
    assert create_objective("wgan-gp").gradient_penalty == 10.0
    assert all(create_objective(n).gradient_penalty == 0.0 for n in GAN_OBJECTIVES if n != "wgan-gp")
    assert create_objective("nonsaturating").d_loss is losses.minimax_d_loss
    real, fake = torch.randn(5), torch.randn(5)
    for name in GAN_OBJECTIVES:
        obj = create_objective(name)
        assert obj.description
        assert torch.isfinite(obj.d_loss(real, fake)) and torch.isfinite(obj.g_loss(fake))


def test_unknown_objective_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="hinge") as info:
        create_objective("hinj")
    assert "Did you mean 'hinge'" in str(info.value)

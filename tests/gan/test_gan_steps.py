"""Discriminator/generator losses and steps: which parameters move, the terms they add, one generator pass."""

from __future__ import annotations

import pytest
import torch

from metaxfer.errors import MetaxferError
from metaxfer.gan import (
    EMA,
    DCGANDiscriminator,
    DCGANGenerator,
    create_objective,
    d_step,
    discriminator_loss,
    g_step,
    gan_step,
    generator_loss,
    r1_penalty,
)


SIZE = 16


def nets(*, num_classes: int = 0, conditioning: str | None = None, norm: str = "batch"):
    torch.manual_seed(0)
    g = DCGANGenerator(16, image_size=SIZE, width=8, num_classes=num_classes)
    d = DCGANDiscriminator(image_size=SIZE, width=8, num_classes=num_classes, conditioning=conditioning, norm=norm)
    return g, d


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(module.parameters(), before, strict=True))


def real_batch(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5)) * 2 - 1


def test_d_step_moves_only_the_discriminator() -> None:
    g, d = nets()
    opt = torch.optim.SGD(d.parameters(), lr=0.1)
    g0, d0 = snapshot(g), snapshot(d)
    metrics = d_step(g, d, real_batch(), optimizer=opt, objective=create_objective("nonsaturating"))
    assert set(metrics) == {"loss", "real_score", "fake_score"}
    assert all(isinstance(v, float) for v in metrics.values())
    assert moved(d, d0) and not moved(g, g0)
    assert all(p.grad is None for p in g.parameters())


def test_g_step_moves_only_the_generator_and_computes_no_discriminator_gradients() -> None:
    g, d = nets()
    opt = torch.optim.SGD(g.parameters(), lr=0.1)
    g0, d0 = snapshot(g), snapshot(d)
    ema = EMA(g, decay=0.5)
    metrics = g_step(g, d, optimizer=opt, objective=create_objective("hinge"), batch_size=5, ema=ema)
    assert set(metrics) == {"loss", "fake_score"}
    assert metrics["loss"] == pytest.approx(-metrics["fake_score"])  # hinge generator loss
    assert moved(g, g0) and not moved(d, d0)
    assert all(p.grad is None for p in d.parameters()) and all(p.requires_grad for p in d.parameters())
    assert ema.num_updates == 1


def test_discriminator_loss_equals_the_objective_on_given_fakes() -> None:
    g, d = nets(norm="none")
    d.eval()
    real, fake = real_batch(), real_batch().flip(-1)
    objective = create_objective("least-squares")
    loss, metrics = discriminator_loss(g, d, real, objective=objective, fake=fake, gp_weight=0.0)
    expected = objective.d_loss(d(real), d(fake))
    torch.testing.assert_close(loss, expected)
    assert metrics["real_score"] == pytest.approx(float(d(real).mean().detach()))


def test_wgan_gp_adds_the_default_penalty_and_refuses_batch_norm() -> None:
    g, d = nets(norm="layer")
    real, fake = real_batch(), real_batch().flip(-1)
    rng = torch.Generator().manual_seed(0)
    objective = create_objective("wgan-gp")
    loss, metrics = discriminator_loss(g, d, real, objective=objective, fake=fake, rng=rng)
    plain = objective.d_loss(d(real), d(fake))
    assert metrics["gp"] > 0
    assert float(loss.detach()) == pytest.approx(float(plain.detach()) + 10.0 * metrics["gp"], rel=1e-5)
    g_bn, d_bn = nets(norm="batch")
    with pytest.raises(MetaxferError, match="batch-norm discriminator"):
        discriminator_loss(g_bn, d_bn, real, objective=objective)


def test_r1_term_is_half_gamma_times_the_penalty() -> None:
    g, d = nets(norm="none")
    real, fake = real_batch(), real_batch().flip(-1)
    objective = create_objective("nonsaturating")
    loss, metrics = discriminator_loss(g, d, real, objective=objective, fake=fake, r1_gamma=4.0)
    x = real.clone().requires_grad_(True)
    r1 = r1_penalty(d(x), x)
    assert metrics["r1"] == pytest.approx(float(r1.detach()), rel=1e-5)
    base, _ = discriminator_loss(g, d, real, objective=objective, fake=fake)
    assert float(loss.detach()) == pytest.approx(float(base.detach()) + 2.0 * metrics["r1"], rel=1e-5)


def test_auxiliary_classifier_terms_on_both_sides() -> None:
    g, d = nets(num_classes=3, conditioning="auxiliary")
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    objective = create_objective("nonsaturating")
    _, d_metrics = discriminator_loss(g, d, real_batch(), labels, objective=objective)
    assert {"aux", "aux_acc"} <= set(d_metrics) and 0.0 <= d_metrics["aux_acc"] <= 1.0
    loss, g_metrics = generator_loss(g, d, labels, objective=objective)
    assert g_metrics["aux"] > 0 and loss.requires_grad
    _, no_aux = generator_loss(g, d, labels, objective=objective, aux_weight=0.0)
    assert "aux" not in no_aux


def test_projection_conditional_generator_draws_labels_when_none_given() -> None:
    g, d = nets(num_classes=3, conditioning="projection")
    loss, metrics = generator_loss(g, d, objective=create_objective("hinge"), batch_size=4)
    assert loss.shape == () and "aux" not in metrics
    with pytest.raises(ValueError, match="batch_size"):
        generator_loss(g, d, objective=create_objective("hinge"))


def test_gan_step_runs_the_generator_once_and_updates_both() -> None:
    g, d = nets(num_classes=3, conditioning="projection")
    calls = {"g": 0, "d": 0}
    g.register_forward_hook(lambda *a: calls.__setitem__("g", calls["g"] + 1))
    d.body.register_forward_hook(lambda *a: calls.__setitem__("d", calls["d"] + 1))
    opt_g = torch.optim.Adam(g.parameters(), 1e-3)
    opt_d = torch.optim.Adam(d.parameters(), 1e-3)
    g0, d0 = snapshot(g), snapshot(d)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    objective = create_objective("nonsaturating")
    metrics = gan_step(g, d, real_batch(), labels, g_optimizer=opt_g, d_optimizer=opt_d, objective=objective)
    assert calls == {"g": 1, "d": 3}  # one generator pass; D on real, detached fake, fake
    assert moved(g, g0) and moved(d, d0)
    assert {"d/loss", "d/real_score", "d/fake_score", "g/loss", "g/fake_score"} == set(metrics)

"""CycleGAN: cycle and identity terms by hand, CyCADA's task term, the step order, pools, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.errors import MetaxferError
from metaxfer.gan import (
    CycleGAN,
    ImagePool,
    create_objective,
    cyclegan_generator_loss,
    cyclegan_step,
    translation_grid,
)
from metaxfer.gan.utils import gan_to_uint8


LSGAN = create_objective("least-squares")


def tiny(channels_a: int = 1, channels_b: int = 1) -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(channels_a, channels_b, width=4, blocks=1, d_width=4, d_layers=2)


def images(n: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x


def test_cycle_and_identity_losses_are_zero_for_identity_generators() -> None:
    model = tiny()
    model.g_ab, model.g_ba = nn.Identity(), nn.Identity()
    _, metrics, fakes = cyclegan_generator_loss(model, images(3), images(3, seed=1), objective=LSGAN)
    assert metrics["cycle"] == 0.0 and metrics["identity"] == 0.0
    assert torch.equal(fakes.fake_b, images(3))


def test_cycle_loss_of_scaling_generators_by_hand() -> None:
    model = tiny()
    model.g_ab, model.g_ba = Scale(0.5), Scale(0.5)
    a, b = images(3), images(3, seed=1)
    _, metrics, _ = cyclegan_generator_loss(model, a, b, objective=LSGAN, identity_weight=0.0)
    # round trip gives 0.25 x: |0.25x - x| = 0.75 |x|, for both domains
    assert metrics["cycle"] == pytest.approx(0.75 * float(a.abs().mean() + b.abs().mean()), rel=1e-6)
    assert "identity" not in metrics


def frozen_classifier() -> nn.Module:
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 4))
    return net.requires_grad_(False).eval()


def test_task_consistency_term_matches_cross_entropy() -> None:
    model = tiny()
    f = frozen_classifier()
    a, b = images(5), images(5, seed=1)
    labels = torch.tensor([0, 1, 2, 3, 0])
    _, metrics, fakes = cyclegan_generator_loss(model, a, b, objective=LSGAN, task_classifier=f, labels_a=labels)
    expected = F.cross_entropy(f(fakes.fake_b), labels) + F.cross_entropy(f(fakes.fake_a), f(b).argmax(1))
    assert metrics["task"] == pytest.approx(float(expected), rel=1e-5)
    _, pseudo, _ = cyclegan_generator_loss(model, a, b, objective=LSGAN, task_classifier=f)  # labels from f(a)
    expected_pseudo = F.cross_entropy(f(fakes.fake_b), f(a).argmax(1)) + F.cross_entropy(
        f(fakes.fake_a), f(b).argmax(1)
    )
    assert pseudo["task"] == pytest.approx(float(expected_pseudo), rel=1e-5)


def test_task_term_reaches_the_translator() -> None:
    model = tiny()
    f = frozen_classifier()
    loss, _, _ = cyclegan_generator_loss(
        model, images(4), images(4, seed=1), objective=LSGAN, task_classifier=f, task_weight=1.0,
        labels_a=torch.tensor([0, 1, 2, 3]),
    )
    loss.backward()
    assert all(p.grad is None for p in f.parameters())
    assert float(model.g_ab.body[1].weight.grad.abs().sum()) > 0


def test_step_updates_translators_then_discriminators_through_the_pools() -> None:
    model = tiny()
    g_opt = torch.optim.Adam(model.generator_parameters(), 1e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(model.discriminator_parameters(), 1e-3, betas=(0.5, 0.999))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pools = (ImagePool(10), ImagePool(10))
    metrics = cyclegan_step(
        model, images(4), images(4, seed=1), g_optimizer=g_opt, d_optimizer=d_opt, objective=LSGAN, pools=pools
    )
    assert {"g/loss", "g/adv", "g/cycle", "g/identity", "d/loss", "d/loss_a", "d/loss_b"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"g_ab", "g_ba", "d_a", "d_b"}
    assert len(pools[0]) == 4 and len(pools[1]) == 4
    assert metrics["d/loss"] == pytest.approx(metrics["d/loss_a"] + metrics["d/loss_b"], rel=1e-6)


def test_a_few_steps_reduce_the_cycle_loss() -> None:
    model = tiny()
    g_opt = torch.optim.Adam(model.generator_parameters(), 2e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(model.discriminator_parameters(), 2e-3, betas=(0.5, 0.999))
    a, b = images(8), images(8, seed=1)
    first = cyclegan_step(model, a, b, g_optimizer=g_opt, d_optimizer=d_opt, objective=LSGAN)["g/cycle"]
    for _ in range(30):
        last = cyclegan_step(model, a, b, g_optimizer=g_opt, d_optimizer=d_opt, objective=LSGAN)["g/cycle"]
    assert last < 0.8 * first


def test_wgan_gp_works_with_instance_norm_discriminators() -> None:
    model = tiny()
    g_opt = torch.optim.SGD(model.generator_parameters(), 1e-3)
    d_opt = torch.optim.SGD(model.discriminator_parameters(), 1e-3)
    metrics = cyclegan_step(
        model, images(2), images(2, seed=1), g_optimizer=g_opt, d_optimizer=d_opt, objective=create_objective("wgan-gp")
    )
    assert metrics["d/gp"] >= 0


def test_errors_name_the_fix() -> None:
    grey_to_rgb = tiny(1, 3)
    a, b = images(2), images(2, channels=3)
    with pytest.raises(MetaxferError, match="identity_weight=0"):
        cyclegan_generator_loss(grey_to_rgb, a, b, objective=LSGAN)
    _, metrics, _ = cyclegan_generator_loss(grey_to_rgb, a, b, objective=LSGAN, identity_weight=0.0)
    assert "identity" not in metrics
    with pytest.raises(MetaxferError, match="ToChannels"):
        cyclegan_generator_loss(
            grey_to_rgb, a, b, objective=LSGAN, identity_weight=0.0, task_classifier=frozen_classifier()
        )
    trainable = nn.Sequential(nn.Flatten(), nn.Linear(256, 4))
    with pytest.raises(MetaxferError, match=r"requires_grad_\(False\)"):
        cyclegan_generator_loss(tiny(), images(2), images(2), objective=LSGAN, task_classifier=trainable)
    with pytest.raises(ValueError, match="'ab' or 'ba'"):
        tiny().translate(a, direction="xy")  # type: ignore[arg-type]


def test_translation_grid_has_a_row_per_stage() -> None:
    model = tiny(1, 3)
    real = gan_to_uint8(images(4))
    one_way = translation_grid(model.g_ab, real, scale=1)
    round_trip = translation_grid(model.g_ab, real, back=model.g_ba, title="A to B", scale=1)
    assert round_trip.height > one_way.height and round_trip.width == one_way.width
    assert model.g_ab.training  # mode restored

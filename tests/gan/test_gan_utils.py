"""The shared GAN helpers: gradient penalty, R1, image pool, weight init, spectral norm, EMA, conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metaxfer.data.transforms import to_float
from metaxfer.errors import DataFormatError, MetaxferError
from metaxfer.gan import (
    EMA,
    ImagePool,
    apply_spectral_norm,
    gan_to_uint8,
    gradient_penalty,
    init_weights,
    r1_penalty,
    uint8_to_gan,
)
from metaxfer.gan.utils import check_gradient_penalty, frozen_parameters, randn, to_floats


def linear_critic(weight: torch.Tensor, bias: float = 0.3):
    return lambda x: x.flatten(1) @ weight + bias


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3 * 8 * 8, generator=g, dtype=torch.float64)
    w /= w.norm()
    real = torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64)
    assert float(gradient_penalty(linear_critic(w), real, fake, generator=g)) < 1e-10


def test_gradient_penalty_of_a_linear_critic_is_the_squared_norm_gap_and_back_propagates() -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(2 * 4 * 4, generator=g, dtype=torch.float64)
    w = (3.0 * w / w.norm()).requires_grad_(True)
    real, fake = torch.randn(2, 8, 2, 4, 4, generator=g, dtype=torch.float64)
    gp = gradient_penalty(linear_critic(w), real, fake, generator=g)
    assert float(gp.detach()) == pytest.approx((3.0 - 1.0) ** 2, rel=1e-9)
    (grad,) = torch.autograd.grad(gp, w)  # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    torch.testing.assert_close(grad, 2 * (3.0 - 1.0) * w.detach() / 3.0)


def test_gradient_penalty_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda x: x.sum((1, 2, 3)), torch.zeros(4, 1, 2, 2), torch.zeros(3, 1, 2, 2))


def test_r1_of_a_linear_critic_is_the_squared_weight_norm() -> None:
    w = torch.tensor([3.0, -4.0, 0.0, 1.0], dtype=torch.float64)
    x = torch.randn(5, 1, 2, 2, dtype=torch.float64).requires_grad_(True)
    assert float(r1_penalty(linear_critic(w)(x), x)) == pytest.approx(26.0)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(linear_critic(w)(x.detach()), x.detach())


def test_batch_norm_critic_is_refused_for_a_penalty() -> None:
    d = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    check_gradient_penalty(d, 0.0)
    with pytest.raises(MetaxferError, match="norm='layer'"):
        check_gradient_penalty(d, 10.0)


def batch(value: float, n: int = 4) -> torch.Tensor:
    return torch.full((n, 1, 2, 2), value)


def test_image_pool_fills_then_mixes_history() -> None:
    pool = ImagePool(6, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    torch.testing.assert_close(pool.query(first), first)  # still filling: returned unchanged
    assert len(pool) == 4
    second = batch(10.0)
    out = pool.query(second)
    assert len(pool) == 6
    torch.testing.assert_close(out[:2], second[:2])  # the first two filled the pool
    returned = []
    for k in range(200):
        returned.append(pool.query(batch(100.0 + k, 1))[0, 0, 0, 0].item())
    from_history = sum(v != 100.0 + k for k, v in enumerate(returned))
    assert 70 < from_history < 130  # swapped with probability 1/2


def test_image_pool_size_zero_and_shape_errors() -> None:
    x = torch.randn(3, 1, 2, 2)
    assert torch.equal(ImagePool(0).query(x), x)
    pool = ImagePool(4)
    pool.query(x)
    with pytest.raises(ValueError, match="one pool per domain"):
        pool.query(torch.randn(3, 3, 2, 2))
    with pytest.raises(ValueError, match=">= 0"):
        ImagePool(-1)


def test_image_pool_state_round_trip_continues_identically() -> None:
    pool = ImagePool(5, seed=3)
    for k in range(4):
        pool.query(torch.randn(3, 1, 2, 2))
    state = pool.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    twin = ImagePool(5, seed=99)
    twin.load_state_dict(state)
    nxt = torch.randn(3, 1, 2, 2)
    torch.testing.assert_close(pool.query(nxt), twin.query(nxt))


def test_init_weights_dcgan_statistics_and_spectral_norm_originals() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.Linear(64, 64))
    init_weights(net, scheme="dcgan")
    assert float(net[0].weight.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert float(net[1].weight.detach().mean()) == pytest.approx(1.0, abs=0.01)
    assert float(net[0].bias.detach().abs().max()) == 0.0 and float(net[1].bias.detach().abs().max()) == 0.0
    apply_spectral_norm(net)
    init_weights(net, scheme="normal", gain=0.5)
    assert float(net[2].parametrizations.weight.original.detach().std()) == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_weights(net, scheme="he")  # type: ignore[arg-type]


def test_spectral_norm_bounds_the_largest_singular_value() -> None:
    torch.manual_seed(0)
    layer = apply_spectral_norm(nn.Sequential(nn.Linear(20, 30)))[0]
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(7.0)
    for _ in range(30):  # power iterations run in training forwards
        layer(torch.randn(2, 20))
    assert float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2)) == pytest.approx(1.0, abs=1e-3)
    assert all(isinstance(v, torch.Tensor) for v in layer.state_dict().values())


def test_ema_follows_the_moving_average_formula_and_copies_buffers() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.9)
    start = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(8, 3))  # changes the running statistics
    ema.update(net)
    for avg, old, live in zip(ema.module.parameters(), start, net.parameters(), strict=True):
        torch.testing.assert_close(avg, 0.9 * old + 0.1 * live.detach())
    torch.testing.assert_close(ema.module[1].running_mean, net[1].running_mean)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training


def test_ema_warmup_state_round_trip_and_mismatch() -> None:
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.999, warmup=10)
    assert ema.current_decay() == pytest.approx(1 / 10)
    ema.update(net)
    assert ema.current_decay() == pytest.approx(2 / 11)
    twin = EMA(nn.Linear(2, 2), decay=0.999, warmup=10)
    twin.load_state_dict(ema.state_dict())
    assert twin.num_updates == 1 and torch.equal(twin.module.weight, ema.module.weight)
    with pytest.raises(MetaxferError, match="same network"):
        ema.update(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.0)


def test_uint8_round_trip_and_range() -> None:
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = uint8_to_gan(images)
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    torch.testing.assert_close(x, to_float(images, range=(-1, 1)))
    assert torch.equal(gan_to_uint8(x), images)
    assert torch.equal(gan_to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))
    with pytest.raises(DataFormatError):
        uint8_to_gan(x)


def test_frozen_parameters_restores_each_flag() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[1].weight.requires_grad_(False)
    with frozen_parameters(net):
        assert not any(p.requires_grad for p in net.parameters())
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, True]


def test_to_floats_and_seeded_noise() -> None:
    assert to_floats({"a": torch.tensor(1.5), "b": torch.tensor([2.0], requires_grad=True)}) == {"a": 1.5, "b": 2.0}
    assert to_floats({}) == {}
    a = randn(2, 3, generator=torch.Generator().manual_seed(4))
    b = randn(2, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and a.shape == (2, 3)

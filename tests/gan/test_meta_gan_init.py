"""The meta-learned GAN initialisation (metaxfer.gan.meta_init): the outer updates against references written with
module copies and torch.optim in float64, the functional Adam against torch.optim.Adam, adaptation leaving θ alone,
task sampling, and errors that name the fix.

The references never call the library's inner loop: each task's inner training is a deep copy of the generator and
the discriminator trained with torch.optim (SGD or Adam with β = (0.5, 0.999)) by ordinary module calls, drawing the
same noise from the same seeded generator in the same order (all K real images are the real batch of every step).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from metaxfer.errors import DataFormatError, MetaxferError
from metaxfer.gan.meta_init import GANTask, GANTaskSampler, InnerOptimizer, MetaInitGAN, adam_update_

SIZE, LATENT, BATCH, STEPS = 8, 3, 4, 3


def make_model(inner: str, *, lr: float) -> MetaInitGAN:
    torch.manual_seed(0)
    model = MetaInitGAN(image_size=SIZE, channels=1, latent_dim=LATENT, width=2, d_width=2, d_norm="layer",
                        inner_steps=STEPS, inner_lr=lr, inner_optimizer=inner, batch_size=BATCH).double()
    with torch.no_grad():  # larger weights than the DCGAN init, so that every term moves
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def make_tasks(count: int, *, queries: int = 0, seed: int = 1) -> list[GANTask]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        support = torch.randint(0, 256, (3, 1, SIZE, SIZE), generator=g, dtype=torch.uint8)
        query = torch.randint(0, 256, (queries, 1, SIZE, SIZE), generator=g, dtype=torch.uint8) if queries else None
        out.append(GANTask(support, query))
    return out


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 255 * 2 - 1


def reference_inner(model: MetaInitGAN, real: torch.Tensor, rng: torch.Generator, *, inner: str, lr: float):
    """Deep copies trained with torch.optim: D step on (real, G(z)), then G step on the same fakes."""
    g, d = copy.deepcopy(model.generator), copy.deepcopy(model.discriminator)
    if inner == "adam":
        opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=lr, betas=(0.5, 0.999)) for m in (g, d))
    else:
        opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=lr) for m in (g, d))
    g.train(), d.train()
    for _ in range(STEPS):
        z = torch.randn(BATCH, LATENT, generator=rng).double()
        fake = g(z)
        d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()  # the non-saturating objective
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-d(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return g, d


@pytest.mark.parametrize("inner", ["sgd", "adam"])
def test_reptile_outer_step_follows_its_formula(inner: str) -> None:
    lr, eps = (0.05 if inner == "sgd" else 0.01), 0.7
    model = make_model(inner, lr=lr)
    tasks = make_tasks(3)
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    rng = torch.Generator().manual_seed(5)
    phis = []
    for task in tasks:
        g, d = reference_inner(model, as_float(task.support), rng, inner=inner, lr=lr)
        phis.append({**{f"generator.{n}": p.detach() for n, p in g.named_parameters()},
                     **{f"discriminator.{n}": p.detach() for n, p in d.named_parameters()}})

    opt = torch.optim.SGD(model.parameters(), lr=eps)
    metrics = model.outer_step(tasks, optimizer=opt, algorithm="reptile", rng=torch.Generator().manual_seed(5))
    for n, p in model.named_parameters():
        mean_phi = torch.stack([phi[n] for phi in phis]).mean(0)
        expected = theta[n] + eps * (mean_phi - theta[n])
        assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-12), n
    assert metrics["distance"] > 0 and set(metrics) >= {"d_loss", "g_loss", "d_loss_end", "g_loss_end"}


@pytest.mark.parametrize("inner", ["sgd", "adam"])
def test_fomaml_meta_gradient_equals_the_hand_unrolled_reference(inner: str) -> None:
    lr = 0.05 if inner == "sgd" else 0.01
    model = make_model(inner, lr=lr)
    tasks = make_tasks(2, queries=2)
    rng = torch.Generator().manual_seed(9)
    expected: dict[str, torch.Tensor] = {}
    for task in tasks:
        g, d = reference_inner(model, as_float(task.support), rng, inner=inner, lr=lr)
        z = torch.randn(BATCH, LATENT, generator=rng).double()
        fake = g(z)
        d_loss = F.softplus(-d(as_float(task.query))).mean() + F.softplus(d(fake.detach())).mean()
        d_grads = torch.autograd.grad(d_loss, list(d.parameters()))
        g_loss = F.softplus(-d(fake)).mean()
        g_grads = torch.autograd.grad(g_loss, list(g.parameters()))
        for (n, _), gr in zip(g.named_parameters(), g_grads):
            expected[f"generator.{n}"] = expected.get(f"generator.{n}", 0) + gr / len(tasks)
        for (n, _), gr in zip(d.named_parameters(), d_grads):
            expected[f"discriminator.{n}"] = expected.get(f"discriminator.{n}", 0) + gr / len(tasks)

    loss, metrics = model.fomaml_loss(tasks, rng=torch.Generator().manual_seed(9))
    loss.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[n], rtol=1e-9, atol=1e-12), n
    assert {"query_d_loss", "query_g_loss"} <= set(metrics)


def test_functional_adam_is_torch_adam() -> None:
    torch.manual_seed(0)
    p = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    ref = p.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=0.03, betas=(0.5, 0.999))
    mine = p.detach().clone()
    state = InnerOptimizer("adam", 0.03).init_state({"p": mine})
    for t in range(1, 6):
        grad = torch.randn(5, 3, dtype=torch.float64)
        ref.grad = grad.clone()
        opt.step()
        adam_update_([mine], [grad], [state["exp_avg"]["p"]], [state["exp_avg_sq"]["p"]], step=t, lr=0.03,
                     betas=(0.5, 0.999), eps=1e-8)
        assert torch.allclose(mine, ref.detach(), rtol=0, atol=1e-14)


def test_adapt_gives_a_new_generator_and_leaves_theta_alone() -> None:
    model = MetaInitGAN(image_size=8, latent_dim=4, width=2, d_width=2, inner_steps=3, batch_size=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    model.eval()  # adaptation trains in training mode whatever the module's mode, and restores it
    a = model.adapt(images, generator=torch.Generator().manual_seed(0))
    b = model.adapt(images, generator=torch.Generator().manual_seed(0))
    assert not model.training and not model.generator.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = a.sample(6, generator=torch.Generator().manual_seed(1))
    assert x.dtype == torch.uint8 and x.shape == (6, 1, 8, 8)
    assert torch.equal(x, b.sample(6, generator=torch.Generator().manual_seed(1)))  # same seed, same generator
    moved = [not torch.equal(a.params[n], p) for n, p in model.generator.named_parameters()]
    assert all(moved)
    # an image never depends on the others drawn with it (eval-mode batch norm with recomputed statistics)
    z = torch.randn(6, 4)
    assert torch.allclose(a(z)[:3], a(z[:3]), atol=1e-6)


@pytest.mark.parametrize("image_size", [16, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_supported_size_and_channels(image_size: int, channels: int) -> None:
    model = MetaInitGAN(image_size=image_size, channels=channels, latent_dim=4, width=2, d_width=2, inner_steps=1,
                        batch_size=2)
    images = torch.randint(0, 256, (2, channels, image_size, image_size), dtype=torch.uint8)
    out = model.adapt(images).sample(3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, channels, image_size, image_size)


def test_wgan_gp_inner_loop_runs_and_is_refused_with_batch_norm() -> None:
    model = MetaInitGAN(image_size=8, latent_dim=4, width=2, d_width=2, objective="wgan-gp", inner_steps=2,
                        batch_size=3)
    result = model.inner_loop(torch.rand(2, 1, 8, 8) * 2 - 1, rng=torch.Generator().manual_seed(0))
    assert len(result.d_losses) == 2 and all(v == v for v in result.d_losses)
    with pytest.raises(MetaxferError, match="norm='layer'"):
        MetaInitGAN(image_size=16, width=2, d_width=2, objective="wgan-gp", d_norm="batch")


def test_bad_inputs_say_what_to_pass() -> None:
    model = MetaInitGAN(image_size=8, latent_dim=4, width=2, d_width=2, inner_steps=1)
    with pytest.raises(DataFormatError, match="uint8.*gan_to_uint8"):
        model.adapt(torch.rand(2, 1, 8, 8))
    with pytest.raises(DataFormatError, match=r"\(1, 8, 8\).*match_format"):
        model.adapt(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(DataFormatError, match="at least one"):
        model.adapt(torch.zeros(0, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="reptile, fomaml"):
        model.meta_loss(make_tasks(1), algorithm="maml")  # type: ignore[arg-type]
    with pytest.raises(MetaxferError, match="queries >= 1"):
        model.fomaml_loss(make_tasks(1))
    with pytest.raises(ValueError, match="sgd, adam"):
        InnerOptimizer("rmsprop")


def test_task_sampler_draws_classes_or_groups_deterministically() -> None:
    labels = torch.arange(6).repeat_interleave(4)
    images = (labels * 40).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()
    by_class = GANTaskSampler(images, labels, shots=2, queries=1, seed=0)
    t = by_class.sample()
    assert len(t.classes) == 1 and t.support.shape == (2, 1, 8, 8) and t.query.shape == (1, 1, 8, 8)
    assert set(torch.cat([t.support, t.query])[:, 0, 0, 0].tolist()) == {40 * t.classes[0]}
    again = GANTaskSampler(images, labels, shots=2, queries=1, seed=0).sample()
    assert torch.equal(again.support, t.support) and torch.equal(again.query, t.query)

    grouped = GANTaskSampler(images, labels, shots=6, task="group", groups=["a", "a", "b", "b", "c", "c"], seed=0)
    t = grouped.sample()
    assert t.classes in ([0, 1], [2, 3], [4, 5]) and t.support.shape[0] == 6
    assert set(t.support[:, 0, 0, 0].tolist()) <= {40 * c for c in t.classes}
    random_groups = GANTaskSampler(images, labels, shots=5, task="group", classes_per_task=3, seed=0).sample()
    assert len(random_groups.classes) == 3
    with pytest.raises(MetaxferError, match="lower them"):
        GANTaskSampler(images, labels, shots=4, queries=1)

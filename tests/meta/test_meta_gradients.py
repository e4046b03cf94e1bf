"""Meta-gradients of MAML, FOMAML, MAML with learned per-step rates, Meta-SGD and ANIL against hand-unrolled
references in float64.

The reference network is written out by hand (convolutions, batch norm with explicit support statistics, ReLU,
max-pool, linear head) as a function of a plain list of tensors, and the inner updates are unrolled explicitly. For
one inner step the second-order meta-gradient is also checked against the closed form ``(I − α H) ∇L_q(θ')`` with
the Hessian ``H`` of the support loss computed by ``torch.autograd.functional.hessian``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metaxfer.data import Episode
from metaxfer.meta import ANIL, FOMAML, MAML, MetaSGD
from metaxfer.models import Conv4

WAYS, SHOTS, QUERIES, SIZE = 3, 2, 2, 8
TOL = 1e-10


def make_model(norm: str = "support") -> Conv4:
    torch.manual_seed(0)
    model = Conv4(in_channels=1, hidden=3, depth=2, image_size=SIZE, num_classes=WAYS, norm=norm).double()
    with torch.no_grad():  # non-trivial batch-norm scale and shift
        for block in model.blocks:
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(-0.3, 0.3)
    return model


def make_episodes(count: int, seed: int = 1) -> list[Episode]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        out.append(
            Episode(
                support_x=torch.randint(0, 256, (WAYS * SHOTS, 1, SIZE, SIZE), generator=g, dtype=torch.uint8),
                support_y=torch.arange(WAYS).repeat_interleave(SHOTS),
                query_x=torch.randint(0, 256, (WAYS * QUERIES, 1, SIZE, SIZE), generator=g, dtype=torch.uint8),
                query_y=torch.arange(WAYS).repeat_interleave(QUERIES),
                classes=torch.arange(WAYS),
                class_keys=[str(k) for k in range(WAYS)],
                domain="random",
                query_domain="random",
            )
        )
    return out


# ------------------------------------------------------------------------------------------ hand-written network
def ref_forward(theta: list[torch.Tensor], x: torch.Tensor, *, stats_rows: int | None) -> torch.Tensor:
    """The tiny Conv-4 by hand. theta = [conv1 w, b, bn1 γ, β, conv2 w, b, bn2 γ, β, head W, b]."""
    h = x
    for blk in range(2):
        w, b, gamma, beta = theta[4 * blk : 4 * blk + 4]
        h = F.conv2d(h, w, b, padding=1)
        s = h if stats_rows is None else h[:stats_rows]
        mean = s.mean(dim=(0, 2, 3), keepdim=True)
        var = ((s - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        h = (h - mean) / torch.sqrt(var + 1e-5) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
        h = F.max_pool2d(torch.relu(h), 2)
    return h.flatten(1) @ theta[8].T + theta[9]


def ref_query_logits(theta, sx, qx, norm):
    if norm == "support":
        return ref_forward(theta, torch.cat([sx, qx]), stats_rows=len(sx))[len(sx):]
    return ref_forward(theta, qx, stats_rows=None)


def ref_meta_loss(theta, episodes, *, steps, rate, second_order, norm, adapt=None):
    """Mean query loss after explicit inner SGD; rate(step, index) gives the step size."""
    adapt = range(len(theta)) if adapt is None else adapt
    total = 0.0
    for e in episodes:
        sx, qx = e.support_x.double() / 255, e.query_x.double() / 255
        params = list(theta)
        for step in range(steps):
            loss = F.cross_entropy(ref_forward(params, sx, stats_rows=None), e.support_y)
            grads = torch.autograd.grad(loss, [params[i] for i in adapt], create_graph=second_order)
            for i, g in zip(adapt, grads):
                params[i] = params[i] - rate(step, i) * g
        total = total + F.cross_entropy(ref_query_logits(params, sx, qx, norm), e.query_y)
    return total / len(episodes)


def algorithm_grads(algo, episodes, names):
    algo.zero_grad(set_to_none=True)
    out = algo.meta_loss(episodes)
    out.loss.backward()
    params = dict(algo.named_parameters())
    return out.loss.detach(), [params[n].grad.clone() for n in names]


def assert_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        assert torch.allclose(x, y, rtol=0, atol=TOL), float((x - y).abs().max())


# ------------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("norm", ["support", "transductive"])
@pytest.mark.parametrize("second_order", [True, False])
@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_matches_unrolled_reference(norm: str, second_order: bool, steps: int) -> None:
    algo = MAML(make_model(norm), inner_lr=0.3, inner_steps=steps, first_order=not second_order)
    names = [f"backbone.{n}" for n, _ in algo.backbone.named_parameters()]
    episodes = make_episodes(3)
    loss, grads = algorithm_grads(algo, episodes, names)

    theta = [p.detach().clone().requires_grad_() for p in algo.backbone.parameters()]
    ref = ref_meta_loss(theta, episodes, steps=steps, rate=lambda s, i: 0.3, second_order=second_order, norm=norm)
    ref_grads = torch.autograd.grad(ref, theta)
    assert abs(float(loss) - float(ref.detach())) < TOL
    assert_close(grads, list(ref_grads))
    # First and second order really differ here (the test could fail if create_graph were ignored).
    if second_order:
        fo = ref_meta_loss(theta, episodes, steps=steps, rate=lambda s, i: 0.3, second_order=False, norm=norm)
        fo_grads = torch.autograd.grad(fo, theta)
        assert max(float((a - b).abs().max()) for a, b in zip(ref_grads, fo_grads)) > 1e-4


def test_maml_one_step_matches_hessian_closed_form() -> None:
    """meta-grad = (I − α H_s(θ)) ∇L_q(θ') for one step; first order drops the H term."""
    alpha = 0.25
    algo = MAML(make_model(), inner_lr=alpha, inner_steps=1)
    episodes = make_episodes(1)
    names = [f"backbone.{n}" for n, _ in algo.backbone.named_parameters()]
    _, grads = algorithm_grads(algo, episodes, names)
    e = episodes[0]
    sx, qx = e.support_x.double() / 255, e.query_x.double() / 255
    shapes = [p.shape for p in algo.backbone.parameters()]
    sizes = [p.numel() for p in algo.backbone.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in algo.backbone.parameters()])

    def unflat(v: torch.Tensor) -> list[torch.Tensor]:
        return [t.view(s) for t, s in zip(v.split(sizes), shapes)]

    def support_loss(v: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(ref_forward(unflat(v), sx, stats_rows=None), e.support_y)

    def query_loss(v: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(ref_query_logits(unflat(v), sx, qx, "support"), e.query_y)

    g_s = torch.autograd.functional.jacobian(support_loss, flat0)
    hess = torch.autograd.functional.hessian(support_loss, flat0)
    adapted = flat0 - alpha * g_s
    g_q = torch.autograd.functional.jacobian(query_loss, adapted)
    expected = g_q - alpha * hess @ g_q
    got = torch.cat([g.reshape(-1) for g in grads])
    assert torch.allclose(got, expected, rtol=0, atol=TOL), float((got - expected).abs().max())

    fo = FOMAML(make_model(), inner_lr=alpha, inner_steps=1)
    _, fo_grads = algorithm_grads(fo, episodes, names)
    assert torch.allclose(torch.cat([g.reshape(-1) for g in fo_grads]), g_q, rtol=0, atol=TOL)


@pytest.mark.parametrize("second_order", [True, False])
def test_learned_per_step_rates_meta_gradient(second_order: bool) -> None:
    algo = MAML(make_model(), inner_lr=0.2, inner_steps=2, learn_inner_lr=True, first_order=not second_order)
    with torch.no_grad():
        rates = torch.linspace(0.05, 0.4, algo.inner_lrs.numel(), dtype=torch.float64)
        algo.inner_lrs.copy_(rates.view_as(algo.inner_lrs))
    names = [f"backbone.{n}" for n, _ in algo.backbone.named_parameters()] + ["inner_lrs"]
    episodes = make_episodes(2)
    _, grads = algorithm_grads(algo, episodes, names)

    theta = [p.detach().clone().requires_grad_() for p in algo.backbone.parameters()]
    rates = algo.inner_lrs.detach().clone().requires_grad_()
    ref = ref_meta_loss(
        theta, episodes, steps=2, rate=lambda s, i: rates[s, i], second_order=second_order, norm="support"
    )
    ref_grads = torch.autograd.grad(ref, [*theta, rates])
    assert_close(grads, list(ref_grads))
    assert float(grads[-1].abs().sum()) > 0


@pytest.mark.parametrize("second_order", [True, False])
def test_metasgd_meta_gradient(second_order: bool) -> None:
    algo = MetaSGD(make_model(), inner_lr=0.2, inner_steps=1, first_order=not second_order)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for a in algo.inner_lrs:
            a.copy_(0.05 + 0.3 * torch.rand(a.shape, generator=g, dtype=torch.float64))
    names = [f"backbone.{n}" for n, _ in algo.backbone.named_parameters()]
    names += [f"inner_lrs.{i}" for i in range(len(names))]
    episodes = make_episodes(2)
    _, grads = algorithm_grads(algo, episodes, names)

    theta = [p.detach().clone().requires_grad_() for p in algo.backbone.parameters()]
    alphas = [a.detach().clone().requires_grad_() for a in algo.inner_lrs]
    ref = ref_meta_loss(
        theta, episodes, steps=1, rate=lambda s, i: alphas[i], second_order=second_order, norm="support"
    )
    ref_grads = torch.autograd.grad(ref, [*theta, *alphas])
    assert_close(grads, list(ref_grads))


def test_metasgd_rate_gradient_closed_form() -> None:
    """For one step, ∂L_q/∂α = −∇L_s(θ) ⊙ ∇L_q(θ') exactly (the support gradient does not depend on α)."""
    algo = MetaSGD(make_model(), inner_lr=0.2, inner_steps=1)
    episodes = make_episodes(1)
    e = episodes[0]
    names = [f"inner_lrs.{i}" for i in range(len(algo.inner_lrs))]
    _, grads = algorithm_grads(algo, episodes, names)
    theta = [p.detach().clone().requires_grad_() for p in algo.backbone.parameters()]
    sx, qx = e.support_x.double() / 255, e.query_x.double() / 255
    g_s = torch.autograd.grad(F.cross_entropy(ref_forward(theta, sx, stats_rows=None), e.support_y), theta)
    adapted = [(t - 0.2 * g).detach().requires_grad_() for t, g in zip(theta, g_s)]
    g_q = torch.autograd.grad(F.cross_entropy(ref_query_logits(adapted, sx, qx, "support"), e.query_y), adapted)
    assert_close(grads, [-a * b for a, b in zip(g_s, g_q)])


@pytest.mark.parametrize("second_order", [True, False])
@pytest.mark.parametrize("norm", ["support", "transductive"])
def test_anil_batched_meta_gradient_matches_head_only_reference(second_order: bool, norm: str) -> None:
    algo = ANIL(make_model(norm), inner_lr=0.3, inner_steps=2, first_order=not second_order)
    names = [f"backbone.{n}" for n, _ in algo.backbone.named_parameters()]
    episodes = make_episodes(3)
    _, grads = algorithm_grads(algo, episodes, names)
    theta = [p.detach().clone().requires_grad_() for p in algo.backbone.parameters()]
    ref = ref_meta_loss(
        theta, episodes, steps=2, rate=lambda s, i: 0.3, second_order=second_order, norm=norm, adapt=[8, 9]
    )
    assert_close(grads, list(torch.autograd.grad(ref, theta)))


def test_accumulate_gradients_equals_meta_loss_backward() -> None:
    """Task-by-task back-propagation (outer_step's memory-saving path) gives the same gradient as meta_loss."""
    episodes = make_episodes(3)
    algo = MAML(make_model(), inner_lr=0.3, inner_steps=2)
    names = [n for n, _ in algo.named_parameters()]
    _, full = algorithm_grads(algo, episodes, names)
    algo.zero_grad(set_to_none=True)
    algo.accumulate_gradients(episodes)
    params = dict(algo.named_parameters())
    assert_close([params[n].grad for n in names], full)

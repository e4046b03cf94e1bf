"""The CPU speed paths compute what the plain paths compute, in float64.

* :func:`~metaxfer.models.conv4.conv3x3_batch_norm` (convolution and batch norm as one matrix multiply) against
  ``conv2d`` followed by batch norm written out by hand: values, first derivatives and second derivatives (what
  second-order MAML differentiates), for one and several tasks and for support-row statistics.
* A Conv-4 that takes the fused path against the same network forced onto the plain path.
* The task-parallel meta-gradient (worker threads) against the one-task-at-a-time sum, for first-order MAML, ANIL,
  ProtoNets and Matching Networks.
* The allocator setting's opt-out.
"""

from __future__ import annotations

import copy
import platform

import pytest
import torch
import torch.nn.functional as F

import metaxfer.meta.base as meta_base
import metaxfer.models.conv4 as conv4
from metaxfer.data import Episode
from metaxfer.meta import create_algorithm
from metaxfer.meta.parallel import ALLOCATOR_ENV, tune_cpu_allocator
from metaxfer.models import Conv4
from metaxfer.models.norm import NormPlan

TOL = 1e-10


def reference_conv_bn(x, weight, bias, gamma, beta, *, eps, tasks, stat_rows):
    """conv2d, then per-task batch norm with the statistics of each task's first ``stat_rows`` rows."""
    z = F.conv2d(x, weight, bias, padding=1)
    grouped = z.reshape(tasks, -1, *z.shape[1:])
    stats = grouped[:, :stat_rows]
    mean = stats.mean(dim=(1, 3, 4), keepdim=True)
    var = ((stats - mean) ** 2).mean(dim=(1, 3, 4), keepdim=True)
    out = (grouped - mean) / torch.sqrt(var + eps) * gamma.view(1, 1, -1, 1, 1) + beta.view(1, 1, -1, 1, 1)
    return out.reshape(z.shape)


@pytest.mark.parametrize(
    ("in_channels", "tasks", "stat_rows", "with_bias"),
    [(1, 1, 6, True), (1, 2, 2, True), (3, 1, 4, False), (3, 3, 2, True)],
)
def test_fused_conv_batch_norm_matches_conv_then_batch_norm(
    in_channels: int, tasks: int, stat_rows: int, with_bias: bool
) -> None:
    g = torch.Generator().manual_seed(3)
    rows = 6
    x = torch.rand(tasks * rows, in_channels, 7, 7, generator=g, dtype=torch.float64)
    weight = (0.5 * torch.randn(5, in_channels, 3, 3, generator=g, dtype=torch.float64)).requires_grad_()
    bias = (torch.randn(5, generator=g, dtype=torch.float64)).requires_grad_() if with_bias else None
    gamma = (1 + 0.3 * torch.randn(5, generator=g, dtype=torch.float64)).requires_grad_()
    beta = (0.3 * torch.randn(5, generator=g, dtype=torch.float64)).requires_grad_()
    params = [p for p in (weight, bias, gamma, beta) if p is not None]
    kw = {"eps": 1e-5, "tasks": tasks, "stat_rows": stat_rows}

    fused = conv4.conv3x3_batch_norm(x, weight, bias, gamma, beta, **kw)
    plain = reference_conv_bn(x, weight, bias, gamma, beta, **kw)
    assert fused.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fused, plain, rtol=0, atol=TOL)

    # First derivatives with a non-linear loss, then a Hessian-vector product through them (second order).
    upstream = torch.randn(fused.shape, generator=g, dtype=torch.float64)
    vectors = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    results = []
    for out in (fused, plain):
        loss = (torch.tanh(out) * upstream).sum()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        hvp = torch.autograd.grad(sum((gr * v).sum() for gr, v in zip(grads, vectors)), params, allow_unused=True)
        results.append((grads, hvp))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)
    for a, b in zip(results[0][1], results[1][1]):
        a = torch.zeros_like(b) if a is None else a  # the conv bias cancels in batch norm: zero derivatives
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("mode", ["support", "transductive"])
def test_conv4_fused_path_equals_plain_path(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = Conv4(in_channels=1, hidden=4, depth=2, image_size=8, num_classes=3, norm=mode).double()
    with torch.no_grad():
        for block in net.blocks:
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.uniform_(-0.3, 0.3)
    x = torch.rand(12, 1, 8, 8, dtype=torch.float64)
    plan = NormPlan(2, 3)

    def run() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        out = net(x, norm=plan)
        return out, torch.autograd.grad(out.pow(2).sum(), list(net.parameters()))

    fused_out, fused_grads = run()
    monkeypatch.setattr(conv4, "FUSED_MAX_CHANNELS", 0)
    plain_out, plain_grads = run()
    torch.testing.assert_close(fused_out, plain_out, rtol=0, atol=TOL)
    for a, b in zip(fused_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)


def episodes(count: int, *, ways: int = 3, shots: int = 2, queries: int = 2, size: int = 8) -> list[Episode]:
    g = torch.Generator().manual_seed(5)
    return [
        Episode(
            support_x=torch.randint(0, 256, (ways * shots, 1, size, size), generator=g, dtype=torch.uint8),
            support_y=torch.arange(ways).repeat_interleave(shots),
            query_x=torch.randint(0, 256, (ways * queries, 1, size, size), generator=g, dtype=torch.uint8),
            query_y=torch.arange(ways).repeat_interleave(queries),
            classes=torch.arange(ways),
            class_keys=[str(k) for k in range(ways)],
            domain="random",
            query_domain="random",
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", ["fomaml", "anil", "protonet", "matchingnet"])
def test_task_parallel_meta_gradient_equals_sequential(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"inner_lr": 0.3, "inner_steps": 2} if name in ("fomaml", "anil") else {}
    torch.manual_seed(0)
    sequential = create_algorithm(
        name, ways=3, image_size=8, norm="transductive", backbone_kwargs={"hidden": 4, "depth": 2}, **options
    ).double()
    parallel = copy.deepcopy(sequential)
    batch = episodes(5)

    calls = []
    real = meta_base.parallel_task_gradients

    def spy(*args, **kwargs):
        calls.append(kwargs["workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(meta_base, "parallel_task_gradients", spy)
    torch.set_num_threads(1)
    seq_metrics = sequential.accumulate_gradients(batch)
    assert calls == []  # one thread: the tasks run one after the other
    torch.set_num_threads(2)
    try:
        par_metrics = parallel.accumulate_gradients(batch)
    finally:
        torch.set_num_threads(1)
    assert calls == [2]  # two threads: two workers
    for (n, a), b in zip(sequential.named_parameters(), parallel.parameters()):
        assert a.grad is not None and b.grad is not None, n
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=1e-12, msg=n)
    assert par_metrics.keys() == seq_metrics.keys()
    for k in seq_metrics:
        assert par_metrics[k] == pytest.approx(seq_metrics[k], abs=1e-12)


def test_allocator_setting_can_be_opted_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOCATOR_ENV, "0")
    assert tune_cpu_allocator() is False
    monkeypatch.delenv(ALLOCATOR_ENV)
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_cpu_allocator() is on_glibc

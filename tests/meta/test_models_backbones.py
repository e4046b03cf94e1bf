"""Backbones: every registered one builds and runs with the body/head split; batch-norm modes behave as
documented; heads compute what they claim, per task as well."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.errors import UnknownNameError
from metaxfer.models import BACKBONES, CosineHead, EpisodicBatchNorm2d, LinearHead, NormPlan, create_backbone

SMALL = {"conv4": {"hidden": 8}, "resnet12": {"channels": (4, 6, 8, 8)}, "mlp": {"hidden": (16, 8)}}


@pytest.mark.parametrize("name", BACKBONES.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_backbone_runs_with_features_head_split(name: str, channels: int) -> None:
    torch.manual_seed(0)
    net = create_backbone(name, in_channels=channels, image_size=28, num_classes=5, **SMALL[name])
    x = torch.rand(6, channels, 28, 28)
    features = net.forward_features(x)
    assert features.shape == (6, net.num_features)
    logits = net(x)
    assert logits.shape == (6, 5)
    assert torch.allclose(logits, net.forward_head(features), atol=1e-6)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())

    bare = create_backbone(name, in_channels=channels, image_size=28, num_classes=0, **SMALL[name])
    assert bare.head is None
    assert bare(x).shape == (6, bare.num_features)
    with pytest.raises(RuntimeError, match="num_classes"):
        bare.forward_head(features)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_functional_call_with_parameter_dict(name: str) -> None:
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=3, **SMALL[name])
    x = torch.rand(4, 1, 28, 28)
    params = {n: p * 0 for n, p in net.named_parameters()}
    out = torch.func.functional_call(net, params, (x,))
    assert torch.allclose(out, torch.zeros_like(out))  # every parameter zero: head bias 0, so logits 0
    assert not torch.allclose(net(x), out)


def test_conv4_feature_sizes_follow_the_literature() -> None:
    assert create_backbone("conv4", image_size=28).num_features == 64
    assert create_backbone("conv4", image_size=84, in_channels=3).num_features == 64 * 5 * 5
    assert create_backbone("resnet12", image_size=84, in_channels=3).num_features == 640


def test_unknown_names_and_options_explain_themselves() -> None:
    with pytest.raises(UnknownNameError, match="conv4"):
        create_backbone("conv5")
    with pytest.raises(TypeError, match="hidden"):
        create_backbone("conv4", width=3)
    with pytest.raises(ValueError, match="at least 16px"):
        create_backbone("conv4", image_size=8)
    with pytest.raises(ValueError, match="support"):
        create_backbone("conv4", norm="batch")
    with pytest.raises(ValueError, match="linear"):
        create_backbone("conv4", num_classes=3, head="svm")


# ------------------------------------------------------------------------------------------------ batch norm
def _bn(mode: str) -> EpisodicBatchNorm2d:
    bn = EpisodicBatchNorm2d(4, mode=mode).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 0.3, 2.0]))
    return bn


def _manual(x: torch.Tensor, stats: torch.Tensor, bn: EpisodicBatchNorm2d) -> torch.Tensor:
    mean = stats.mean(dim=(0, 2, 3), keepdim=True)
    var = stats.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)


def test_support_mode_uses_support_statistics_for_everything() -> None:
    bn = _bn("support")
    g = torch.Generator().manual_seed(0)
    support = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    query = 3 + 2 * torch.randn(7, 4, 3, 3, generator=g, dtype=torch.float64)
    out = bn(torch.cat([support, query]), NormPlan(1, 5))
    assert torch.allclose(out, _manual(torch.cat([support, query]), support, bn), atol=1e-12)
    # Support rows equal a support-only forward; queries never affect them, nor each other.
    assert torch.allclose(out[:5], bn(support), atol=1e-12)
    one = bn(torch.cat([support, query[:1]]), NormPlan(1, 5))
    assert torch.allclose(one[5], out[5], atol=1e-12)
    assert torch.allclose(bn(support), F.batch_norm(support, None, None, bn.weight, bn.bias, True, 0.0, bn.eps))


def test_transductive_mode_uses_each_forward_and_task_statistics() -> None:
    bn = _bn("transductive")
    query = torch.randn(7, 4, 3, 3, dtype=torch.float64)
    assert torch.allclose(bn(query, NormPlan(1, 2)), _manual(query, query, bn), atol=1e-12)  # plan.support ignored
    assert not torch.allclose(bn(query[:1].repeat(2, 1, 1, 1))[0], bn(query)[0])


@pytest.mark.parametrize("mode", ["support", "transductive"])
def test_grouped_tasks_equal_separate_forwards(mode: str) -> None:
    bn = _bn(mode)
    tasks = [torch.randn(6, 4, 3, 3, dtype=torch.float64) * (k + 1) + k for k in range(3)]
    together = bn(torch.cat(tasks), NormPlan(3, 2))
    for k, t in enumerate(tasks):
        assert torch.allclose(together[6 * k : 6 * k + 6], bn(t, NormPlan(1, 2)), atol=1e-12)
    with pytest.raises(ValueError, match="equal tasks"):
        bn(torch.randn(7, 4, 3, 3, dtype=torch.float64), NormPlan(3, 2))


def test_running_mode_matches_batchnorm2d() -> None:
    torch.manual_seed(0)
    ours = _bn("running")
    ref = nn.BatchNorm2d(4).double()
    ref.load_state_dict({**ours.state_dict(), "num_batches_tracked": torch.tensor(0)})
    for _ in range(3):
        x = torch.randn(8, 4, 3, 3, dtype=torch.float64) * 2 + 1
        assert torch.allclose(ours(x, NormPlan(2, 1)), ref(x), atol=1e-12)
    assert torch.allclose(ours.running_mean, ref.running_mean)
    ours.eval()
    ref.eval()
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    assert torch.allclose(ours(x), ref(x), atol=1e-12)
    assert torch.allclose(ours(x[:1]), ours(x)[:1])  # evaluation: each image independent


def test_norm_modes_reach_the_backbone_layers() -> None:
    for mode in ("support", "transductive", "running"):
        net = create_backbone("resnet12", channels=(4, 4, 4, 4), norm=mode)
        modes = {m.mode for m in net.modules() if isinstance(m, EpisodicBatchNorm2d)}
        assert modes == {mode} and net.norm_mode == mode
    assert create_backbone("mlp").norm_mode is None


def test_support_mode_backbone_keeps_queries_out_of_support_predictions() -> None:
    torch.manual_seed(0)
    net = create_backbone("conv4", hidden=8, num_classes=3).double()
    s, q = torch.rand(3, 1, 28, 28, dtype=torch.float64), torch.rand(4, 1, 28, 28, dtype=torch.float64)
    both = net(torch.cat([s, q]), norm=NormPlan(1, 3))
    other = net(torch.cat([s, torch.rand_like(q)]), norm=NormPlan(1, 3))
    assert torch.allclose(both[:3], other[:3], atol=1e-12)
    assert torch.allclose(both[:3], net(s), atol=1e-12)


# ----------------------------------------------------------------------------------------------------- heads
def test_linear_head_batched_equals_per_task() -> None:
    head = LinearHead(6, 3).double()
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    w, b = torch.randn(4, 3, 6, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    out = head.forward_batched(x, {"weight": w, "bias": b})
    for t in range(4):
        assert torch.allclose(out[t], F.linear(x[t], w[t], b[t]), atol=1e-12)


def test_cosine_head_is_scaled_cosine_similarity() -> None:
    head = CosineHead(6, 3, scale=7.0).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    expected = 7.0 * F.cosine_similarity(x.unsqueeze(1), head.weight.unsqueeze(0), dim=-1)
    assert torch.allclose(head(x), expected, atol=1e-12)
    assert torch.allclose(head(3 * x), head(x), atol=1e-12)  # scale-invariant in the features
    w = torch.randn(2, 3, 6, dtype=torch.float64)
    xb = torch.randn(2, 5, 6, dtype=torch.float64)
    out = head.forward_batched(xb, {"weight": w})
    assert torch.allclose(out[1], 7.0 * F.cosine_similarity(xb[1].unsqueeze(1), w[1].unsqueeze(0), dim=-1), atol=1e-12)

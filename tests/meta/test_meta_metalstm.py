"""The Meta-LSTM update is the cell-state formula: with its gates pinned (forget = 1, input = α) it is plain SGD."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.meta import MetaLSTM
from metaxfer.meta.metalstm import MetaLSTMCell, preprocess_gradients
from metaxfer.models import NormPlan, create_backbone


def test_preprocessing_follows_andrychowicz() -> None:
    x = torch.tensor([1.0, -1e-3, 1e-6, -1e-6, 0.0], dtype=torch.float64)
    out = preprocess_gradients(x, p=10.0)
    assert out.shape == (5, 2)
    assert out[0].tolist() == pytest.approx([0.0, 1.0])
    assert out[1].tolist() == pytest.approx([math.log(1e-3) / 10, -1.0])
    assert out[2].tolist() == pytest.approx([-1.0, 1e-6 * math.exp(10)])  # below e^-10: (-1, e^p x)
    assert out[3].tolist() == pytest.approx([-1.0, -1e-6 * math.exp(10)])
    assert out[4].tolist() == pytest.approx([-1.0, 0.0])


def test_cell_formula() -> None:
    cell = MetaLSTMCell(3).double()
    g = torch.Generator().manual_seed(0)
    h, theta, grad, ip, fp = (torch.randn(s, generator=g, dtype=torch.float64) for s in [(4, 3), 4, 4, 4, 4])
    new, i, f = (t.detach() for t in cell(h, theta, grad, ip, fp))
    wi, wf = cell.w_i.detach(), cell.w_f.detach()
    i_ref = torch.sigmoid(torch.cat([h, theta[:, None], ip[:, None]], 1) @ wi + cell.b_i.detach())
    f_ref = torch.sigmoid(torch.cat([h, theta[:, None], fp[:, None]], 1) @ wf + cell.b_f.detach())
    assert torch.allclose(i, i_ref) and torch.allclose(f, f_ref)
    assert torch.allclose(new, f_ref * theta - i_ref * grad)
    assert 0.005 < float(i.mean()) < 0.02 and float(f.mean()) > 0.98  # initial rates small, forget ≈ 1


def test_pinned_gates_give_plain_sgd_and_meta_gradient_reaches_everything() -> None:
    domain = create_domain("synthetic", num_classes=6, per_class=6, size=16, seed=4)
    episode = EpisodeSampler(domain, ways=3, shots=2, queries=2, seed=0).sample()
    torch.manual_seed(0)
    net = create_backbone("conv4", hidden=4, image_size=16, num_classes=3).double()
    algo = MetaLSTM(net, inner_steps=3, hidden=5)
    lr = 0.3
    with torch.no_grad():
        algo.update_cell.w_i.zero_()
        algo.update_cell.w_f.zero_()
        algo.update_cell.b_i.fill_(math.log(lr / (1 - lr)))
        algo.update_cell.b_f.fill_(60.0)
    learner = copy.deepcopy(net)
    opt = torch.optim.SGD(learner.parameters(), lr=lr)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(learner(episode.support_x.double() / 255), episode.support_y).backward()
        opt.step()
    s, q = episode.support_x.double() / 255, episode.query_x.double() / 255
    expected = learner(torch.cat([s, q]), norm=NormPlan(1, len(s)))[len(s) :]
    assert torch.allclose(algo.predict(episode), expected.detach(), atol=1e-10)

    algo2 = MetaLSTM(copy.deepcopy(net), inner_steps=2, hidden=5).double()
    out = algo2.meta_loss(episode)
    out.loss.backward()
    for name, p in algo2.named_parameters():
        if name.endswith("conv.bias"):
            # A convolution bias followed by batch norm on batch statistics cancels out of the output, so its
            # gradient is zero (exactly so on the CPU's fused convolution + batch norm path).
            assert p.grad is not None and float(p.grad.abs().max()) < 1e-10, name
            continue
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name

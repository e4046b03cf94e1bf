"""The matching-aware loss of GAN-INT-CLS against values worked out by hand, and the step-level losses it feeds."""

from __future__ import annotations

import math

import pytest
import torch

from metaxfer.crossmodal.losses import (
    interpolate_texts,
    matching_aware_d_loss,
    mismatched_texts,
    t2i_discriminator_loss,
    t2i_generator_loss,
)
from metaxfer.crossmodal.networks import MatchingDiscriminator, TextConditionalGenerator
from metaxfer.gan import create_objective


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_minimax_matching_loss_equals_reeds_formula_by_hand():
    # D(x, t) = sigmoid(score). Reed et al.: L_D = log D(real, right) + ½[log(1 − D(real, wrong)) + log(1 − D(fake, right))]
    # (maximised); as a loss: softplus(−real_right) + ½ softplus(real_wrong) + ½ softplus(fake_right).
    real_right = torch.tensor([2.0, -1.0])
    real_wrong = torch.tensor([0.5, 0.0])
    fake_right = torch.tensor([-3.0, 1.0])
    by_hand = ((_softplus(-2.0) + _softplus(1.0)) / 2
               + 0.5 * (_softplus(0.5) + _softplus(0.0)) / 2
               + 0.5 * (_softplus(-3.0) + _softplus(1.0)) / 2)
    got = matching_aware_d_loss(real_right, real_wrong, fake_right, d_loss=create_objective("minimax").d_loss)
    assert float(got) == pytest.approx(by_hand, rel=1e-6)
    # the same numbers in probabilities: −log σ(2) etc.
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    in_probs = (-(math.log(sig(2.0)) + math.log(sig(-1.0))) / 2
                - 0.5 * (math.log(1 - sig(0.5)) + math.log(1 - sig(0.0))) / 2
                - 0.5 * (math.log(1 - sig(-3.0)) + math.log(1 - sig(1.0))) / 2)
    assert float(got) == pytest.approx(in_probs, rel=1e-6)


def test_hinge_and_least_squares_matching_losses_by_hand():
    rr, rw, fr = torch.tensor([0.5]), torch.tensor([-0.5]), torch.tensor([2.0])
    # hinge: relu(1 − rr) + ½ relu(1 + rw) + ½ relu(1 + fr) = 0.5 + 0.25 + 1.5
    hinge = matching_aware_d_loss(rr, rw, fr, d_loss=create_objective("hinge").d_loss)
    assert float(hinge) == pytest.approx(0.5 + 0.25 + 1.5)
    # least squares: ½(rr − 1)² + ½·½ rw² + ½·½ fr² = 0.125 + 0.0625 + 1.0
    ls = matching_aware_d_loss(rr, rw, fr, d_loss=create_objective("least-squares").d_loss)
    assert float(ls) == pytest.approx(0.125 + 0.0625 + 1.0)
    # another share: w = 0.25 puts 1/4 of the fake term on the wrong pairs
    w = matching_aware_d_loss(rr, rw, fr, d_loss=create_objective("hinge").d_loss, wrong_weight=0.25)
    assert float(w) == pytest.approx(0.5 + 0.25 * 0.5 + 0.75 * 3.0)


def test_zero_wrong_weight_is_the_plain_conditional_loss_and_ignores_wrong_pairs():
    d_loss = create_objective("nonsaturating").d_loss
    rr, fr = torch.tensor([0.3, 1.2]), torch.tensor([-0.7, 0.1])
    rw = torch.tensor([5.0, 5.0], requires_grad=True)
    loss = matching_aware_d_loss(rr, rw, fr, d_loss=d_loss, wrong_weight=0.0)
    assert float(loss) == pytest.approx(float(d_loss(rr, fr)))
    assert not loss.requires_grad or torch.autograd.grad(loss, rw, allow_unused=True)[0] is None
    with pytest.raises(ValueError, match="wrong_weight"):
        matching_aware_d_loss(rr, rw, fr, d_loss=d_loss, wrong_weight=1.5)


def test_mismatched_texts_never_pairs_a_row_with_itself_and_interpolation_stays_unit():
    t = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    wrong = mismatched_texts(t)
    assert torch.equal(wrong[1:], t[:-1]) and torch.equal(wrong[0], t[-1])
    assert not any(torch.equal(wrong[i], t[i]) for i in range(5))
    mixed = interpolate_texts(t, beta=0.5)
    assert torch.allclose(mixed.norm(dim=1), torch.ones(5), atol=1e-6)
    expected = torch.nn.functional.normalize(0.5 * t + 0.5 * t.roll(1, 0), dim=1)
    assert torch.allclose(mixed, expected)


class _TableD:
    """A 'discriminator' scoring (image, text) as ⟨mean pixel value, text[0]⟩ — enough to check the wiring."""

    def __call__(self, x: torch.Tensor, t: torch.Tensor, wrong: torch.Tensor | None = None):
        base = x.flatten(1).mean(1)
        right = base * t[:, 0]
        return right if wrong is None else (right, base * wrong[:, 0])


def test_discriminator_loss_scores_real_right_real_wrong_and_fake_right():
    real = torch.full((2, 3, 4, 4), 1.0)
    fake = torch.full((2, 3, 4, 4), -1.0)
    texts = torch.tensor([[2.0, 0.0], [-1.0, 0.0]])
    loss, metrics = t2i_discriminator_loss(_TableD(), real, texts, fake, objective=create_objective("minimax"))
    # real_right = [2, −1]; real_wrong = texts rolled: [−1, 2]; fake_right = [−2, 1]
    by_hand = ((_softplus(-2.0) + _softplus(1.0)) / 2 + 0.5 * (_softplus(-1.0) + _softplus(2.0)) / 2
               + 0.5 * (_softplus(-2.0) + _softplus(1.0)) / 2)
    assert float(loss) == pytest.approx(by_hand, rel=1e-6)
    assert metrics["real_score"] == pytest.approx(0.5) and metrics["wrong_score"] == pytest.approx(0.5)
    assert metrics["fake_score"] == pytest.approx(-0.5)


def test_losses_train_the_real_networks_in_the_right_direction():
    torch.manual_seed(0)
    g = TextConditionalGenerator(text_dim=8, latent_dim=4, condition_dim=4, image_size=16, width=8)
    d = MatchingDiscriminator(text_dim=8, image_size=16, width=8, matching="concat")
    texts = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    real = torch.rand(6, 3, 16, 16) * 2 - 1
    objective = create_objective("nonsaturating")
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        fake = g(torch.randn(6, 4), texts)
        loss, _ = t2i_discriminator_loss(d, real, texts, fake, objective=objective)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first  # D learns to tell the three kinds of pair apart
    g_loss, metrics = t2i_generator_loss(g, d, texts, latent_dim=4, objective=objective, interpolation_weight=1.0)
    grads = torch.autograd.grad(g_loss, list(g.parameters()), allow_unused=True)
    assert any(gr is not None and float(gr.abs().sum()) > 0 for gr in grads)
    assert set(metrics) == {"loss", "fake_score", "interp_score"}

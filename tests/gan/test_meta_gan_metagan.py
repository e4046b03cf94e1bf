"""MetaGAN (metaxfer.meta.metagan): the N + 1-way formulas against hand-computed values, the ProtoNet discriminator's
logits, the generator's own optimiser inside MetaAlgorithm.outer_step, the MAML learner, and training, exact resume
and target evaluation through the ``meta`` engine method."""

from __future__ import annotations

import math

import pytest
import torch

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.engine import load_config, resume, train
from metaxfer.errors import EpisodeError
from metaxfer.meta import ALGORITHMS, MetaGAN, ProtoNet, create_algorithm
from metaxfer.meta.metagan import fake_log_prob, metagan_d_loss, metagan_g_loss, real_log_prob, with_fake_class
from metaxfer.methods.meta_eval import evaluate_setting, load_model, resolve_target
from metaxfer.methods.crossdomain import parse_setting


def test_fake_class_probability_is_the_n_plus_one_way_softmax() -> None:
    logits, b = torch.tensor([[1.0, 2.0], [-3.0, 0.5]]), torch.tensor(0.3)
    full = with_fake_class(logits, b)
    assert full.shape == (2, 3) and full[:, 2].tolist() == pytest.approx([0.3, 0.3])
    for row in range(2):
        l1, l2 = logits[row].tolist()
        z = math.exp(l1) + math.exp(l2) + math.exp(0.3)
        assert float(fake_log_prob(logits[row], b).exp()) == pytest.approx(math.exp(0.3) / z, rel=1e-6)
        assert float(real_log_prob(logits[row], b).exp()) == pytest.approx((math.exp(l1) + math.exp(l2)) / z, rel=1e-6)
    assert torch.allclose(full.softmax(-1)[:, 2], fake_log_prob(logits, b).exp())


def test_discriminator_and_generator_losses_by_hand() -> None:
    q, y = torch.tensor([[1.0, 2.0], [0.5, -1.0]]), torch.tensor([1, 0])
    fake, b, lam = torch.tensor([[-1.0, -2.0]]), torch.tensor(0.3), 0.5

    def p_fake(l1: float, l2: float) -> float:
        return math.exp(0.3) / (math.exp(l1) + math.exp(l2) + math.exp(0.3))

    sup = 0.5 * (-(2.0 - math.log(math.exp(1) + math.exp(2))) - (0.5 - math.log(math.exp(0.5) + math.exp(-1))))
    unsup = -0.5 * (math.log(1 - p_fake(1, 2)) + math.log(1 - p_fake(0.5, -1))) - math.log(p_fake(-1, -2))
    loss, terms = metagan_d_loss(q, y, fake, b, unsup_weight=lam)
    assert float(loss) == pytest.approx(sup + lam * unsup, rel=1e-6)
    assert float(terms["sup"]) == pytest.approx(sup, rel=1e-6)
    assert float(terms["unsup"]) == pytest.approx(unsup, rel=1e-6)
    assert float(terms["p_fake_fake"]) == pytest.approx(p_fake(-1, -2), rel=1e-6)

    real_f, fake_f = torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([[0.0, 1.0]])
    g, g_terms = metagan_g_loss(fake, b, real_features=real_f, fake_features=fake_f, fm_weight=2.0)
    fm = (2.0 - 0.0) ** 2 + (1.0 - 1.0) ** 2
    adv = -math.log(1 - p_fake(-1, -2))
    assert float(g) == pytest.approx(adv + 2.0 * fm, rel=1e-6) and float(g_terms["fm"]) == pytest.approx(fm)


@pytest.fixture(scope="module")
def sampler() -> EpisodeSampler:
    domain = create_domain("synthetic", num_classes=10, per_class=8, size=16, seed=0)
    return EpisodeSampler(domain, ways=3, shots=2, queries=2, seed=0)


def test_protonet_discriminator_predicts_like_protonet_with_the_same_backbone(sampler) -> None:
    torch.manual_seed(0)
    metagan = create_algorithm("metagan", ways=3, image_size=16, backbone_kwargs={"hidden": 4})
    proto = ProtoNet(metagan.backbone)
    episode = sampler.sample()
    assert torch.allclose(metagan.predict(episode), proto.predict(episode), atol=1e-6)
    assert torch.allclose(metagan.predict_batch([episode, episode])[1], proto.predict(episode), atol=1e-6)


def test_generator_has_its_own_optimiser_inside_outer_step(sampler) -> None:
    torch.manual_seed(0)
    algo = create_algorithm("metagan", ways=3, image_size=16, backbone_kwargs={"hidden": 4}, outer_lr=1e-2)
    outer = {id(p) for group in algo.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in outer for p in algo.generator.parameters())
    assert id(algo.fake_logit) in outer
    g_before = [p.clone() for p in algo.generator.parameters()]
    d_before = [p.detach().clone() for p in algo.backbone.parameters()]
    metrics = algo.outer_step([sampler.sample() for _ in range(2)])
    assert {"loss", "acc", "d_loss", "p_fake_real", "p_fake_fake", "g_loss", "g_adv", "g_fm"} <= set(metrics)
    assert int(algo.g_optimizer.step) == 1
    assert all(not torch.equal(a, b) for a, b in zip(g_before, algo.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, algo.backbone.parameters()))
    assert all(p.grad is None for p in algo.generator.parameters())
    assert any(k.startswith("g_optimizer.exp_avg") for k in algo.state_dict())  # checkpointed with the weights
    algo.eval()  # meta_loss outside training leaves the generator alone
    frozen = [p.clone() for p in algo.generator.parameters()]
    algo.meta_loss([sampler.sample()])
    assert all(torch.equal(a, b) for a, b in zip(frozen, algo.generator.parameters()))


def test_maml_learner_trains_and_predicts_deterministically(sampler) -> None:
    torch.manual_seed(0)
    algo = create_algorithm("metagan", ways=3, image_size=16, backbone_kwargs={"hidden": 4}, learner="maml",
                            inner_lr=0.1, inner_steps=2, outer_lr=1e-2)
    assert algo.backbone.num_classes == 3
    before = {k: v.clone() for k, v in algo.state_dict().items()}
    algo.outer_step([sampler.sample() for _ in range(2)])
    assert any(not torch.equal(before[k], v) for k, v in algo.state_dict().items())
    episode = sampler.sample()
    a, b = algo.predict(episode), algo.predict(episode)
    assert a.shape == (6, 3) and torch.equal(a, b)


def test_generator_makes_any_square_size_and_refuses_other_channels() -> None:
    domain = create_domain("synthetic", num_classes=6, per_class=6, size=12, channels=3, seed=0)
    episode = EpisodeSampler(domain, ways=2, shots=1, queries=1, seed=0).sample()
    torch.manual_seed(0)
    algo = create_algorithm("metagan", ways=2, in_channels=3, image_size=12, backbone_kwargs={"hidden": 4, "depth": 2})
    assert algo.generator.image_shape == (3, 28, 28)
    algo.outer_step([episode])  # 28×28 fakes are brought to 12×12
    grey = create_algorithm("metagan", ways=2, image_size=12, backbone_kwargs={"hidden": 4, "depth": 2})
    with pytest.raises(EpisodeError, match="channels=3"):
        grey.outer_step([episode])
    with pytest.raises(ValueError, match="protonet, maml"):
        create_algorithm("metagan", ways=2, learner="relation")


def _meta_config(overrides: list[str] = ()) -> object:
    raw = {
        "method": "meta", "seed": 0, "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": {"num_classes": 30, "per_class": 12, "size": 16, "seed": 0},
                 "batch_size": 16},
        "train": {"steps": 6, "log_every": 2, "eval_every": 3, "checkpoint_every": 3, "lr": 3e-3, "tensorboard": False},
        "meta": {"algorithm": "metagan", "backbone_kwargs": {"hidden": 8}, "meta_batch": 2, "queries": 3,
                 "val_episodes": 6, "options": {"g_width": 4, "g_image_size": 16},
                 "eval": {"settings": ["3w1s"], "episodes": 5, "queries": 3}},
    }
    return load_config(raw, list(overrides))


def test_metagan_through_the_meta_engine_method_resumes_exactly_and_evaluates(tmp_path, ctrl_c) -> None:
    assert "metagan" in ALGORITHMS
    ref = train(_meta_config(), out=tmp_path / "ref", progress_bar=False)
    assert ref.state == "finished" and 0.0 <= ref.final["eval/acc"] <= 1.0
    ctrl_c.at(3)
    stopped = train(_meta_config(), out=tmp_path / "run", progress_bar=False)
    assert stopped.state == "interrupted" and stopped.step == 4
    ctrl_c.off()
    done = resume(tmp_path / "run", progress_bar=False)
    assert done.final == ref.final
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "ref" / "checkpoints" / "step-00000006" / "tensors.safetensors"))
    b = load_file(str(tmp_path / "run" / "checkpoints" / "step-00000006" / "tensors.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any("generator" in k for k in a) and any("g_optimizer" in k for k in a)

    model = load_model(tmp_path / "ref")
    assert isinstance(model.algorithm, MetaGAN)
    record = evaluate_setting(model, resolve_target(model), parse_setting("3w1s", queries=3), episodes=5, seed=0)
    assert 0.0 <= record["accuracy"] <= 1.0 and record["episodes"] == 5

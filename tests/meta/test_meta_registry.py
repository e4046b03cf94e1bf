"""Every registered algorithm builds, takes an outer step, predicts, and round-trips its state; errors explain
themselves."""

from __future__ import annotations

import io

import pytest
import torch

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.errors import EpisodeError, MetaxferError, UnknownNameError
from metaxfer.meta import ALGORITHMS, MetaAlgorithm, create_algorithm
from metaxfer.models import BACKBONES

WAYS = 3


@pytest.fixture(scope="module")
def sampler() -> EpisodeSampler:
    domain = create_domain("synthetic", num_classes=8, per_class=6, size=16, seed=0)
    return EpisodeSampler(domain, ways=WAYS, shots=2, queries=2, seed=0)


def build(name: str, **kw) -> MetaAlgorithm:
    extra = {"num_classes": 8} if name.startswith("baseline") else {}
    if name == "scratch":
        extra["steps"] = 3
    if name.startswith("baseline"):
        extra["finetune_steps"] = 3
    torch.manual_seed(0)
    return create_algorithm(name, ways=WAYS, image_size=16, backbone_kwargs={"hidden": 4}, **extra, **kw)


def snapshot(algo: MetaAlgorithm) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in algo.state_dict().items()}


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_algorithm_steps_predicts_and_round_trips(name: str, sampler: EpisodeSampler) -> None:
    algo = build(name)
    episodes = [sampler.sample() for _ in range(2)]
    if algo.needs_meta_training:
        before = snapshot(algo)
        metrics = algo.outer_step(episodes)
        assert metrics and all(isinstance(v, float) for v in metrics.values())
        after = snapshot(algo)
        assert any(not torch.equal(before[k], after[k]) for k in before), "outer_step changed nothing"
        out = algo.meta_loss(episodes[0])
        assert out.loss.dim() == 0 and out.loss.requires_grad
    else:
        with pytest.raises(MetaxferError, match="nothing to meta-train"):
            algo.outer_step(episodes)

    state = snapshot(algo)
    logits = algo.predict(episodes[0])
    assert logits.shape == (WAYS * 2, WAYS) and not logits.requires_grad
    assert torch.isfinite(logits).all()
    assert all(torch.equal(state[k], v) for k, v in algo.state_dict().items()), "predict changed the meta-parameters"
    batch = algo.predict_batch(episodes)
    assert torch.allclose(batch[0], logits, atol=1e-5)

    # Round trip of parameters, buffers and optimiser state through torch.save / weights_only load.
    buf = io.BytesIO()
    torch.save(algo.training_state(), buf)
    buf.seek(0)
    clone = build(name)
    clone.load_training_state(torch.load(buf, weights_only=True))
    assert all(torch.equal(v, clone.state_dict()[k]) for k, v in algo.state_dict().items())
    assert torch.allclose(clone.predict(episodes[0]), logits, atol=1e-6)
    if algo.needs_meta_training:
        torch.manual_seed(1)
        m1 = algo.outer_step(episodes)
        torch.manual_seed(1)
        m2 = clone.outer_step(episodes)
        assert m1 == pytest.approx(m2, rel=1e-5)
        assert all(torch.allclose(v, clone.state_dict()[k], atol=1e-6) for k, v in algo.state_dict().items())


def test_unknown_names_and_options_explain_themselves() -> None:
    with pytest.raises(UnknownNameError, match="maml"):
        create_algorithm("mamll")
    with pytest.raises(TypeError, match="inner_lr"):
        create_algorithm("maml", inner_rate=0.1)
    with pytest.raises(TypeError, match="num_classes"):
        create_algorithm("baseline")
    with pytest.raises(UnknownNameError, match="conv4"):
        create_algorithm("protonet", backbone="conv6")
    with pytest.raises(ValueError, match="adam"):
        create_algorithm("maml", optimizer="lbfgs")


def test_episode_shape_errors(sampler: EpisodeSampler) -> None:
    algo = build("maml")
    five_way = EpisodeSampler(sampler.domain, ways=5, shots=1, queries=1, seed=0).sample()
    with pytest.raises(EpisodeError, match="ways=5"):
        algo.outer_step([five_way])
    proto = build("protonet")
    other = EpisodeSampler(sampler.domain, ways=WAYS, shots=1, queries=2, seed=0).sample()
    with pytest.raises(EpisodeError, match="one shape"):
        proto.outer_step([sampler.sample(), other])
    with pytest.raises(EpisodeError, match="empty"):
        proto.outer_step([])
    baseline = create_algorithm("baseline", num_classes=4, image_size=16, backbone_kwargs={"hidden": 4})
    with pytest.raises(EpisodeError, match="num_classes"):
        baseline.meta_loss([sampler.sample()])  # classes up to 7, head of 4


def test_backbone_module_and_options_pass_through() -> None:
    from metaxfer.models import create_backbone

    net = create_backbone("mlp", image_size=16, hidden=(8,), num_classes=WAYS)
    algo = create_algorithm("metasgd", backbone=net, inner_lr=0.05, outer_lr=0.01, optimizer="sgd")
    assert algo.backbone is net
    assert isinstance(algo.optimizer, torch.optim.SGD) and algo.optimizer.param_groups[0]["lr"] == 0.01
    assert all(float(a.detach().min()) == pytest.approx(0.05) for a in algo.inner_lrs)
    custom = create_algorithm("protonet", image_size=16, optimizer=lambda ps: torch.optim.RMSprop(ps, lr=1e-4))
    assert isinstance(custom.optimizer, torch.optim.RMSprop)
    tr = create_algorithm("anil", norm="transductive", image_size=16)
    assert tr.backbone.norm_mode == "transductive"


def test_float64_and_grad_clip(sampler: EpisodeSampler) -> None:
    algo = create_algorithm("maml", ways=WAYS, image_size=16, backbone_kwargs={"hidden": 4}, grad_clip=1e-3,
                            learn_inner_lr=True)
    algo.double()
    metrics = algo.outer_step([sampler.sample()])
    assert "grad_norm" in metrics
    assert algo.predict(sampler.sample()).dtype == torch.float64


#: Small options per backbone; a newly registered backbone must be added here.
SMALL_BACKBONES = {"conv4": {"hidden": 4}, "resnet12": {"channels": (4, 4, 6, 6)}, "mlp": {"hidden": (8,)}}


@pytest.mark.parametrize("backbone", BACKBONES.names())
@pytest.mark.parametrize("name", ["maml", "anil", "protonet"])
def test_algorithms_run_on_every_backbone(backbone: str, name: str, sampler: EpisodeSampler) -> None:
    small = SMALL_BACKBONES[backbone]
    torch.manual_seed(0)
    algo = create_algorithm(name, backbone=backbone, ways=WAYS, image_size=16, backbone_kwargs=small)
    metrics = algo.outer_step([sampler.sample(), sampler.sample()])
    assert metrics["loss"] == metrics["loss"]
    assert algo.predict(sampler.sample()).shape == (WAYS * 2, WAYS)

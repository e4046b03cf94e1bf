"""ProtoNets and Matching Networks compute what their papers define; the batched meta-batch path equals the
per-task computation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from metaxfer.data import EpisodeSampler, create_domain
from metaxfer.errors import EpisodeError
from metaxfer.meta import MatchingNetwork, ProtoNet, create_algorithm, squared_distances
from metaxfer.meta.common import weighted_cross_entropy
from metaxfer.models import NormPlan, create_backbone


@pytest.fixture(scope="module")
def sampler() -> EpisodeSampler:
    domain = create_domain("synthetic", num_classes=10, per_class=8, size=16, seed=3)
    return EpisodeSampler(domain, ways=4, shots=3, queries=2, seed=0)


def features(net, episode, norm: str):
    s = episode.support_x.double() / 255
    q = episode.query_x.double() / 255
    if norm == "support":
        f = net.forward_features(torch.cat([s, q]), norm=NormPlan(1, len(s)))
        return f[: len(s)], f[len(s) :]
    return net.forward_features(s), net.forward_features(q)


@pytest.mark.parametrize("norm", ["support", "transductive"])
def test_protonet_logits_are_negative_squared_distances_to_class_means(sampler, norm: str) -> None:
    torch.manual_seed(0)
    net = create_backbone("conv4", hidden=6, image_size=16, norm=norm).double()
    algo = ProtoNet(net)
    episodes = [sampler.sample() for _ in range(3)]
    logits = algo.predict_batch(episodes)
    losses = []
    for episode, got in zip(episodes, logits):
        fs, fq = features(net, episode, norm)
        means = torch.stack([fs[episode.support_y == c].mean(0) for c in range(episode.ways)])
        expected = -torch.stack([((fq - m) ** 2).sum(-1) for m in means], dim=1)
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)
        losses.append(F.cross_entropy(expected, episode.query_y))
    out = algo.meta_loss(episodes)
    assert float(out.loss.detach()) == pytest.approx(float(torch.stack(losses).detach().mean()), rel=1e-10)


@pytest.mark.parametrize("norm", ["support", "transductive"])
def test_protonet_with_support_weights_uses_weighted_class_means(sampler, norm: str) -> None:
    torch.manual_seed(0)
    net = create_backbone("conv4", hidden=6, image_size=16, norm=norm).double()
    algo = ProtoNet(net)
    plain = [sampler.sample() for _ in range(2)]
    weights = [torch.rand(e.support_y.shape, generator=torch.Generator().manual_seed(i)) + 0.1
               for i, e in enumerate(plain)]
    weighted = [dataclasses.replace(e, support_weight=w) for e, w in zip(plain, weights)]
    mixed = [weighted[0], plain[1]]  # a meta-batch where one episode has no weights: that one weighs all shots 1
    for got, episode, w in zip(algo.predict_batch(mixed), mixed, [weights[0], torch.ones(plain[1].support_y.shape)]):
        fs, fq = features(net, episode, norm)
        w = w.double()
        means = torch.stack([(w[episode.support_y == c, None] * fs[episode.support_y == c]).sum(0)
                             / w[episode.support_y == c].sum() for c in range(episode.ways)])
        expected = -torch.stack([((fq - m) ** 2).sum(-1) for m in means], dim=1)
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)
    ones = dataclasses.replace(plain[0], support_weight=torch.ones(plain[0].support_y.shape))
    assert torch.allclose(algo.predict(ones), algo.predict(plain[0]), rtol=1e-12, atol=1e-12)
    out = algo.meta_loss(weighted)  # meta-training takes weights too, and its loss has a gradient
    out.loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_matching_network_with_support_weights_attends_in_proportion_to_them(sampler) -> None:
    torch.manual_seed(0)
    net = create_backbone("conv4", hidden=6, image_size=16).double()
    algo = MatchingNetwork(net, scale=3.0)
    episode = sampler.sample()
    w = torch.rand(episode.support_y.shape, generator=torch.Generator().manual_seed(1)) + 0.1
    got = algo.predict(dataclasses.replace(episode, support_weight=w))
    fs, fq = features(net, episode, "support")
    attention = w.double() * torch.exp(3.0 * F.cosine_similarity(fq.unsqueeze(1), fs.unsqueeze(0), dim=-1))
    probs = (attention / attention.sum(-1, keepdim=True)) @ F.one_hot(episode.support_y, episode.ways).double()
    assert torch.allclose(got, probs.log(), atol=1e-10)
    zero_class = torch.ones(episode.support_y.shape)
    zero_class[episode.support_y == 2] = 0.0
    with pytest.raises(EpisodeError, match="only support examples of weight 0"):
        algo.predict(dataclasses.replace(episode, support_weight=zero_class))


def test_weighted_cross_entropy_is_the_weighted_mean_of_the_losses() -> None:
    logits = torch.randn(2, 5, 3, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 5))
    w = torch.rand(2, 5, dtype=torch.float64) + 0.1
    got = weighted_cross_entropy(logits, labels, w)
    each = -logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(got, (w * each).sum(-1) / w.sum(-1), atol=1e-12)
    assert torch.allclose(weighted_cross_entropy(logits, labels, torch.ones(2, 5)), each.mean(-1), atol=1e-12)


@pytest.mark.parametrize("name", ["scratch", "baseline", "baseline++"])
def test_fine_tuning_baselines_weigh_their_support_losses(sampler, name: str) -> None:
    """Weights of 1 give the unweighted fit; other weights change it (the loss is their weighted mean)."""
    torch.manual_seed(0)
    options = {"steps": 5} if name == "scratch" else {"finetune_steps": 5, "num_classes": 10}
    algo = create_algorithm(name, ways=4, image_size=16, backbone_kwargs={"hidden": 6}, **options).double()
    episode = sampler.sample()
    plain = algo.predict(episode)
    ones = algo.predict(dataclasses.replace(episode, support_weight=torch.ones(episode.support_y.shape)))
    assert torch.allclose(plain, ones, atol=1e-9)
    w = torch.ones(episode.support_y.shape)
    w[::3] = 0.05
    assert not torch.allclose(plain, algo.predict(dataclasses.replace(episode, support_weight=w)), atol=1e-6)
    if name != "scratch":  # pre-training takes every image alike: weighted episodes are refused there
        with pytest.raises(EpisodeError, match="not for pre-training"):
            algo.meta_loss([dataclasses.replace(episode, support_weight=w)])


def test_support_weights_are_refused_where_they_would_be_ignored(sampler) -> None:
    episode = sampler.sample()
    weighted = dataclasses.replace(episode, support_weight=torch.full(episode.support_y.shape, 0.5))
    maml = create_algorithm("maml", backbone="conv4", ways=4, image_size=16, backbone_kwargs={"hidden": 4})
    with pytest.raises(EpisodeError, match="MAML does not weigh support images.*made_weight=1.*protonet"):
        maml.predict(weighted)
    proto = ProtoNet(create_backbone("conv4", hidden=4, image_size=16))
    with pytest.raises(EpisodeError, match="finite and non-negative"):
        proto.predict(dataclasses.replace(episode, support_weight=torch.full(episode.support_y.shape, -1.0)))
    with pytest.raises(EpisodeError, match="shaped like support_y"):
        proto.predict(dataclasses.replace(episode, support_weight=torch.ones(3)))
    zero_class = torch.ones(episode.support_y.shape)
    zero_class[episode.support_y == 1] = 0.0
    with pytest.raises(EpisodeError, match="only ones of weight 0"):
        proto.predict(dataclasses.replace(episode, support_weight=zero_class))


def test_squared_distances_brute_force() -> None:
    x, y = torch.randn(2, 5, 7, dtype=torch.float64), torch.randn(2, 3, 7, dtype=torch.float64)
    assert torch.allclose(squared_distances(x, y), ((x.unsqueeze(2) - y.unsqueeze(1)) ** 2).sum(-1), atol=1e-12)
    assert float(squared_distances(x, x).diagonal(dim1=1, dim2=2).abs().max()) < 1e-12


def test_matching_network_is_attention_over_support_labels(sampler) -> None:
    torch.manual_seed(0)
    net = create_backbone("conv4", hidden=6, image_size=16).double()
    algo = MatchingNetwork(net, scale=3.0)
    episodes = [sampler.sample() for _ in range(2)]
    for episode, got in zip(episodes, algo.predict_batch(episodes)):
        fs, fq = features(net, episode, "support")
        attention = torch.softmax(3.0 * F.cosine_similarity(fq.unsqueeze(1), fs.unsqueeze(0), dim=-1), dim=-1)
        probs = attention @ F.one_hot(episode.support_y, episode.ways).double()
        assert torch.allclose(got, probs.log(), atol=1e-10)


def test_matching_network_full_context_embeddings(sampler) -> None:
    torch.manual_seed(0)
    algo = create_algorithm("matchingnet", fce=True, fce_steps=2, image_size=16, backbone_kwargs={"hidden": 6})
    episodes = [sampler.sample() for _ in range(2)]
    out = algo.meta_loss(episodes)
    out.loss.backward()
    assert algo.support_lstm.weight_ih_l0.grad is not None and algo.query_cell.weight_hh.grad.abs().sum() > 0
    logits = algo.predict_batch(episodes)
    assert torch.allclose(logits[0].exp().sum(-1), torch.ones(8), atol=1e-5)
    # The context changes the embedding: FCE predictions differ from the plain ones with the same backbone.
    plain = MatchingNetwork(algo.backbone, fce=False)
    assert not torch.allclose(plain.predict(episodes[0]), logits[0])
    # Batched equals one task at a time (the support LSTM runs per task).
    assert torch.allclose(algo.predict(episodes[1]), logits[1], atol=1e-5)

"""DAGAN: same-class pairs, the conditioned generator and pair discriminator, training steps, augmentation."""

from __future__ import annotations

import pytest
import torch

from metaxfer.data import create_domain
from metaxfer.errors import MetaxferError
from metaxfer.gan import DAGANGenerator, PairDiscriminator, augment, create_objective, gan_step, sample_pairs
from metaxfer.gan.utils import uint8_to_gan


def test_pairs_are_distinct_examples_of_one_class() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 3, 3])
    anchor, partner = sample_pairs(labels, 500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels[anchor], labels[partner])
    assert bool((anchor != partner).all())
    # every other member of the anchor's class is drawn as a partner
    for i in range(len(labels)):
        mates = set(partner[anchor == i].tolist())
        assert mates == {j for j in range(len(labels)) if labels[j] == labels[i] and j != i}
    again = sample_pairs(labels, 500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], anchor) and torch.equal(again[1], partner)


def test_pairs_refuse_singleton_classes() -> None:
    with pytest.raises(MetaxferError, match=r"classes \[1\] have one"):
        sample_pairs(torch.tensor([0, 0, 1, 2, 2]), 4)


def nets() -> tuple[DAGANGenerator, PairDiscriminator]:
    torch.manual_seed(0)
    return DAGANGenerator(8, image_size=16, width=8), PairDiscriminator(image_size=16, width=8)


def test_generator_and_pair_discriminator_shapes_and_errors() -> None:
    g, d = nets()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    out = g(g.sample_latent(3), x)
    assert out.shape == x.shape and float(out.detach().abs().max()) <= 1
    assert not torch.allclose(out, g(g.sample_latent(3), x))  # noise matters
    assert d(out, x).shape == (3,)
    with pytest.raises(ValueError, match="condition images"):
        g(g.sample_latent(3))
    with pytest.raises(ValueError, match=r"\(3, 8\)"):
        g(torch.randn(2, 8), x)


def test_training_steps_with_the_source_image_as_condition() -> None:
    domain = create_domain("synthetic", num_classes=4, per_class=6, size=16, cache=False)
    g, d = nets()
    opt_g = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.0, 0.9))
    rng = torch.Generator().manual_seed(0)
    objective = create_objective("wgan-gp")
    for _ in range(3):
        anchor, partner = sample_pairs(domain.labels, 8, generator=rng)
        metrics = gan_step(
            g, d, uint8_to_gan(domain.images[partner]), uint8_to_gan(domain.images[anchor]),
            g_optimizer=opt_g, d_optimizer=opt_d, objective=objective, rng=rng,
        )
    assert {"d/gp", "d/loss", "g/loss"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_augment_keeps_labels_order_and_mode() -> None:
    g, _ = nets()
    images = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8)
    labels = torch.tensor([7, 8, 9])
    out, out_labels = augment(g, images, labels, per_image=2, rng=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == (9, 1, 16, 16)
    assert out_labels.tolist() == [7, 8, 9, 7, 7, 8, 8, 9, 9]
    assert torch.equal(out[:3], images)
    made, made_labels = augment(g, images, labels, per_image=1, include_originals=False, batch_size=2)
    assert made.shape == (3, 1, 16, 16) and made_labels.tolist() == [7, 8, 9]
    assert g.training

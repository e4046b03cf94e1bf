"""Every registered generator and discriminator is built and run; conditioning, sizes and state round trips."""

from __future__ import annotations

import pytest
import torch

from metaxfer.errors import UnknownNameError
from metaxfer.gan import DISCRIMINATORS, GENERATORS, create_discriminator, create_generator
from metaxfer.gan.cyclegan import PatchDiscriminator, ResnetTranslator
from metaxfer.gan.networks import DCGANDiscriminator, resolution_plan


@pytest.mark.parametrize("name", GENERATORS.names())
@pytest.mark.parametrize("num_classes", [0, 3])
@pytest.mark.parametrize(("size", "channels"), [(16, 1), (28, 1), (32, 3)])
def test_every_generator_makes_images_in_range(name: str, num_classes: int, size: int, channels: int) -> None:
    torch.manual_seed(0)
    g = create_generator(name, image_size=size, channels=channels, num_classes=num_classes, width=8)
    z = g.sample_latent(4, generator=torch.Generator().manual_seed(0))
    labels = g.sample_labels(4)
    out = g(z, labels)
    assert out.shape == (4, channels, size, size) == (4, *g.image_shape)
    assert float(out.detach().abs().max()) <= 1.0
    out.mean().backward()  # differentiable end to end
    assert all(p.grad is not None for p in g.parameters())


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
@pytest.mark.parametrize("conditioning", ["none", "projection", "auxiliary"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_every_discriminator_scores_images(name: str, conditioning: str, spectral_norm: bool) -> None:
    torch.manual_seed(0)
    num_classes = 0 if conditioning == "none" else 5
    kw = dict(
        image_size=32, channels=3, num_classes=num_classes, conditioning=conditioning, spectral_norm=spectral_norm
    )
    if name == "patch" and num_classes:
        with pytest.raises(ValueError, match="unconditional"):
            create_discriminator(name, **kw, width=8)
        return
    d = create_discriminator(name, **kw, width=8)
    x, labels = torch.randn(4, 3, 32, 32), torch.randint(5, (4,))
    y = labels if num_classes else None
    scores, logits = d.scores_and_classes(x, y)
    assert scores.shape == ((4, 1, 2, 2) if name == "patch" else (4,))
    d.eval()  # no power iteration: two calls see the same weights
    assert torch.equal(d(x, y), d.scores_and_classes(x, y)[0])
    assert (logits is not None) == (conditioning == "auxiliary")
    if logits is not None:
        assert logits.shape == (4, 5)


def test_projection_adds_the_class_embedding_inner_product() -> None:
    torch.manual_seed(0)
    d = create_discriminator("resnet", image_size=16, channels=1, num_classes=3, width=8).eval()
    x = torch.randn(6, 1, 16, 16)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    features = d.forward_features(x)
    expected = d.head(features).squeeze(1) + (d.embed.weight[labels] * features).sum(1)
    torch.testing.assert_close(d(x, labels), expected)
    assert not torch.allclose(d(x, labels), d(x, labels.roll(1)))
    with pytest.raises(ValueError, match="pass the images' labels"):
        d(x)


def test_conditional_generator_uses_labels_and_checks_them() -> None:
    torch.manual_seed(0)
    g = create_generator("dcgan", image_size=16, channels=1, num_classes=3, width=8).eval()
    z = g.sample_latent(2)
    assert not torch.allclose(g(z, torch.tensor([0, 0])), g(z, torch.tensor([1, 1])))
    with pytest.raises(ValueError, match="pass labels"):
        g(z)
    with pytest.raises(ValueError, match=r"\(N, 100\)"):
        g(torch.randn(2, 7), torch.tensor([0, 1]))
    unconditional = create_generator("resnet", image_size=16, channels=1, width=8)
    assert unconditional.sample_labels(3) is None
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(unconditional.sample_latent(2), torch.tensor([0, 1]))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_state_dict_round_trip_gives_identical_outputs(name: str) -> None:
    torch.manual_seed(0)
    g = create_generator(name, image_size=16, channels=1, num_classes=2, width=8).eval()
    torch.manual_seed(1)
    twin = create_generator(name, image_size=16, channels=1, num_classes=2, width=8).eval()
    state = g.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    twin.load_state_dict(state)
    z, y = g.sample_latent(3), torch.tensor([0, 1, 1])
    torch.testing.assert_close(twin(z, y), g(z, y))


def test_spectral_norm_discriminator_state_round_trip() -> None:
    torch.manual_seed(0)
    kw = dict(image_size=16, channels=1, num_classes=2, spectral_norm=True, norm="none", width=8)
    d = create_discriminator("dcgan", **kw)
    d(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]))  # one power iteration
    twin = create_discriminator("dcgan", **kw)
    twin.load_state_dict(d.state_dict())
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 1, 0])
    torch.testing.assert_close(twin.eval()(x, y), d.eval()(x, y))


def test_resolution_plan_and_size_errors() -> None:
    assert resolution_plan(28) == (7, 2)
    assert resolution_plan(32) == (4, 3)
    assert resolution_plan(16) == (4, 2)
    assert resolution_plan(84) == (21, 2)
    for bad in (7, 27, 6):
        with pytest.raises(ValueError, match="even int >= 8"):
            resolution_plan(bad)


def test_configuration_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="conditioning='none' with num_classes=0"):
        DCGANDiscriminator(image_size=16, num_classes=0, conditioning="projection")
    with pytest.raises(ValueError, match="num_classes must be 0"):
        DCGANDiscriminator(image_size=16, num_classes=1)
    with pytest.raises(ValueError, match="unknown norm"):
        DCGANDiscriminator(image_size=16, norm="group")  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="dcgan"):
        create_generator("stylegan", image_size=16, channels=1)
    with pytest.raises(ValueError, match="at least 24 pixels"):
        PatchDiscriminator(1, layers=3, image_size=16)


def test_cyclegan_translator_size_and_parameter_count() -> None:
    torch.manual_seed(0)
    big = ResnetTranslator(3, 3, width=64, blocks=6)
    assert sum(p.numel() for p in big.parameters()) == 7_837_699  # the CycleGAN ResNet-6 generator
    small = ResnetTranslator(1, 3, width=8, blocks=2)
    assert small(torch.randn(2, 1, 16, 16)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="divisible by 4"):
        small(torch.randn(1, 1, 18, 18))

"""Generators and discriminators by name, with one factory per family.

Every entry is built from the same keyword arguments (``image_size``, ``channels``, ``num_classes`` and, for
discriminators, ``conditioning`` and ``spectral_norm``), so a config can name the architecture and a test can
build every entry.

Example:
    >>> g = create_generator("dcgan", image_size=28, channels=1, num_classes=10)
    >>> d = create_discriminator("resnet", image_size=28, channels=1, num_classes=10, conditioning="auxiliary")
    >>> GENERATORS.names(), DISCRIMINATORS.names()
    (['dcgan', 'resnet'], ['dcgan', 'patch', 'resnet'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metaxfer.gan.cyclegan import PatchDiscriminator
from metaxfer.gan.networks import (
    Conditioning,
    DCGANDiscriminator,
    DCGANGenerator,
    Discriminator,
    Generator,
    ResNetDiscriminator,
    ResNetGenerator,
)
from metaxfer.registry import Registry

__all__ = ["GENERATORS", "DISCRIMINATORS", "create_generator", "create_discriminator"]

GENERATORS: Registry[Callable[..., Generator]] = Registry("generator")
DISCRIMINATORS: Registry[Callable[..., Discriminator]] = Registry("discriminator")


def _patch(
    *,
    image_size: int,
    channels: int,
    num_classes: int = 0,
    conditioning: Conditioning | None = None,
    spectral_norm: bool = False,
    **options: Any,
) -> PatchDiscriminator:
    """The PatchGAN discriminator through the common factory signature (unconditional only)."""
    if num_classes or conditioning not in (None, "none"):
        raise ValueError(
            "the 'patch' discriminator is unconditional (CycleGAN); use 'dcgan' or 'resnet' for class conditioning"
        )
    return PatchDiscriminator(channels, image_size=image_size, spectral_norm=spectral_norm, **options)


GENERATORS.register("dcgan", DCGANGenerator)
GENERATORS.register("resnet", ResNetGenerator)
DISCRIMINATORS.register("dcgan", DCGANDiscriminator)
DISCRIMINATORS.register("resnet", ResNetDiscriminator)
DISCRIMINATORS.register("patch", _patch)


def create_generator(
    name: str, *, image_size: int, channels: int, num_classes: int = 0, latent_dim: int | None = None, **options: Any
) -> Generator:
    """Build a generator by name.

    Args:
        name: One of ``GENERATORS.names()`` (``dcgan``, ``resnet``).
        image_size: Output side (even, >= 8).
        channels: Output channels (1 or 3).
        num_classes: 0 (unconditional) or the number of classes.
        latent_dim: Size of ``z`` (default: the architecture's own, 100 for DCGAN, 128 for ResNet).
        **options: Further keyword arguments of the class (e.g. ``width``).

    Returns:
        The generator (in training mode).

    Raises:
        UnknownNameError: No such generator; the message lists the valid names.
    """
    factory = GENERATORS.get(name)
    if latent_dim is not None:
        options["latent_dim"] = latent_dim
    return factory(image_size=image_size, channels=channels, num_classes=num_classes, **options)


def create_discriminator(
    name: str,
    *,
    image_size: int,
    channels: int,
    num_classes: int = 0,
    conditioning: Conditioning | None = None,
    spectral_norm: bool = False,
    **options: Any,
) -> Discriminator:
    """Build a discriminator by name.

    Args:
        name: One of ``DISCRIMINATORS.names()`` (``dcgan``, ``patch``, ``resnet``).
        image_size: Input side.
        channels: Input channels.
        num_classes: 0 (unconditional) or the number of classes.
        conditioning: ``none``, ``projection`` or ``auxiliary`` (default: ``projection`` when ``num_classes``).
        spectral_norm: Spectrally normalise every layer.
        **options: Further keyword arguments of the class (e.g. ``width``, ``norm``).

    Returns:
        The discriminator (in training mode).

    Raises:
        UnknownNameError: No such discriminator; the message lists the valid names.
    """
    factory = DISCRIMINATORS.get(name)
    return factory(
        image_size=image_size,
        channels=channels,
        num_classes=num_classes,
        conditioning=conditioning,
        spectral_norm=spectral_norm,
        **options,
    )

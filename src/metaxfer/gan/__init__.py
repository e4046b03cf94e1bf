"""GANs as three separate layers: networks, pure loss functions, and step functions.

- :mod:`~metaxfer.gan.losses`: the objectives' formulas (minimax, non-saturating, least squares, hinge,
  Wasserstein) and the cycle, identity, auxiliary-class and task-consistency terms; :mod:`~metaxfer.gan.objectives`
  names them (:func:`create_objective`).
- :mod:`~metaxfer.gan.networks`: DCGAN and small ResNet generators/discriminators, unconditional or
  class-conditional (projection or auxiliary classifier); :mod:`~metaxfer.gan.registries` builds them by name.
- :mod:`~metaxfer.gan.steps`: discriminator and generator losses and steps (gradient penalty, R1, EMA);
  :mod:`~metaxfer.gan.cyclegan` (with CyCADA's task term) and :mod:`~metaxfer.gan.dagan` add their networks and
  steps; :mod:`~metaxfer.gan.utils` holds every shared helper once; :mod:`~metaxfer.gan.sampling` draws images and
  grids.

Networks work on float images in [-1, 1]; convert domain images with :func:`uint8_to_gan` / :func:`gan_to_uint8`.
All state is in ``state_dict()`` s of plain tensors (networks, :class:`EMA`, :class:`ImagePool`).
"""

from __future__ import annotations

from metaxfer.gan.cyclegan import (
    CycleGAN,
    PatchDiscriminator,
    ResnetTranslator,
    Translations,
    cyclegan_d_step,
    cyclegan_discriminator_loss,
    cyclegan_g_step,
    cyclegan_generator_loss,
    cyclegan_step,
)
from metaxfer.gan.dagan import DAGANGenerator, PairDiscriminator, augment, sample_pairs
from metaxfer.gan.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    Discriminator,
    Generator,
    ResNetDiscriminator,
    ResNetGenerator,
)
from metaxfer.gan.objectives import GAN_OBJECTIVES, Objective, create_objective, register_objective
from metaxfer.gan.registries import DISCRIMINATORS, GENERATORS, create_discriminator, create_generator
from metaxfer.gan.sampling import class_sample_grid, sample_images, translation_grid
from metaxfer.gan.steps import d_step, discriminator_loss, g_step, gan_step, generate, generator_loss
from metaxfer.gan.utils import (
    EMA,
    ImagePool,
    apply_spectral_norm,
    frozen_parameters,
    gan_to_uint8,
    gradient_penalty,
    init_weights,
    r1_penalty,
    uint8_to_gan,
)

__all__ = [
    "GAN_OBJECTIVES",
    "Objective",
    "create_objective",
    "register_objective",
    "GENERATORS",
    "DISCRIMINATORS",
    "create_generator",
    "create_discriminator",
    "Generator",
    "Discriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ResNetGenerator",
    "ResNetDiscriminator",
    "discriminator_loss",
    "generator_loss",
    "d_step",
    "g_step",
    "gan_step",
    "generate",
    "CycleGAN",
    "ResnetTranslator",
    "PatchDiscriminator",
    "Translations",
    "cyclegan_generator_loss",
    "cyclegan_discriminator_loss",
    "cyclegan_g_step",
    "cyclegan_d_step",
    "cyclegan_step",
    "DAGANGenerator",
    "PairDiscriminator",
    "sample_pairs",
    "augment",
    "sample_images",
    "class_sample_grid",
    "translation_grid",
    "EMA",
    "ImagePool",
    "gradient_penalty",
    "r1_penalty",
    "init_weights",
    "apply_spectral_norm",
    "frozen_parameters",
    "uint8_to_gan",
    "gan_to_uint8",
]

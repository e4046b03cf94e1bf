"""Cross-modal transfer: images generated from text descriptions in any of 14 languages, adapted to new styles.

- :mod:`~metaxfer.crossmodal.pairs`: descriptions of a domain's classes paired with its images (emoji names in 14
  languages, Unicode character names of glyphs), class and language splits;
- :mod:`~metaxfer.crossmodal.encoders`: the byte-level text encoder, an image encoder and their contrastive loss;
- :mod:`~metaxfer.crossmodal.networks`: the text-conditional generator and the matching-aware discriminator;
- :mod:`~metaxfer.crossmodal.losses`: GAN-INT-CLS's matching-aware loss over any GAN objective;
- :mod:`~metaxfer.crossmodal.training`: batches of pairs, the contrastive step, a functional GAN inner loop
  (fine-tuning, Reptile tasks) and Reptile's outer update;
- :mod:`~metaxfer.crossmodal.measures`: R-precision, class and group accuracy of separately trained classifiers,
  FID/KID;
- :mod:`~metaxfer.crossmodal.sampling` and :mod:`~metaxfer.crossmodal.grids`: images from prompts, and grids with the
  prompts printed under them in a font that has their characters.

The engine method is :mod:`metaxfer.methods.text2image`; the command is ``metaxfer generate``; ``docs/text2image.md``
describes the protocol.
"""

from __future__ import annotations

from metaxfer.crossmodal.encoders import (
    ByteTextEncoder,
    ImageEncoder,
    JointEmbedding,
    contrastive_loss,
    encode_bytes,
)
from metaxfer.crossmodal.grids import CaptionFonts, captioned_grid
from metaxfer.crossmodal.losses import (
    interpolate_texts,
    matching_aware_d_loss,
    mismatched_texts,
    t2i_discriminator_loss,
    t2i_generator_loss,
)
from metaxfer.crossmodal.measures import (
    MeasureKit,
    MeasureSettings,
    build_measure_kit,
    fit_joint_embedding,
    measure_images,
    r_precision,
    train_augmented_classifier,
)
from metaxfer.crossmodal.networks import MatchingDiscriminator, TextConditionalGenerator
from metaxfer.crossmodal.pairs import (
    PairSplit,
    TextImagePairs,
    default_group,
    normalize_description,
    pairs_from_domain,
    split_classes,
)
from metaxfer.crossmodal.sampling import generate_from_embeddings, generate_from_texts
from metaxfer.crossmodal.training import (
    Batch,
    NetState,
    PairBatcher,
    adapt_gan,
    bind,
    contrastive_batch_loss,
    lerp_buffers,
    net_state,
    reptile_surrogate,
)

__all__ = [
    "ByteTextEncoder",
    "ImageEncoder",
    "JointEmbedding",
    "contrastive_loss",
    "encode_bytes",
    "CaptionFonts",
    "captioned_grid",
    "interpolate_texts",
    "matching_aware_d_loss",
    "mismatched_texts",
    "t2i_discriminator_loss",
    "t2i_generator_loss",
    "MeasureKit",
    "MeasureSettings",
    "build_measure_kit",
    "fit_joint_embedding",
    "measure_images",
    "r_precision",
    "train_augmented_classifier",
    "MatchingDiscriminator",
    "TextConditionalGenerator",
    "PairSplit",
    "TextImagePairs",
    "default_group",
    "normalize_description",
    "pairs_from_domain",
    "split_classes",
    "generate_from_embeddings",
    "generate_from_texts",
    "Batch",
    "NetState",
    "PairBatcher",
    "adapt_gan",
    "bind",
    "contrastive_batch_loss",
    "lerp_buffers",
    "net_state",
    "reptile_surrogate",
]

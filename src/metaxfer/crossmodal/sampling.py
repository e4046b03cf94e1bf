"""Drawing images from a text-conditional generator: from description embeddings or from prompts.

Generation runs without gradients with the generator in eval mode (batch norm uses its running statistics); the
network's mode is restored afterwards. Noise comes from a CPU generator, so a seed gives the same images on every
device. A generator can also be run with other weights (an adapted :class:`~metaxfer.crossmodal.training.NetState`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from metaxfer.crossmodal.encoders import ByteTextEncoder
from metaxfer.crossmodal.training import NetState, bind
from metaxfer.gan.utils import gan_to_uint8, randn

__all__ = ["generate_from_embeddings", "generate_from_texts"]


@torch.no_grad()
def generate_from_embeddings(
    generator: nn.Module,
    text_emb: torch.Tensor,
    *,
    seed: int = 0,
    state: NetState | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """One image per description embedding.

    Args:
        generator: A :class:`~metaxfer.crossmodal.networks.TextConditionalGenerator`.
        text_emb: Description embeddings (N, text_dim).
        seed: Seed of the noise.
        state: Run the generator with these parameters and buffers instead of its own.
        batch_size: Images per forward pass.

    Returns:
        uint8 images on the CPU.

    Shape:
        (N, text_dim) → (N, C, H, W).
    """
    device = next(generator.parameters()).device
    z = randn(len(text_emb), generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    run = generator if state is None else bind(generator, {k: v.to(device) for k, v in state.params.items()},
                                              {k: v.to(device).clone() for k, v in state.buffers.items()})
    was = generator.training
    generator.eval()
    try:
        parts = [gan_to_uint8(run(z[s : s + batch_size].to(device), text_emb[s : s + batch_size].to(device))).cpu()
                 for s in range(0, len(text_emb), batch_size)]
    finally:
        generator.train(was)
    c, h, w = generator.image_shape
    return torch.cat(parts) if parts else torch.empty(0, c, h, w, dtype=torch.uint8)


def generate_from_texts(
    generator: nn.Module,
    encoder: ByteTextEncoder,
    prompts: Sequence[str],
    *,
    per_prompt: int = 1,
    seed: int = 0,
    state: NetState | None = None,
) -> torch.Tensor:
    """``per_prompt`` images for each prompt (any language; normalised and encoded by ``encoder``).

    Args:
        generator: The generator.
        encoder: The text encoder it was trained with.
        prompts: Descriptions.
        per_prompt: Images per prompt (different noise).
        seed: Seed of the noise.
        state: Optional other generator weights.

    Returns:
        uint8 images, the ``per_prompt`` images of each prompt together, prompts in order.

    Shape:
        → (len(prompts) · per_prompt, C, H, W).
    """
    emb = encoder.encode(list(prompts)).to(next(generator.parameters()).device)
    return generate_from_embeddings(generator, emb.repeat_interleave(per_prompt, dim=0), seed=seed, state=state)

"""Encoders of descriptions and images into one embedding space, trained here, contrastively.

- :class:`ByteTextEncoder`: a small byte-level CNN. A description is normalised
  (:func:`~metaxfer.crossmodal.pairs.normalize_description`), encoded as UTF-8 and cut to ``max_len`` bytes, so every
  script (Latin, Cyrillic, Arabic, Devanagari, CJK, emoji) is read the same way with a vocabulary of 256 and nothing
  is unknown. Embedding → a stack of residual dilated 1-D convolutions → mean and max pooling over the real bytes →
  linear → unit vector. No batch statistics: a description's embedding does not depend on its batch.
- :class:`ImageEncoder`: four stride-2 convolutions with group norm, global average pooling, linear → unit vector.
- :class:`JointEmbedding`: one of each and a learnt temperature; :func:`contrastive_loss` is the symmetric InfoNCE
  loss of CLIP over a batch of matching (description, image) pairs, optionally with a second description of each
  class (another language) as a further positive of the first.

Why contrastive pre-training, and not training the text encoder with the GAN: it is the GAN-INT-CLS recipe (Reed et
al. pre-train a character-level encoder with a joint image–text embedding, then freeze it), the frozen encoder makes
the GAN's condition stable, and the same code trains the *separate* pair of encoders that R-precision needs.

References:
    S. Reed, Z. Akata, H. Lee, B. Schiele. Learning Deep Representations of Fine-Grained Visual Descriptions. CVPR
    2016; A. Radford et al. Learning Transferable Visual Models From Natural Language Supervision. ICML 2021 (the
    symmetric contrastive loss); X. Zhang, J. Zhao, Y. LeCun. Character-level Convolutional Networks for Text
    Classification. NeurIPS 2015.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.crossmodal.pairs import normalize_description

__all__ = ["PAD_ID", "encode_bytes", "ByteTextEncoder", "ImageEncoder", "JointEmbedding", "contrastive_loss"]

#: Token id of padding; byte ``b`` has id ``b + 1``.
PAD_ID = 0


def encode_bytes(texts: Sequence[str], *, max_len: int) -> torch.Tensor:
    """Token ids of normalised descriptions: UTF-8 bytes + 1, padded with 0 to ``max_len``.

    A description longer than ``max_len`` bytes is cut at the last whole character that fits.

    Args:
        texts: Descriptions in any script.
        max_len: Tokens per row.

    Returns:
        int64 tensor.

    Shape:
        (len(texts), max_len).
    """
    out = torch.full((len(texts), max_len), PAD_ID, dtype=torch.int64)
    for row, text in enumerate(texts):
        data = normalize_description(text).encode("utf-8")
        if len(data) > max_len:
            data = data[:max_len].decode("utf-8", errors="ignore").encode("utf-8")
        if data:
            out[row, : len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).long() + 1
    return out


class _ConvBlock(nn.Module):
    """Residual block: GELU → dilated conv → GELU → conv (1×1), added to the input; padding positions stay zero."""

    def __init__(self, width: int, *, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (h + self.mix(F.gelu(self.conv(F.gelu(h))))) * mask


class ByteTextEncoder(nn.Module):
    """Byte-level CNN text encoder (see the module docstring).

    Args:
        dim: Size of the output embedding.
        width: Channels of the convolutions.
        layers: Residual blocks; block ``i`` has dilation ``2**(i % 3)``.
        kernel: Convolution width in bytes.
        max_len: Bytes read per description.

    Shape:
        tokens (N, max_len) int64 → (N, dim), unit L2 norm.
    """

    def __init__(self, *, dim: int = 128, width: int = 128, layers: int = 4, kernel: int = 5, max_len: int = 64) -> None:
        super().__init__()
        if min(dim, width, layers, kernel, max_len) < 1 or kernel % 2 == 0:
            raise ValueError(f"ByteTextEncoder: dim, width, layers, max_len must be >= 1 and kernel odd, got "
                             f"{dim}, {width}, {layers}, {max_len}, {kernel}")
        self.dim, self.width, self.layers, self.kernel, self.max_len = dim, width, layers, kernel, max_len
        self.embed = nn.Embedding(257, width, padding_idx=PAD_ID)
        self.blocks = nn.ModuleList([_ConvBlock(width, kernel=kernel, dilation=2 ** (i % 3)) for i in range(layers)])
        self.out = nn.Linear(2 * width, dim)

    @property
    def config(self) -> dict[str, int]:
        """Constructor arguments as plain data (what checkpoints store to rebuild the encoder)."""
        return {"dim": self.dim, "width": self.width, "layers": self.layers, "kernel": self.kernel,
                "max_len": self.max_len}

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embed token ids from :func:`encode_bytes` (see the class docstring for shapes)."""
        if tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(f"ByteTextEncoder expects int64 tokens shaped (N, max_len), got {tokens.dtype} "
                             f"{tuple(tokens.shape)}; make them with encode_bytes(texts, max_len={self.max_len})")
        # Columns after the longest text are padding for every row: dropping them changes no result (padding
        # positions are zeroed after every block, and the convolutions pad with zeros), only the cost.
        longest = int((tokens != PAD_ID).sum(dim=1).max()) if tokens.numel() else 0
        tokens = tokens[:, : max(1, longest)]
        mask = (tokens != PAD_ID).unsqueeze(1).float()  # (N, 1, L)
        h = self.embed(tokens).transpose(1, 2) * mask
        for block in self.blocks:
            h = block(h, mask)
        count = mask.sum(dim=2).clamp_min(1.0)
        mean = h.sum(dim=2) / count
        peak = h.masked_fill(mask == 0, -1e4).amax(dim=2) * mask.amax(dim=2)  # an empty text pools to zeros
        return F.normalize(self.out(torch.cat([mean, peak], dim=1)), dim=1)

    def encode(self, texts: Sequence[str], *, batch_size: int = 512) -> torch.Tensor:
        """Embed descriptions (normalised here) without gradients, on the encoder's device.

        Args:
            texts: Descriptions in any script.
            batch_size: Descriptions per forward pass.

        Returns:
            float32 (len(texts), dim), unit rows.
        """
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                parts = [self(encode_bytes(texts[s : s + batch_size], max_len=self.max_len).to(device))
                         for s in range(0, len(texts), batch_size)]
        finally:
            self.train(was)
        return torch.cat(parts) if parts else torch.empty(0, self.dim, device=device)


class ImageEncoder(nn.Module):
    """Image encoder: stride-2 3×3 convolutions (widths ×1, ×2, ×4, ×4), each with a one-group norm (over channels
    and positions, so colour differences between channels survive) and GELU, global average
    pooling, linear → unit vector.

    Args:
        channels: Input channels.
        dim: Embedding size.
        width: Channels of the first convolution.

    Shape:
        (N, channels, H, W) float in [-1, 1], H, W >= 16 → (N, dim), unit L2 norm.
    """

    def __init__(self, *, channels: int = 3, dim: int = 128, width: int = 32) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        c_in = channels
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, 2, 1), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(widths[-1], dim)
        self.channels, self.dim, self.width = channels, dim, width

    @property
    def config(self) -> dict[str, int]:
        return {"channels": self.channels, "dim": self.dim, "width": self.width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed images (see the class docstring for shapes)."""
        return F.normalize(self.out(self.body(x).mean(dim=(2, 3))), dim=1)


class JointEmbedding(nn.Module):
    """A text encoder, an image encoder and a learnt temperature: one shared embedding space.

    Args:
        text: The text encoder.
        image: The image encoder (same ``dim``).
        temperature: Initial softmax temperature τ (``logit_scale = log(1/τ)`` is learnt, capped at 100).
    """

    def __init__(self, text: ByteTextEncoder, image: ImageEncoder, *, temperature: float = 0.07) -> None:
        super().__init__()
        if text.dim != image.dim:
            raise ValueError(f"text ({text.dim}) and image ({image.dim}) embeddings must have the same size")
        self.text, self.image = text, image
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def config(self) -> dict[str, Any]:
        return {"text": self.text.config, "image": self.image.config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> JointEmbedding:
        """Rebuild the architecture from :attr:`config` (weights are loaded separately)."""
        return cls(ByteTextEncoder(**config["text"]), ImageEncoder(**config["image"]))

    def scale(self) -> torch.Tensor:
        """The logit scale 1/τ, capped at 100."""
        return self.logit_scale.exp().clamp(max=100.0)


def contrastive_loss(
    text_emb: torch.Tensor,
    image_emb: torch.Tensor,
    *,
    scale: torch.Tensor | float,
    text_emb2: torch.Tensor | None = None,
    text_weight: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE over a batch of matching pairs (row ``i`` of each input is one class).

    ``loss = ½ [CE(scale·T·Iᵀ, diag) + CE(scale·I·Tᵀ, diag)]``, plus ``text_weight`` times the same loss between two
    descriptions of each class (``text_emb2``, e.g. another language) when given.

    Args:
        text_emb: Unit description embeddings.
        image_emb: Unit image embeddings; row ``i`` shows the class of ``text_emb[i]``; no class twice in a batch.
        scale: Logit scale 1/τ.
        text_emb2: Optional second descriptions of the same classes.
        text_weight: Weight of the text–text term.

    Returns:
        ``(loss, metrics)`` with ``loss``, ``acc`` (text → image top-1 in the batch) and ``text_loss`` when used.

    Shape:
        all embeddings (B, D).
    """
    target = torch.arange(text_emb.shape[0], device=text_emb.device)
    logits = scale * text_emb @ image_emb.T
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    metrics = {"acc": float((logits.detach().argmax(dim=1) == target).float().mean())}
    if text_emb2 is not None and text_weight > 0:
        tt = scale * text_emb @ text_emb2.T
        text_loss = 0.5 * (F.cross_entropy(tt, target) + F.cross_entropy(tt.T, target))
        loss = loss + text_weight * text_loss
        metrics["text_loss"] = float(text_loss.detach())
    metrics["loss"] = float(loss.detach())
    return loss, metrics

"""A small Transformer encoder-decoder over one shared vocabulary (bytes / characters + language tags).

Pre-layer-norm blocks, sinusoidal positions (a non-persistent buffer, so ``state_dict()`` holds parameters only),
one embedding matrix shared by the encoder input, the decoder input and the output layer. Everything is a plain
``nn.Module`` whose forward also works through :func:`torch.func.functional_call` with a ``{name: tensor}``
parameter dictionary, which is how the adaptation code runs it.

``forward`` has three uses:

* ``model(src, tgt_in)`` → logits (B, T, V), for training;
* ``model(src)`` → ``(memory, src_keep)``, the encoder states and the source mask;
* ``model(None, tgt_in, memory=memory, src_keep=src_keep)`` → logits, the decoder alone, for incremental decoding.

References:
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017. Xiong et al., "On Layer Normalization in the
    Transformer Architecture", ICML 2020 (pre-LN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.text.tokenizer import PAD

__all__ = ["Seq2SeqTransformer", "expand_vocab"]


class _Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model, bias=False)  # a key bias shifts every score of a query equally: no effect
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        s = context.shape[1]
        h = self.heads
        q = self.q(x).view(b, t, h, d // h).transpose(1, 2)
        k = self.k(context).view(b, s, h, d // h).transpose(1, 2)
        v = self.v(context).view(b, s, h, d // h).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _FeedForward(nn.Module):
    def __init__(self, d_model: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ff_dim)
        self.fc2 = nn.Linear(ff_dim, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


class _EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = _Attention(d_model, heads, dropout)
        self.ff = _FeedForward(d_model, ff_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, mask))
        return x + self.drop(self.ff(self.norm2(x)))


class _DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = _Attention(d_model, heads, dropout)
        self.cross_attn = _Attention(d_model, heads, dropout)
        self.ff = _FeedForward(d_model, ff_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor,
                cross_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(y)
        y = y + self.drop(self.self_attn(h, h, self_mask))
        y = y + self.drop(self.cross_attn(self.norm2(y), memory, cross_mask))
        return y + self.drop(self.ff(self.norm3(y)))


def _sinusoids(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(length, dim)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer for short phrases.

    Args:
        vocab_size: Number of token ids (``Tokenizer.vocab_size``).
        d_model: Width of every layer.
        heads: Attention heads.
        encoder_layers: Encoder blocks.
        decoder_layers: Decoder blocks.
        ff_dim: Hidden width of the feed-forward blocks.
        dropout: Dropout rate (attention, residual, feed-forward).
        max_len: Longest sequence the model takes (tags and ``<eos>`` included).

    Shape:
        src (B, S) and tgt_in (B, T) token ids with ``<pad>`` = 0 after the tokens; logits (B, T, vocab_size);
        memory (B, S, d_model); src_keep (B, S) bool, True at real tokens.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        d_model: int = 128,
        heads: int = 4,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        ff_dim: int = 512,
        dropout: float = 0.1,
        max_len: int = 64,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(vocab_size=vocab_size, d_model=d_model, heads=heads,
                                           encoder_layers=encoder_layers, decoder_layers=decoder_layers,
                                           ff_dim=ff_dim, dropout=dropout, max_len=max_len)
        self.d_model, self.max_len = d_model, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.encoder = nn.ModuleList(_EncoderLayer(d_model, heads, ff_dim, dropout) for _ in range(encoder_layers))
        self.decoder = nn.ModuleList(_DecoderLayer(d_model, heads, ff_dim, dropout) for _ in range(decoder_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("positions", _sinusoids(max_len, d_model), persistent=False)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Seq2SeqTransformer:
        """A fresh model from :attr:`config` (as saved beside a checkpoint)."""
        return cls(**config)

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.max_len:
            raise ValueError(
                f"sequence of {ids.shape[1]} tokens is longer than the model's max_len={self.max_len}: drop longer "
                f"pairs (filter_by_length) or build the model with a larger max_len"
            )
        return self.drop(self.embed(ids) * math.sqrt(self.d_model) + self.positions[: ids.shape[1]])

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states and source mask: ``(memory (B, S, D), src_keep (B, S))``."""
        keep = src != PAD
        mask = keep[:, None, None, :]
        x = self._embed(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x), keep

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_keep: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V) for every position of ``tgt_in`` given the encoder states."""
        t = tgt_in.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril()[None, None]
        cross = src_keep[:, None, None, :]
        y = self._embed(tgt_in)
        for layer in self.decoder:
            y = layer(y, memory, causal, cross)
        return self.dec_norm(y) @ self.embed.weight.t()

    def forward(
        self,
        src: torch.Tensor | None,
        tgt_in: torch.Tensor | None = None,
        *,
        memory: torch.Tensor | None = None,
        src_keep: torch.Tensor | None = None,
        return_memory: bool = False,
    ) -> Any:
        """See the module docstring for the three call forms.

        Returns:
            logits; or ``(memory, src_keep)`` when ``tgt_in`` is None; or ``(logits, memory, src_keep)`` with
            ``return_memory=True``.
        """
        if memory is None:
            if src is None:
                raise ValueError("give src, or memory and src_keep from an earlier encoder pass")
            memory, src_keep = self.encode(src)
            if tgt_in is None:
                return memory, src_keep
        elif src_keep is None:
            raise ValueError("memory needs its src_keep mask")
        logits = self.decode(tgt_in, memory, src_keep)
        return (logits, memory, src_keep) if return_memory else logits


def expand_vocab(params: dict[str, torch.Tensor], *, new_size: int,
                 init_from: Sequence[int] = ()) -> dict[str, torch.Tensor]:
    """Grow the shared embedding of a parameter dictionary to ``new_size`` rows (e.g. after
    ``Tokenizer.add_languages``).

    New rows are the mean of rows ``init_from`` (e.g. the tags of the meta-training languages, so a new language starts
    from "some language" rather than from noise), or small random values when ``init_from`` is empty.

    Args:
        params: A model's ``state_dict()`` or parameter dictionary.
        new_size: The new vocabulary size (at least the old one).
        init_from: Existing row ids whose mean initialises the new rows.

    Returns:
        A new dictionary (other tensors shared, not copied).

    Raises:
        ValueError: ``new_size`` is smaller than the current vocabulary.
    """
    weight = params["embed.weight"]
    old = weight.shape[0]
    if new_size < old:
        raise ValueError(f"cannot shrink the vocabulary from {old} to {new_size} rows")
    if new_size == old:
        return dict(params)
    if init_from:
        rows = weight.detach()[list(init_from)].mean(0, keepdim=True).expand(new_size - old, -1)
    else:
        rows = torch.randn(new_size - old, weight.shape[1], dtype=weight.dtype, device=weight.device)
        rows = rows * weight.shape[1] ** -0.5
    out = dict(params)
    out["embed.weight"] = torch.cat([weight.detach(), rows.clone()])
    return out

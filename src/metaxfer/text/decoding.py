"""Greedy and beam-search decoding, and :func:`translate` from strings to strings.

Both decoders run the encoder once and the decoder once per output position on the growing prefix (phrases are
short, so no key/value cache is kept). They accept an optional ``{name: tensor}`` parameter dictionary, so adapted
weights can be decoded without loading them into the module.

Scores are sums of token log-probabilities (``<eos>`` included). Beam search ranks finished hypotheses by
``score / length ** length_penalty``; with ``length_penalty=0`` and a beam as wide as the number of hypotheses it is
an exact search (the tests check it against enumeration).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from metaxfer.errors import DataFormatError
from metaxfer.text.tokenizer import EOS, PAD, Tokenizer

__all__ = ["greedy_decode", "beam_search", "translate"]


def _runner(model: nn.Module, params: dict[str, torch.Tensor] | None) -> Callable[..., Any]:
    if params is None:
        return model
    return lambda *args, **kwargs: functional_call(model, params, args, kwargs)


def _mask(logits: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    if banned:
        logits = logits.clone()
        logits[:, list(banned)] = float("-inf")
    return logits.float().log_softmax(-1)


@torch.no_grad()
def greedy_decode(
    model: nn.Module,
    src: torch.Tensor,
    *,
    start_ids: torch.Tensor,
    max_new_tokens: int,
    banned: Sequence[int] = (),
    params: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the most likely token at every step.

    Args:
        model: A :class:`~metaxfer.text.transformer.Seq2SeqTransformer` (its train/eval mode is respected: call
            ``model.eval()`` first to switch dropout off).
        src: Encoder input (B, S).
        start_ids: First decoder token of each row (the target-language tag), (B,).
        max_new_tokens: Most tokens generated per row (``<eos>`` included).
        banned: Token ids never generated (``Tokenizer.non_output_ids()``).
        params: Optional parameter dictionary used instead of the module's own weights.

    Returns:
        ``(tokens, scores)``: tokens (B, L) with L ≤ max_new_tokens, ending with ``<eos>`` and ``<pad>`` after it;
        scores (B,) summed log-probabilities.
    """
    run = _runner(model, params)
    memory, keep = run(src)
    ys = start_ids.view(-1, 1).to(src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    scores = torch.zeros(src.shape[0], device=src.device)
    for _ in range(max_new_tokens):
        logp = _mask(run(None, ys, memory=memory, src_keep=keep)[:, -1], banned)
        best, tok = logp.max(-1)
        scores = scores + torch.where(done, torch.zeros_like(best), best)
        tok = torch.where(done, torch.full_like(tok, PAD), tok)
        ys = torch.cat([ys, tok[:, None]], dim=1)
        done = done | (tok == EOS)
        if bool(done.all()):
            break
    return ys[:, 1:], scores


@torch.no_grad()
def beam_search(
    model: nn.Module,
    src: torch.Tensor,
    *,
    start_ids: torch.Tensor,
    max_new_tokens: int,
    beam_size: int = 4,
    length_penalty: float = 1.0,
    banned: Sequence[int] = (),
    params: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam_size`` best prefixes of every row; return the best finished one.

    Args:
        model: The model (see :func:`greedy_decode`).
        src: Encoder input (B, S).
        start_ids: First decoder token of each row, (B,).
        max_new_tokens: Most tokens per hypothesis (``<eos>`` included); hypotheses still open then are finished
            as they are.
        beam_size: Beam width (1 gives greedy decoding).
        length_penalty: Exponent α of the length normalisation ``score / length ** α`` used to pick the final
            hypothesis (0: raw log-probability).
        banned: Token ids never generated.
        params: Optional parameter dictionary.

    Returns:
        ``(tokens, scores)`` as in :func:`greedy_decode`; scores are raw summed log-probabilities of the chosen
        hypotheses.

    Raises:
        ValueError: ``beam_size`` < 1.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    run = _runner(model, params)
    b, k = src.shape[0], beam_size
    memory, keep = run(src)
    memory, keep = memory.repeat_interleave(k, 0), keep.repeat_interleave(k, 0)
    ys = start_ids.to(src.device).repeat_interleave(k).view(-1, 1)
    scores = torch.full((b, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0
    finished = torch.zeros(b * k, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(b * k, device=src.device)
    for _ in range(max_new_tokens):
        logp = _mask(run(None, ys, memory=memory, src_keep=keep)[:, -1], banned)
        vocab = logp.shape[-1]
        logp[finished] = float("-inf")
        logp[finished, PAD] = 0.0  # a finished hypothesis carries on with padding, at no cost
        cand = (scores.view(-1, 1) + logp).view(b, k * vocab)
        scores, flat = cand.topk(k, dim=-1)
        origin = (torch.arange(b, device=src.device)[:, None] * k + flat // vocab).view(-1)
        tok = (flat % vocab).view(-1)
        was_finished = finished[origin]
        ys = torch.cat([ys[origin], tok[:, None]], dim=1)
        lengths = lengths[origin] + (~was_finished).float()
        finished = was_finished | (tok == EOS)
        if bool(finished.all()):
            break
    ranked = scores.view(-1) / lengths.clamp(min=1.0) ** length_penalty
    best = ranked.view(b, k).argmax(-1)
    rows = torch.arange(b, device=src.device) * k + best
    return ys[rows, 1:], scores.view(-1)[rows]


@torch.no_grad()
def translate(
    model: nn.Module,
    tokenizer: Tokenizer,
    sources: Sequence[str],
    lang: str,
    *,
    beam_size: int = 1,
    length_penalty: float = 1.0,
    batch_size: int = 128,
    max_new_tokens: int | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> list[str]:
    """Translate English phrases into ``lang``.

    The model is put in eval mode for the call and restored afterwards.

    Args:
        model: The model.
        tokenizer: Its tokenizer (with a tag for ``lang``).
        sources: Source phrases.
        lang: Target language.
        beam_size: 1 for greedy decoding, more for beam search.
        length_penalty: See :func:`beam_search`.
        batch_size: Phrases per forward pass.
        max_new_tokens: Longest output in tokens (default: the model's max_len - 1).
        params: Optional parameter dictionary used instead of the module's weights.

    Returns:
        One translation per source.

    Raises:
        DataFormatError: A source phrase is longer than the model accepts.
        UnknownNameError: The tokenizer has no tag for ``lang``.
    """
    tag = tokenizer.lang_id(lang)
    max_len = int(getattr(model, "max_len"))
    limit = max_new_tokens or max_len - 1
    device = next(iter(params.values())).device if params else next(model.parameters()).device
    rows = []
    for text in sources:
        ids = tokenizer.encode(text)
        if len(ids) + 2 > max_len:
            raise DataFormatError(f"source {text[:60]!r} has {len(ids) + 2} tokens with its tag and <eos>; the model "
                                  f"takes at most {max_len}: shorten it or split it into phrases")
        rows.append([tag, *ids, EOS])
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i: i + batch_size]
            width = max(len(r) for r in chunk)
            src = torch.tensor([r + [PAD] * (width - len(r)) for r in chunk], device=device)
            start = torch.full((len(chunk),), tag, device=device)
            common: dict[str, Any] = dict(start_ids=start, max_new_tokens=limit, banned=tokenizer.non_output_ids(),
                                          params=params)
            if beam_size == 1:
                tokens, _ = greedy_decode(model, src, **common)
            else:
                tokens, _ = beam_search(model, src, beam_size=beam_size, length_penalty=length_penalty, **common)
            out.extend(tokenizer.decode(row.tolist()) for row in tokens)
    finally:
        model.train(was_training)
    return out

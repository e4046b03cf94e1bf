"""The encoder-decoder (masks, call forms, vocabulary growth) and greedy / beam decoding (against enumeration)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.func import functional_call

from metaxfer.errors import DataFormatError
from metaxfer.text.adapt import fine_tune
from metaxfer.text.corpora import ParallelCorpus
from metaxfer.text.decoding import beam_search, greedy_decode, translate
from metaxfer.text.optim import OptimizerSpec, parameters_of
from metaxfer.text.tokenizer import BOS, EOS, PAD, UNK, Tokenizer
from metaxfer.text.transformer import Seq2SeqTransformer, expand_vocab


def _model(vocab: int = 20, *, seed: int = 0, **kw) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    args = dict(d_model=32, heads=4, encoder_layers=2, decoder_layers=2, ff_dim=64, dropout=0.0, max_len=16)
    args.update(kw)
    return Seq2SeqTransformer(vocab_size=vocab, **args).eval()


def test_call_forms_agree_and_functional_call_matches_the_module() -> None:
    model = _model()
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    tgt = torch.tensor([[5, 10, 11], [5, 12, 0]])
    logits = model(src, tgt)
    assert logits.shape == (2, 3, 20)
    memory, keep = model(src)
    assert memory.shape == (2, 4, 32) and keep.tolist() == [[True] * 4, [True, True, True, False]]
    assert torch.allclose(model(None, tgt, memory=memory, src_keep=keep), logits)
    params = {k: v * 1.0 for k, v in model.state_dict().items()}
    assert torch.allclose(functional_call(model, params, (src, tgt)), logits)
    with pytest.raises(ValueError, match="memory needs its src_keep"):
        model(None, tgt, memory=memory)


def test_decoder_is_causal() -> None:
    model = _model()
    src = torch.tensor([[5, 6, 2]])
    a = model(src, torch.tensor([[5, 10, 11, 12]]))
    b = model(src, torch.tensor([[5, 10, 15, 16]]))
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6)
    assert not torch.allclose(a[:, 2:], b[:, 2:])


def test_padding_changes_nothing() -> None:
    model = _model()
    src, tgt = torch.tensor([[5, 6, 2]]), torch.tensor([[5, 10]])
    ref = model(src, tgt)
    padded = model(torch.tensor([[5, 6, 2, PAD, PAD]]), torch.tensor([[5, 10, PAD]]))
    assert torch.allclose(padded[:, :2], ref, atol=1e-6)


def test_too_long_input_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="longer than the model's max_len=16"):
        _model()(torch.full((1, 17), 5), torch.full((1, 2), 5))


def test_expand_vocab_keeps_rows_and_starts_new_ones_at_the_mean() -> None:
    model = _model(vocab=10)
    params = model.state_dict()
    grown = expand_vocab(params, new_size=12, init_from=[7, 8])
    w = grown["embed.weight"]
    assert w.shape == (12, 32)
    assert torch.equal(w[:10], params["embed.weight"])
    assert torch.allclose(w[10], params["embed.weight"][[7, 8]].mean(0)) and torch.allclose(w[11], w[10])
    big = Seq2SeqTransformer.from_config({**model.config, "vocab_size": 12})
    big.load_state_dict(grown)
    with pytest.raises(ValueError, match="cannot shrink"):
        expand_vocab(params, new_size=5)


def _score(model: Seq2SeqTransformer, src: torch.Tensor, start: int, seq: list[int], banned: list[int]) -> float:
    """Summed log-probability of ``seq`` by teacher forcing, with banned tokens masked as the decoders do."""
    tgt_in = torch.tensor([[start, *seq[:-1]]])
    logits = model(src, tgt_in)[0].clone()
    logits[:, banned] = float("-inf")
    logp = logits.log_softmax(-1)
    return float(sum(logp[i, t] for i, t in enumerate(seq)).detach())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_is_exact_search_and_greedy_is_beam_one(seed: int) -> None:
    model = _model(vocab=7, seed=seed)  # outputs: <eos> and symbols 4, 5, 6
    banned = [PAD, BOS, UNK]
    src = torch.tensor([[4, 5, 6, EOS]])
    start = torch.tensor([4])
    hyps = [list(p) + [EOS] for n in range(3) for p in itertools.product([4, 5, 6], repeat=n)]
    hyps += [list(p) for p in itertools.product([4, 5, 6], repeat=3)]  # cut at max_new_tokens=3
    scored = {tuple(h): _score(model, src, 4, h, banned) for h in hyps}
    best = max(scored, key=scored.__getitem__)
    tokens, score = beam_search(model, src, start_ids=start, max_new_tokens=3, beam_size=64, length_penalty=0.0,
                                banned=banned)
    got = [t for t in tokens[0].tolist() if t != PAD]
    assert tuple(got) == best
    assert float(score) == pytest.approx(scored[best], abs=1e-4)
    g_tokens, g_score = greedy_decode(model, src, start_ids=start, max_new_tokens=3, banned=banned)
    b_tokens, b_score = beam_search(model, src, start_ids=start, max_new_tokens=3, beam_size=1, banned=banned)
    assert torch.equal(g_tokens, b_tokens) and torch.allclose(g_score, b_score)
    g = [t for t in g_tokens[0].tolist() if t != PAD]
    assert float(g_score) == pytest.approx(scored[tuple(g)], abs=1e-4)
    assert float(score) >= float(g_score) - 1e-6


def test_decoders_never_emit_banned_tokens_and_pad_after_eos() -> None:
    model = _model(vocab=12, seed=3)
    src = torch.tensor([[5, 6, 2], [7, 2, 0]])
    banned = [PAD, BOS, UNK, 10, 11]
    for tokens, _ in (greedy_decode(model, src, start_ids=torch.tensor([10, 11]), max_new_tokens=6, banned=banned),
                      beam_search(model, src, start_ids=torch.tensor([10, 11]), max_new_tokens=6, beam_size=3,
                                  banned=banned)):
        for row in tokens.tolist():
            assert not set(row) & {BOS, UNK, 10, 11}
            if EOS in row:
                assert all(t == PAD for t in row[row.index(EOS) + 1:])
            assert PAD not in row[: row.index(EOS) if EOS in row else len(row)]


def test_params_dictionary_decodes_like_loaded_weights() -> None:
    model = _model(vocab=12, seed=4)
    other = _model(vocab=12, seed=5)
    src = torch.tensor([[5, 6, 2]])
    kw = dict(start_ids=torch.tensor([10]), max_new_tokens=5, banned=[0, 1, 3])
    with_params = greedy_decode(model, src, params=other.state_dict(), **kw)[0]
    assert torch.equal(with_params, greedy_decode(other, src, **kw)[0])


def test_a_tiny_model_learns_to_translate_and_translate_round_trips_strings() -> None:
    tok = Tokenizer(languages=["xx"])
    words = ["cat", "dog", "sun", "map", "pen", "cup", "hat", "box"]
    corpus = ParallelCorpus("en", "xx", words, [w[::-1].upper() for w in words], words)
    torch.manual_seed(0)
    model = Seq2SeqTransformer(vocab_size=tok.vocab_size, d_model=32, heads=2, encoder_layers=1, decoder_layers=1,
                               ff_dim=64, dropout=0.0, max_len=8)
    params, losses = fine_tune(model, parameters_of(model), tok, corpus, steps=300,
                               optimizer=OptimizerSpec(kind="adam", lr=3e-3), label_smoothing=0.0)
    assert losses[-1] < 0.05 < losses[0]
    for beam in (1, 3):
        out = translate(model, tok, words, "xx", params=params, beam_size=beam, batch_size=3)
        assert out == corpus.targets
    with pytest.raises(DataFormatError, match="takes at most 8"):
        translate(model, tok, ["far too long"], "xx", params=params)

"""The byte/char tokenizer with language tags, and the batch tensors."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metaxfer.errors import DataFormatError, UnknownNameError
from metaxfer.text.corpora import ParallelCorpus
from metaxfer.text.tokenizer import (
    BYTE_OFFSET,
    EOS,
    PAD,
    Tokenizer,
    TranslationBatch,
    encode_pairs,
    filter_by_length,
)

TEXTS = ["Deutschland", "Франция", "東京タワー", "Հայաստան", "ქართული", "e\u0301te\u0301", "🇫🇷 flag",
         "שלום"]


@pytest.mark.parametrize("text", TEXTS)
def test_byte_tokenizer_round_trips_any_script(text: str) -> None:
    tok = Tokenizer(languages=["de", "fr"])
    ids = tok.encode(text)
    assert ids == [BYTE_OFFSET + b for b in text.encode("utf-8")]
    assert tok.decode(ids + [EOS, BYTE_OFFSET + 65]) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_char_tokenizer_round_trips_with_byte_fallback(text: str) -> None:
    tok = Tokenizer.train(["Привет мир", "Grüße", "東京"], languages=["ru"], min_count=1)
    assert tok.decode(tok.encode(text)) == text


def test_char_tokenizer_learns_frequent_non_ascii_characters_only() -> None:
    tok = Tokenizer.train(["Москва", "Минск", "Ålesund", "a b c"], languages=["ru", "nb"], min_count=2)
    assert tok.kind == "char"
    assert set(tok.chars) == {"М", "с", "к"}  # the Cyrillic letters seen twice; ASCII stays bytes
    assert len(tok.encode("Москва")) < len("Москва".encode("utf-8"))
    unseen = "Հայաստան"  # Armenian, never seen: bytes
    assert len(tok.encode(unseen)) == len(unseen.encode("utf-8"))
    assert tok.decode(tok.encode("Москва Հայաստան")) == "Москва Հայաստան"


def test_layout_tags_at_the_end_and_adding_languages_keeps_ids() -> None:
    tok = Tokenizer(languages=["fr", "es"])
    assert tok.vocab_size == 4 + 256 + 2
    assert tok.lang_id("fr") == 260 and tok.lang_id("es") == 261
    more = tok.add_languages(["de", "fr", "hy"])
    assert more.languages == ("fr", "es", "de", "hy")
    assert more.lang_id("fr") == 260 and more.lang_id("hy") == 263 and more.vocab_size == tok.vocab_size + 2
    assert more.encode("Grüße") == tok.encode("Grüße")
    assert set(more.non_output_ids()) == {0, 1, 3, 260, 261, 262, 263}


def test_unknown_language_tag_error_says_how_to_add_it() -> None:
    tok = Tokenizer(languages=["fr", "es"])
    with pytest.raises(UnknownNameError, match=r"no tag for language 'de'.*add_languages\(\['de'\]\).*expand_vocab"):
        tok.lang_id("de")


def test_state_dict_round_trip_is_json() -> None:
    tok = Tokenizer.train(["Москва", "Москва"], languages=["ru", "uk"])
    state = json.loads(json.dumps(tok.state_dict()))
    assert Tokenizer.from_state_dict(state) == tok
    with pytest.raises(DataFormatError, match="not a tokenizer state"):
        Tokenizer.from_state_dict({"vocab": []})
    with pytest.raises(ValueError, match="duplicate language"):
        Tokenizer(languages=["fr", "fr"])


def test_decode_skips_specials_and_tags_and_marks_broken_bytes() -> None:
    tok = Tokenizer(languages=["fr"])
    assert tok.decode([tok.lang_id("fr"), 1, *tok.encode("ok"), PAD, 3]) == "ok"
    broken = tok.encode("é")[:1]  # half of a two-byte character
    assert tok.decode(broken + tok.encode("a")) == "\ufffda"


def test_encode_pairs_layout() -> None:
    tok = Tokenizer(languages=["fr", "de"])
    batch = encode_pairs(tok, ["ab", "c"], ["xyz", "q"], ["de", "fr"], max_len=8)
    de, fr = tok.lang_id("de"), tok.lang_id("fr")
    a, b, c = (BYTE_OFFSET + ord(ch) for ch in "abc")
    x, y, z, q = (BYTE_OFFSET + ord(ch) for ch in "xyzq")
    assert batch.src.tolist() == [[de, a, b, EOS], [fr, c, EOS, PAD]]
    assert batch.tgt_in.tolist() == [[de, x, y, z], [fr, q, PAD, PAD]]
    assert batch.tgt_out.tolist() == [[x, y, z, EOS], [q, EOS, PAD, PAD]]
    assert batch.lang.tolist() == [1, 0]
    assert len(batch) == 2


def test_encode_pairs_errors() -> None:
    tok = Tokenizer(languages=["fr"])
    with pytest.raises(DataFormatError, match="needs 12 tokens, more than max_len=8: drop long pairs first"):
        encode_pairs(tok, ["a" * 10], ["b"], "fr", max_len=8)
    with pytest.raises(DataFormatError, match="2 sources but 1 targets"):
        encode_pairs(tok, ["a", "b"], ["c"], "fr", max_len=8)
    with pytest.raises(DataFormatError, match="1 languages for 2 pairs"):
        encode_pairs(tok, ["a", "b"], ["c", "d"], ["fr"], max_len=8)


def test_batch_index_trims_and_concat_pads() -> None:
    tok = Tokenizer(languages=["fr"])
    batch = encode_pairs(tok, ["abcdef", "a"], ["x", "xyz"], "fr", max_len=16)
    short = batch.index(torch.tensor([1]))
    assert short.src.shape == (1, 3) and short.tgt_in.shape == (1, 4)
    both = TranslationBatch.concat([short, batch.index(torch.tensor([0]))])
    assert both.src.shape == (2, 8) and torch.equal(both.src, batch.src[[1, 0]])


def test_filter_by_length_counts_what_it_drops() -> None:
    tok = Tokenizer(languages=["fr"])
    corpus = ParallelCorpus("en", "fr", ["short", "a much longer phrase"], ["court", "x"], ["1", "2"], {"dropped": {}})
    kept = filter_by_length(corpus, tok, max_len=10)
    assert kept.pairs() == [("short", "court")]
    assert kept.metadata["dropped"] == {"too long for the model": 1}

"""The byte-level text encoder reads every script: deterministic, distinct, batch-independent embeddings of the right
shape for Latin, CJK, Arabic, Devanagari, Cyrillic and emoji text; and it can learn to tell such descriptions apart."""

from __future__ import annotations

import pytest
import torch

from metaxfer.crossmodal.encoders import PAD_ID, ByteTextEncoder, ImageEncoder, JointEmbedding, contrastive_loss, encode_bytes
from metaxfer.crossmodal.pairs import normalize_description

SCRIPTS = {
    "latin": "grinning cat with smiling eyes",
    "german": "grinsende Katze mit lachenden Augen",
    "japanese": "ニヤッと笑う猫",
    "chinese": "微笑的猫",
    "korean": "웃는 고양이",
    "arabic": "قطة مبتسمة",
    "persian": "گربه\u200cی خندان",
    "devanagari": "मुस्कुराती बिल्ली",
    "russian": "улыбающийся кот",
    "emoji": "😺 + 🐱‍👤",
}


@pytest.fixture(scope="module")
def encoder() -> ByteTextEncoder:
    torch.manual_seed(0)
    return ByteTextEncoder(dim=24, width=16, layers=3, max_len=48).eval()


def test_every_script_gives_a_unit_embedding_of_the_right_shape(encoder):
    texts = list(SCRIPTS.values())
    emb = encoder.encode(texts)
    assert emb.shape == (len(texts), 24) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(texts)), atol=1e-5)


def test_embeddings_are_deterministic_and_independent_of_the_batch(encoder):
    texts = list(SCRIPTS.values())
    full = encoder.encode(texts)
    assert torch.equal(full, encoder.encode(texts))
    for i, text in enumerate(texts):  # alone, or beside texts of other lengths: the same vector
        assert torch.allclose(encoder.encode([text])[0], full[i], atol=1e-5), text
    shuffled = encoder.encode(texts[::-1])
    assert torch.allclose(shuffled.flip(0), full, atol=1e-5)
    # a fresh encoder with the same seed gives the same embeddings
    torch.manual_seed(0)
    again = ByteTextEncoder(dim=24, width=16, layers=3, max_len=48).eval()
    assert torch.equal(again.encode(texts), full)


def test_different_texts_in_every_script_are_distinct(encoder):
    emb = encoder.encode(list(SCRIPTS.values()))
    sims = emb @ emb.T
    off = sims[~torch.eye(len(emb), dtype=torch.bool)]
    assert float(off.max()) < 0.9999  # no two scripts collapse onto one vector
    # the bytes differ for every pair, even where characters share a script
    rows = encode_bytes(list(SCRIPTS.values()), max_len=48)
    assert len({tuple(r.tolist()) for r in rows}) == len(SCRIPTS)


def test_bytes_are_utf8_plus_one_cut_on_a_character_boundary():
    tokens = encode_bytes(["Ab", "猫猫猫"], max_len=7)
    assert tokens[0, :2].tolist() == [ord("a") + 1, ord("b") + 1] and tokens[0, 2:].eq(PAD_ID).all()
    # three 3-byte characters do not fit in 7 bytes: two whole ones are kept, no broken third
    kept = bytes(int(v) - 1 for v in tokens[1] if v != PAD_ID).decode("utf-8")
    assert kept == "猫猫"
    assert normalize_description("  Flag:_JAPAN  ") == "flag japan"
    assert normalize_description("ＡＢ") == "ａｂ"  # NFC (not NFKC): full-width letters stay full width, case folded
    assert encoder_input_error()


def encoder_input_error() -> bool:
    enc = ByteTextEncoder(dim=4, width=4, layers=1, max_len=8)
    with pytest.raises(ValueError, match="encode_bytes"):
        enc(torch.zeros(2, 8))  # float tokens: told how to make them
    with pytest.raises(ValueError, match="kernel"):
        ByteTextEncoder(kernel=4)
    return True


def test_contrastive_training_tells_the_scripts_apart():
    torch.manual_seed(1)
    texts = list(SCRIPTS.values())
    model = JointEmbedding(ByteTextEncoder(dim=16, width=16, layers=2, max_len=48),
                           ImageEncoder(channels=3, dim=16, width=4))
    images = torch.rand(len(texts), 3, 16, 16) * 2 - 1  # one "image" per description
    tokens = encode_bytes(texts, max_len=48)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss, metrics = contrastive_loss(model.text(tokens), model.image(images), scale=model.scale())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["acc"] == 1.0  # every description finds its own image among ten

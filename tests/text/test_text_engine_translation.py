"""The ``translation`` engine method: training through the engine, checkpoints that resume exactly, evaluation on
the validation languages, recipes that load, and loading a run for adaptation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metaxfer.engine import load_checkpoint, load_config, resume, train
from metaxfer.engine.config import ConfigError
from metaxfer.errors import MetaxferError
from metaxfer.methods.translation import load_translation_model, load_translation_split

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "device=cpu", "threads=1", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2",
    "translation.train_languages=[fr,es,ru]", "translation.val_languages=[nb]", "translation.test_languages=[de]",
    "translation.d_model=16", "translation.ff_dim=32", "translation.heads=2", "translation.eval_pairs=4",
    "translation.eval_steps=2", "translation.eval_k=4", "translation.batch_size=8", "translation.support_size=4",
    "translation.query_size=4", "translation.meta_batch=2",
]


def _cfg(recipe: str, *extra: str):
    return load_config(ROOT / "configs" / f"translation-{recipe}.yaml", [*TINY, *extra])


@pytest.mark.parametrize("recipe", ["joint", "fomaml", "reptile"])
def test_recipes_load_with_their_documented_settings(recipe):
    cfg = load_config(ROOT / "configs" / f"translation-{recipe}.yaml")
    assert cfg.method == "translation" and cfg.translation.init == recipe
    assert not set(cfg.translation.train_languages) & set(cfg.translation.test_languages)
    assert not set(cfg.translation.val_languages) & set(cfg.translation.test_languages)


def test_unknown_init_and_language_are_clear_errors():
    with pytest.raises(ConfigError, match="translation.init"):
        _cfg("joint", "translation.init=maml")
    cfg = _cfg("joint", "translation.val_languages=[xx_zz]")
    with pytest.raises(MetaxferError, match="unknown language code 'xx_zz'"):
        load_translation_split(cfg.translation, seed=0)


def test_split_of_the_method_has_no_leakage():
    cfg = _cfg("joint")
    split, tokenizer = load_translation_split(cfg.translation, seed=cfg.data.split_seed)
    split.check()
    assert tokenizer.languages == ("fr", "es", "ru")
    train_sources = {s.casefold() for c in split.meta_train().values() for s in c.sources}
    for lang in ("nb", "de"):
        held_out = {s.casefold() for s in split.evaluation(lang).sources}
        assert held_out and not held_out & train_sources


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / f"step-{step:08d}").state["modules"]["model"]


@pytest.mark.parametrize("recipe", ["joint", "reptile"])
def test_training_logs_chrf_and_resumes_exactly(recipe, tmp_path, ctrl_c):
    cfg = _cfg(recipe, "train.steps=4", *(["translation.adversary=true"] if recipe == "joint" else []))
    full = train(cfg, out=tmp_path / "full", progress_bar=False)
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/chrf" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(0.0 <= r["eval/chrf"] <= 100.0 and "eval/chrf_nb" in r for r in evals)
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    if recipe == "joint":
        assert "train/d_loss" in rows[0]
    assert full.best is not None

    # Interrupt a second run in the middle of iteration 3 (Ctrl-C), then resume it: same weights and metrics.
    ctrl_c.at(3, raise_keyboard_interrupt=True)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train(cfg, out=tmp_path / "cut", progress_bar=False)
    ctrl_c.off()
    resume(tmp_path / "cut", progress_bar=False)
    a, b = _weights(tmp_path / "full", 4), _weights(tmp_path / "cut", 4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows_cut = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert rows_cut == rows


def test_loaded_run_adds_a_new_tag_at_the_mean_of_the_training_tags(tmp_path):
    train(_cfg("fomaml", "train.steps=2"), out=tmp_path / "run", progress_bar=False)
    loaded = load_translation_model(tmp_path / "run")
    assert loaded.step == 2 and loaded.tokenizer.languages == ("fr", "es", "ru")
    model, params, tokenizer = loaded.with_language("hy")
    assert tokenizer.languages[-1] == "hy" and model.vocab_size == tokenizer.vocab_size == loaded.model.vocab_size + 1
    tags = loaded.params["embed.weight"][loaded.tokenizer.tag_ids()]
    assert torch.allclose(params["embed.weight"][tokenizer.lang_id("hy")], tags.mean(0))
    same_model, same_params, same_tok = loaded.with_language("es")
    assert same_tok is loaded.tokenizer and same_model is loaded.model


def test_loading_a_run_of_another_method_is_refused(tmp_path):
    train(load_config(ROOT / "configs" / "tiny.yaml", ["train.steps=2", "device=cpu"]), out=tmp_path / "cls",
          progress_bar=False)
    with pytest.raises(MetaxferError, match="'classifier' run"):
        load_translation_model(tmp_path / "cls")

"""The transfer comparison end to end on real CLDR pairs, at toy sizes, and its result table."""

from __future__ import annotations

import json

import pytest

from metaxfer.errors import UnknownNameError
from metaxfer.text.adapt import MetaConfig
from metaxfer.text.compare import INITIALIZERS, ComparisonConfig, ComparisonResult, prepare_split, run_comparison

pytest.importorskip("babel")
pytest.importorskip("sacrebleu")


def _tiny(**changes) -> ComparisonConfig:
    cfg = ComparisonConfig(
        train_languages=("fr", "es", "it"),
        val_languages=("nb",),
        test_languages=("de", "hy"),
        ks=(4,),
        model=dict(d_model=16, heads=2, encoder_layers=1, decoder_layers=1, ff_dim=32, dropout=0.0, max_len=24),
        pretrain_pairs=96,
        joint_batch=16,
        fomaml=MetaConfig(algorithm="fomaml", inner_steps=1, support_size=4, query_size=4, meta_batch=2),
        reptile=MetaConfig(algorithm="reptile", inner_steps=2, support_size=4, meta_batch=2),
        finetune_steps=(1, 3),
        finetune_batch=8,
        eval_pairs=4,
    )
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def test_registry_holds_every_method() -> None:
    assert INITIALIZERS.names() == ["fomaml", "joint", "joint-adv", "reptile", "scratch"]


def test_prepare_split_filters_long_pairs_and_has_no_leakage() -> None:
    split, tokenizer = prepare_split(_tiny())
    assert tokenizer.languages == ("fr", "es", "it")
    assert split.languages.unseen_script("hy") and not split.languages.unseen_script("de")
    probe = tokenizer.add_languages(["nb", "de", "hy"])
    for lang in ("fr", "de", "hy", "nb"):
        for part in split.phrases[lang].values():
            assert all(len(probe.encode(t)) + 1 <= 24 for t in part.targets)
    split.check()


def test_run_comparison_end_to_end_at_toy_size() -> None:
    lines: list[str] = []
    result = run_comparison(_tiny(), report=lines.append)
    assert set(result.scores) == {"scratch", "joint", "joint-adv", "fomaml", "reptile"}
    for method, by_k in result.scores.items():
        assert set(by_k) == {4} and set(by_k[4]) == {"de", "hy"}
        assert result.chosen_steps[method][4] in (1, 3)
        assert set(result.validation[method][4]) == {1, 3}
        for scores in by_k[4].values():
            assert set(scores) == {"chrf", "bleu", "exact"}
            assert all(0.0 <= v <= 100.0 for v in scores.values())
    assert result.pretrain["joint-adv"]["last"]["d_acc"] >= 0.0
    assert result.pretrain["fomaml"]["last"]["query_loss"] > 0.0
    table = result.table()
    assert table.splitlines()[0].split()[:3] == ["method", "K", "steps"]
    assert len(table.splitlines()) == 2 + 5
    assert any(line.startswith("meta-train: fr (Latn)") for line in lines)
    json.dumps(result.to_dict(), default=str)


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="Valid transfer method names: fomaml, joint, joint-adv"):
        run_comparison(_tiny(methods=("scratch", "maml++")))


def test_result_summary_and_paired_difference() -> None:
    scores = {m: {16: {x: {"chrf": base + i, "bleu": 0.0, "exact": 0.0} for i, x in enumerate(["de", "hy", "sl"])}}
              for m, base in (("scratch", 10.0), ("fomaml", 30.0))}
    result = ComparisonResult({}, "", scores, {"scratch": {16: 50}, "fomaml": {16: 20}}, {}, {})
    assert result.summary("fomaml", 16).mean == pytest.approx(31.0)
    diff = result.versus("fomaml", "scratch", 16)
    assert diff.mean == pytest.approx(20.0) and diff.half_width == pytest.approx(0.0)
    assert "20.0 ± 0.0" in result.table().splitlines()[-1]

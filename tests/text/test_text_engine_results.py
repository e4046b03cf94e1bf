"""``benchmarks/translation_results.py``: the JSON round trip of a comparison result, the rendered table, and the
marked section of docs/results.md (only the text between the markers changes)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

from metaxfer.text.compare import ComparisonConfig, ComparisonResult

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "translation_results.py"
spec = importlib.util.spec_from_file_location("translation_results", SCRIPT)
results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results)


def _result() -> ComparisonResult:
    langs = ("de", "sl", "hy")
    base = {"scratch": [5.0, 6.0, 4.0], "joint": [15.0, 14.0, 8.0], "reptile": [12.0, 13.0, 7.5]}
    scores = {m: {k: {x: {"chrf": v + k / 64, "bleu": 0.0, "exact": 0.0} for x, v in zip(langs, vals)}
                  for k in (16, 64)} for m, vals in base.items()}
    chosen = {m: {16: 50, 64: 50} for m in base}
    validation = {m: {16: {25: 1.0, 50: 2.0}} for m in base}
    config = asdict(ComparisonConfig(ks=(16, 64), finetune_steps=(25, 50), pretrain_pairs=1000))
    return ComparisonResult(config, "test: de, sl, hy", scores, chosen, validation, {}, seconds=3.0)


def test_json_round_trip_keeps_integer_keys_and_the_numbers():
    r = _result()
    back = results.result_from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.scores == r.scores and back.chosen_steps == r.chosen_steps and back.validation == r.validation
    assert back.table() == r.table()


def test_rendered_section_states_the_comparisons():
    text = results.render(_result(), command="python benchmarks/translation_results.py --quick", label="quick")
    assert "(quick)" in text and "--quick" in text
    assert "1,000 training pairs" in text and "chosen among [25, 50]" in text
    assert "reptile - joint, K=16" in text
    # reptile - scratch: +7, +7, +3.5 → interval above 0; reptile - joint: -3, -1, -0.5 → mean -1.5, CI crosses 0?
    lines = [x for x in text.splitlines() if x.startswith("- reptile, K = 16")]
    assert len(lines) == 1 and "beats it by more than the 95 % interval" in lines[0]
    d = _result().versus("reptile", "joint", 16)
    word = "worse than" if d.high < 0 else "not distinguishable from"
    assert word in lines[0]


def test_section_is_appended_then_replaced_and_other_text_is_kept(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nother helper's section\n", encoding="utf-8")
    results.write_section("first table", path=doc)
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Results\n\nother helper's section\n")
    assert text.rstrip().endswith(f"{results.START}\nfirst table\n{results.END}")
    doc.write_text(text + "\nlater section by someone else\n", encoding="utf-8")
    results.write_section("second table", path=doc)
    text = doc.read_text(encoding="utf-8")
    assert "first table" not in text and "second table" in text
    assert text.count(results.START) == 1 and text.endswith("later section by someone else\n")
    assert "other helper's section" in text

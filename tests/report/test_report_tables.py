"""The printed results table and the report's summary sentence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from report_fixtures import build_comparison

from metaxfer.report import Accuracy, Comparison, format_table, lead_is_clear, summary_text


@pytest.fixture()
def comparison(tmp_path: Path) -> Comparison:
    return build_comparison(tmp_path)


def _with_accuracy(comparison: Comparison, **accuracies: tuple[float, float]) -> Comparison:
    paths = [dataclasses.replace(p, accuracy=Accuracy(mean=accuracies[p.name][0], ci95=accuracies[p.name][1], n=50))
             for p in comparison.paths if p.name in accuracies]
    return dataclasses.replace(comparison, paths=paths)


def test_table_rows_are_sorted_and_aligned(comparison: Comparison) -> None:
    lines = format_table(comparison).splitlines()
    assert lines[0].split() == ["#", "path", "family", "accuracy", "%", "n", "train", "s", "eval", "s", "FID"]
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + 6
    rows = [line.split() for line in lines[2:]]
    assert [r[1] for r in rows] == ["metagan", "protonet", "dagan+protonet", "maml", "finetune", "scratch"]
    assert rows[0] == ["1", "metagan", "meta-gan", "74.1", "±", "1.8", "600", "260.0", "7.5", "45"]
    assert rows[1][-1] == "-"  # protonet reports no FID
    # every "±" sits in the same column, and right-aligned numbers end in the same column
    assert len({line.index("±") for line in lines[2:]}) == 1
    assert len({len(line) for line in lines}) == 1


def test_table_without_extra_metrics_has_no_extra_column(comparison: Comparison) -> None:
    plain = _with_accuracy(comparison, scratch=(0.4, 0.02), finetune=(0.5, 0.02))
    header = format_table(plain).splitlines()[0]
    assert header.split()[-2:] == ["eval", "s"]


def test_summary_names_a_clear_winner(comparison: Comparison) -> None:
    c = _with_accuracy(comparison, protonet=(0.80, 0.02), maml=(0.70, 0.03), scratch=(0.3, 0.01))
    text = summary_text(c)
    assert text.startswith("protonet (meta-learning) is the best of 3 paths with 80.0 ± 2.0% accuracy on 600 "
                           "5-way 1-shot target episodes (synthetic-digits → glyphs, 15 queries per class).")
    assert "lead of 10.0 points over the runner-up, maml (meta-learning, 70.0 ± 3.0%)" in text
    assert "is outside the 95% confidence intervals" in text
    assert lead_is_clear(c.ranked()[0], c.ranked()[1])


def test_summary_says_when_the_intervals_overlap(comparison: Comparison) -> None:
    c = _with_accuracy(comparison, protonet=(0.72, 0.02), maml=(0.70, 0.03))
    text = summary_text(c)
    assert "lead of 2.0 points over the runner-up, maml" in text
    assert "is within the 95% confidence intervals: the two intervals overlap" in text
    assert not lead_is_clear(c.ranked()[0], c.ranked()[1])
    # touching intervals are not separated either
    assert not lead_is_clear(*_with_accuracy(comparison, protonet=(0.75, 0.025), maml=(0.70, 0.025)).ranked())


def test_summary_of_a_tie_and_of_a_single_path(comparison: Comparison) -> None:
    tie = _with_accuracy(comparison, protonet=(0.7, 0.02), maml=(0.7, 0.01), scratch=(0.4, 0.02))
    assert summary_text(tie).startswith("maml and protonet tie for first place of 3 paths at 70.0 ± 1.0% accuracy")
    one = _with_accuracy(comparison, maml=(0.625, 0.05))
    assert summary_text(one).startswith("Only one path ran: maml (meta-learning) reached 62.5 ± 5.0% accuracy")

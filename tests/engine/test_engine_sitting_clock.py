"""SittingClock: wall time over the sittings of a long job, recorded while a sitting runs (so that a sitting killed
outright keeps most of its time), added to what earlier sittings recorded, and readable back."""

from __future__ import annotations

import json
import time

import pytest

from metaxfer.engine.runs import SittingClock


def test_the_sitting_clock_records_while_it_runs_so_a_killed_sitting_keeps_its_time(tmp_path):
    (tmp_path / "sittings.json").write_text(json.dumps({"seconds": 100.0}))  # an earlier sitting
    clock = SittingClock(tmp_path / "sittings.json", every=0.05)
    with clock:
        deadline = time.monotonic() + 5.0
        while json.loads((tmp_path / "sittings.json").read_text())["seconds"] == 100.0:
            assert time.monotonic() < deadline, "the clock wrote nothing while the sitting ran"
            time.sleep(0.02)
        during = json.loads((tmp_path / "sittings.json").read_text())["seconds"]
        assert during > 100.0
    after = json.loads((tmp_path / "sittings.json").read_text())["seconds"]
    assert after >= during and not clock._thread.is_alive()


def test_an_exception_still_records_the_sitting_and_earlier_can_be_given(tmp_path):
    path = tmp_path / "clock.json"
    with pytest.raises(KeyboardInterrupt), SittingClock(path, earlier=5.0, every=60.0):
        raise KeyboardInterrupt
    assert 5.0 < SittingClock.recorded(path) < 65.0
    assert SittingClock.recorded(tmp_path / "missing.json") == 0.0
    (tmp_path / "bad.json").write_text("not json")
    assert SittingClock.recorded(tmp_path / "bad.json") == 0.0

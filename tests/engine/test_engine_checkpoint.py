"""Checkpoints: exact round trips without pickle, atomic writes, pruning, and clear errors for foreign checkpoints."""

from __future__ import annotations

import errno
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from metaxfer.engine import checkpoint as ck
from metaxfer.engine.config import config_to_dict, load_config
from metaxfer.engine.files import OutputError, atomic_write_bytes, check_output_dir
from metaxfer.engine.state import StateError, capture_rng, decode_state, encode_state, restore_rng

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def _config(*overrides: str) -> dict:
    return config_to_dict(load_config(TINY, list(overrides)))


def _trained_state() -> tuple[torch.nn.Module, torch.optim.Optimizer, dict]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.9**t)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
        sched.step()
    state = {"modules": {"net": net.state_dict()}, "optimizers": {"net": opt.state_dict()},
             "schedulers": {"net": sched.state_dict()}, "rng": capture_rng(),
             "generators": {"data": torch.Generator().manual_seed(5).get_state()},
             "loop": {"step": 3, "best": None, "window_sums": {"train/loss": 0.1 + 0.2}}}
    return net, opt, state


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert type(b) is dict and list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


def test_state_codec_round_trips_exactly():
    tensors: dict[str, torch.Tensor] = {}
    obj = {"a": (1, 2.5, None, "s"), 3: [True, np.uint32(7)], "arr": np.arange(5, dtype=np.uint32),
           "t": torch.arange(4.0), "nested": {0: {"m": torch.ones(2, dtype=torch.bfloat16)}}, "f": 1 / 3}
    plain = encode_state(obj, tensors)
    json.loads(json.dumps(plain))  # really plain data
    back = decode_state(json.loads(json.dumps(plain)), tensors)
    expected = dict(obj)
    expected[3] = [True, 7]
    _assert_same(expected, back)


def test_state_codec_refuses_objects():
    with pytest.raises(StateError, match=r"cannot store a object at 'x/y'"):
        encode_state({"x": {"y": object()}}, {})


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    tensors: dict[str, torch.Tensor] = {}
    plain = json.loads(json.dumps(encode_state(capture_rng(), tensors)))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    restore_rng(decode_state(plain, tensors))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_checkpoint_round_trip_is_exact_and_restores_training(tmp_path):
    net, opt, state = _trained_state()
    cfg = _config()
    path = ck.save_checkpoint(tmp_path, 3, config=cfg, state=state)
    assert path.name == "step-00000003" and sorted(p.name for p in path.iterdir()) == ["state.json", "tensors.safetensors"]
    loaded = ck.load_checkpoint(path, config=cfg)
    assert loaded.step == 3 and loaded.config == cfg
    _assert_same(state, loaded.state)
    # a fresh network + optimiser restored from it continues exactly like the original
    torch.manual_seed(99)
    net2 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.5)
    net2.load_state_dict(loaded.state["modules"]["net"])
    opt2.load_state_dict(loaded.state["optimizers"]["net"])
    assert opt2.param_groups[0]["betas"] == (0.8, 0.99)
    x = torch.randn(8, 3)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).mean().backward()
        o.step()
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    _, _, state = _trained_state()
    path = ck.save_checkpoint(tmp_path, 1, config=_config(), state=state)

    def refuse(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    ck.load_checkpoint(path)


def test_checkpoint_from_another_config_is_a_clear_error(tmp_path):
    _, _, state = _trained_state()
    path = ck.save_checkpoint(tmp_path, 1, config=_config(), state=state)
    with pytest.raises(ck.CheckpointError, match=r"another config.*train.lr: 0.003 != 0.1"):
        ck.load_checkpoint(path, config=_config("train.lr=0.1"))
    ck.load_checkpoint(path, config=_config("device=cpu"))  # the device may change on resume


def test_checkpoint_of_an_older_schema_matches_the_new_keys_at_their_defaults(tmp_path):
    """A key added to the config schema after a checkpoint was written counts as its default (new options default
    to the old behaviour): the checkpoint matches a config that leaves it there, and not one that changes it."""
    _, _, state = _trained_state()
    older = _config()
    del older["train"]["min_lr_ratio"]  # as if the checkpoint predates the option (tiny.yaml leaves it at 0)
    path = ck.save_checkpoint(tmp_path, 1, config=older, state=state)
    ck.load_checkpoint(path, config=_config())
    with pytest.raises(ck.CheckpointError, match=r"train.min_lr_ratio: 0.0 != 0.1"):
        ck.load_checkpoint(path, config=_config("train.min_lr_ratio=0.1"))


def test_checkpoint_of_another_format_is_a_clear_error(tmp_path):
    _, _, state = _trained_state()
    path = ck.save_checkpoint(tmp_path, 1, config=_config(), state=state)
    doc = json.loads((path / "state.json").read_text())
    doc["format"], doc["metaxfer_version"] = 99, "9.0.0"
    (path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(ck.CheckpointError, match=r"has format 99 \(written by metaxfer 9.0.0\).*reads format 1"):
        ck.load_checkpoint(path)


def test_damaged_checkpoints_are_clear_errors(tmp_path):
    _, _, state = _trained_state()
    path = ck.save_checkpoint(tmp_path, 1, config=_config(), state=state)
    tensors = path / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(ck.CheckpointError, match="is damaged: tensors.safetensors has"):
        ck.load_checkpoint(path)
    (path / "state.json").write_text("{not json")
    with pytest.raises(ck.CheckpointError, match="state.json is not valid JSON"):
        ck.load_checkpoint(path)
    with pytest.raises(ck.CheckpointError, match="is not a complete checkpoint"):
        ck.load_checkpoint(tmp_path / "step-00000002")


def test_a_crash_while_writing_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    _, _, state = _trained_state()
    ck.save_checkpoint(tmp_path, 1, config=_config(), state=state)

    def crash(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "atomic_write_json", crash)  # dies after the tensors were written
    with pytest.raises(OutputError, match=r"disk is full.*previous checkpoint is intact"):
        ck.save_checkpoint(tmp_path, 2, config=_config(), state=state)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # no temporary folder left over
    ck.load_checkpoint(tmp_path / "step-00000001")


def test_partial_folders_of_a_killed_writer_are_ignored_then_removed(tmp_path):
    _, _, state = _trained_state()
    ck.save_checkpoint(tmp_path, 1, config=_config(), state=state)
    partial = tmp_path / ".tmp-step-00000002-abc"
    partial.mkdir()
    (partial / "tensors.safetensors").write_bytes(b"half")
    (tmp_path / "step-00000003").mkdir()  # no state.json: incomplete
    assert ck.latest_checkpoint(tmp_path) == tmp_path / "step-00000001"
    assert ck.remove_partial_checkpoints(tmp_path) == [partial]
    assert not partial.exists()


def test_rewriting_a_step_replaces_it(tmp_path):
    _, _, state = _trained_state()
    ck.save_checkpoint(tmp_path, 4, config=_config(), state=state)
    state["loop"]["step"] = 44
    ck.save_checkpoint(tmp_path, 4, config=_config(), state=state)
    assert ck.load_checkpoint(tmp_path / "step-00000004").state["loop"]["step"] == 44
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000004"]


def test_prune_keeps_the_last_n_and_the_best(tmp_path):
    _, _, state = _trained_state()
    for step in (0, 10, 20, 30, 40):
        ck.save_checkpoint(tmp_path, step, config=_config(), state=state)
    ck.prune_checkpoints(tmp_path, keep_last=2, keep_steps=[10])
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [10, 30, 40]


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_output_folder_checks(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="a parent of it is a file"):
        check_output_dir(blocker / "run")
    with pytest.raises(OutputError, match="exists and is not a folder|a file is in the way"):
        check_output_dir(blocker)
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 * 2**20, 9 * 2**20, 2**20))
    with pytest.raises(OutputError, match=r"not enough free space .*1.0 MiB free, the run needs about 5.0 MiB"):
        check_output_dir(tmp_path / "ok", need_bytes=5 * 2**20)

"""The ``cyclegan`` engine method on synthetic domains: both-direction grids, paired metrics, CyCADA, errors."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from metaxfer.engine import load_config, train
from metaxfer.errors import MetaxferError
from metaxfer.methods.gan import CycleGANMethod


def _cfg(per_class=6, **cyc):
    return {
        "method": "cyclegan", "threads": 1, "device": "cpu", "seed": 0,
        "data": {"domain": "synthetic", "options": {"num_classes": 3, "per_class": per_class, "size": 8, "seed": 0},
                 "batch_size": 4},
        "train": {"steps": 4, "eval_every": 2, "checkpoint_every": 2, "log_every": 1, "lr": 2e-3, "tensorboard": False},
        "cyclegan": {"target": "synthetic", "size": 8, "width": 4, "blocks": 1, "downsamplings": 1, "d_width": 4,
                     "d_layers": 1, "pool_size": 4,
                     "target_options": {"num_classes": 3, "per_class": per_class, "size": 12, "seed": 5}, **cyc},
    }


def test_cyclegan_trains_and_writes_grids_of_both_directions(tmp_path):
    result = train(load_config(_cfg()), out=tmp_path / "run", progress_bar=False)
    assert result.state == "finished"
    assert "eval/cycle_l1" in result.final and 0 <= result.final["eval/cycle_l1"] < 2
    grids = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step-00000002.png", "step-00000004.png"]
    assert Image.open(grids[-1]).size[0] > 0


def test_cyclegan_samples_rows_are_real_translated_and_round_trip_for_both_directions():
    method = CycleGANMethod(load_config(_cfg()), device=torch.device("cpu"))
    cols = method.sample_columns
    images = method.samples()
    assert images.shape == (6 * cols, 1, 8, 8) and images.dtype == torch.uint8
    rows = images.view(6, cols, 1, 8, 8)
    pick_a = method.a_test[torch.linspace(0, len(method.a_test) - 1, cols).long()]
    pick_b = method.b_test[torch.linspace(0, len(method.b_test) - 1, cols).long()]
    assert torch.equal(rows[0], method.a.images[pick_a])  # row 0: real A
    assert torch.equal(rows[3], method.b.images[pick_b])  # row 3: real B
    # the target (12x12) was brought to the common 8x8 format
    assert method.b.image_shape == (1, 8, 8) and method.a.image_shape == (1, 8, 8)


def test_cyclegan_paired_metrics_when_each_class_has_one_image_and_cycada_term():
    cfg = load_config(_cfg(per_class=1, task_weight=1.0, transfer={"steps": 5}))
    method = CycleGANMethod(cfg, device=torch.device("cpu"))
    assert method.task_classifier is not None
    assert not any(p.requires_grad for p in method.task_classifier.parameters())
    out = method.g_step(0)
    assert "task" in out.metrics
    ev = method.evaluate()
    assert {"cycle_l1", "paired_l1", "unchanged_l1"} <= set(ev)
    a = method.a.images.float() / 127.5 - 1
    b = method.b.images[torch.argsort(method.b.labels)[method.a.labels]].float() / 127.5 - 1
    assert ev["unchanged_l1"] == pytest.approx(float((a - b).abs().mean()), rel=1e-5)


def test_cyclegan_config_errors_are_clear():
    with pytest.raises(MetaxferError, match=r"target \(cyclegan.target\) domain is not set"):
        CycleGANMethod(load_config(_cfg(target="")), device=torch.device("cpu"))
    cfg = _cfg()
    cfg["cyclegan"]["target_options"]["num_classes"] = 4
    with pytest.raises(MetaxferError, match="do not share their classes"):
        CycleGANMethod(load_config(cfg), device=torch.device("cpu"))
    with pytest.raises(MetaxferError, match="cyclegan.objective"):
        CycleGANMethod(load_config(_cfg(objective="nope")), device=torch.device("cpu"))


def test_cyclegan_resume_is_exact_with_image_pools(tmp_path, ctrl_c):
    from safetensors.torch import load_file

    from metaxfer.engine import resume

    cfg = _cfg(pool_size=3)
    ref = train(load_config(cfg), out=tmp_path / "ref", progress_bar=False)
    ctrl_c.at(0)
    part = train(load_config(cfg), out=tmp_path / "part", progress_bar=False)
    assert part.state == "interrupted" and part.step == 1
    ctrl_c.off()
    done = resume(tmp_path / "part", progress_bar=False)
    assert done.final == ref.final
    last = lambda d: load_file(str(sorted((d / "checkpoints").glob("step-*"))[-1] / "tensors.safetensors"))  # noqa: E731
    a, b = last(tmp_path / "ref"), last(tmp_path / "part")
    assert set(a) == set(b) and any("pool" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key

"""The ``gan`` engine method: trains through the engine, resumes exactly, saves per-class grids, clear config errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from metaxfer.engine import ConfigError, load_config, resume, train
from metaxfer.errors import MetaxferError
from metaxfer.methods.gan import GANMethod


def _cfg(**gan):
    return {
        "method": "gan", "threads": 1, "device": "cpu", "seed": 3,
        "data": {"domain": "synthetic", "options": {"num_classes": 3, "per_class": 12, "size": 8}, "batch_size": 8},
        "train": {"steps": 6, "eval_every": 3, "checkpoint_every": 3, "log_every": 1, "lr": 2e-3, "tensorboard": False},
        "gan": {"width": 4, "d_width": 4, "latent_dim": 8, "eval_samples": 24, "feature_epochs": 1, "kid_subsets": 2,
                **gan},
    }


def _final_tensors(run_dir):
    ckpts = sorted((run_dir / "checkpoints").glob("step-*"))
    return load_file(str(ckpts[-1] / "tensors.safetensors"))


def test_gan_trains_resumes_exactly_and_saves_class_grids(tmp_path, ctrl_c):
    ref = train(load_config(_cfg()), out=tmp_path / "ref", progress_bar=False)
    assert ref.state == "finished" and ref.step == 6
    assert set(ref.final) == {"eval/fid", "eval/kid"} and ref.final["eval/fid"] >= 0
    rows = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert {"d/loss", "g/loss", "d/real_score"} <= set(rows[0])
    assert sorted(p.name for p in (tmp_path / "ref" / "samples").iterdir()) == ["step-00000003.png", "step-00000006.png"]

    ctrl_c.at(1)  # Ctrl-C in the middle of the run: checkpoint at step 2, state resumable
    part = train(load_config(_cfg()), out=tmp_path / "part", progress_bar=False)
    assert part.state == "interrupted" and part.step == 2
    ctrl_c.off()
    done = resume(tmp_path / "part", progress_bar=False)
    assert done.state == "finished" and done.final == ref.final
    a, b = _final_tensors(tmp_path / "ref"), _final_tensors(tmp_path / "part")
    assert set(a) == set(b)
    for key in a:  # every weight, EMA weight, optimiser moment and generator state, bit for bit
        assert torch.equal(a[key], b[key]), key
    assert any(k.startswith("modules.g_ema") or "g_ema" in k for k in a)


def test_gan_step_does_not_compute_discriminator_gradients_in_the_generator_step(tmp_path):
    cfg = load_config(_cfg())
    method = GANMethod(cfg, device=torch.device("cpu"))
    out_d = method.d_step(0)
    out_d.loss.backward()
    for p in method.modules["d"].parameters():
        p.grad = None
    out_g = method.g_step(0)
    out_g.loss.backward()
    assert all(p.grad is None for p in method.modules["d"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.modules["g"].parameters())
    assert all(p.requires_grad for p in method.modules["d"].parameters())  # unfrozen again


def test_gan_samples_one_row_per_class():
    method = GANMethod(load_config(_cfg()), device=torch.device("cpu"))
    images = method.samples()
    assert images.dtype == torch.uint8 and images.shape == (3 * method.sample_columns, 1, 8, 8)


def test_gan_config_errors_are_clear():
    with pytest.raises(MetaxferError, match="gan.objective.*choose one of.*hinge"):
        GANMethod(load_config(_cfg(objective="wasserstein-ish")), device=torch.device("cpu"))
    with pytest.raises(MetaxferError, match="set gan.conditional=true"):
        GANMethod(load_config(_cfg(conditional=False, transfer={"enabled": True})), device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="gan.widht.*Did you mean 'gan.width'"):
        load_config(_cfg(), ["gan.widht=3"])
    with pytest.raises(ConfigError, match="gan.conditioning"):
        load_config(_cfg(conditioning="concat"))
    bad = _cfg()
    bad["data"]["options"]["size"] = 7
    with pytest.raises(MetaxferError, match="square images with an even side"):
        GANMethod(load_config(bad), device=torch.device("cpu"))

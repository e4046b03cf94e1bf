"""The ``meta-gan`` engine method: Reptile, FO-MAML and plain pre-training train through the engine, a run interrupted
half-way and resumed ends bit for bit like an uninterrupted one, samples are one row per validation class, and config
mistakes are clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from metaxfer.engine import ConfigError, load_config, resume, train
from metaxfer.methods.meta_gan import MetaGANInit

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("metagan-*.yaml"))


def config(metagan: dict[str, Any] | None = None, **data_options: Any) -> Any:
    options = {"num_classes": 8, "per_class": 8, "size": 8, **data_options}
    return load_config({
        "method": "meta-gan", "seed": 2, "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": options, "batch_size": 8},
        "train": {"steps": 6, "eval_every": 3, "checkpoint_every": 3, "log_every": 1, "optimizer": "sgd",
                  "momentum": 0.0, "lr": 1.0, "tensorboard": False},
        "metagan": {"inner_steps": 2, "tasks_per_batch": 2, "shots": 2, "queries": 2, "batch_size": 4,
                    "latent_dim": 4, "width": 4, "d_width": 4, "eval_shots": 2, "eval_classes": 3, "eval_samples": 4,
                    "feature_epochs": 1, "kid_subsets": 2, "split": {"by": "class", "fractions": [0.5, 0.5]},
                    **(metagan or {})},
    })


@pytest.mark.parametrize("metagan", [{}, {"algorithm": "fomaml"}, {"algorithm": "pretrain"},
                                     {"task": "group", "classes_per_task": 2}],
                         ids=["reptile", "fomaml", "pretrain", "random-groups"])
def test_trains_and_resumes_exactly_after_ctrl_c(tmp_path, ctrl_c, checkpoint_tensors, metagan) -> None:
    ref = train(config(metagan), out=tmp_path / "ref", progress_bar=False)
    assert ref.state == "finished" and ref.step == 6
    assert set(ref.final) == {"eval/fid", "eval/kid", "eval/class_acc", "eval/fid_unadapted",
                              "eval/class_acc_unadapted"}
    rows = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    expected = {"d/loss", "g/loss"} if metagan.get("algorithm") == "pretrain" else {"meta/d_loss", "meta/g_loss_end"}
    assert expected <= set(rows[0])

    ctrl_c.at(3)
    stopped = train(config(metagan), out=tmp_path / "run", progress_bar=False)
    assert stopped.state == "interrupted" and stopped.step == 4
    ctrl_c.off()
    done = resume(tmp_path / "run", progress_bar=False)
    assert done.state == "finished" and done.final == ref.final
    a, b = checkpoint_tensors(tmp_path / "ref", 6), checkpoint_tensors(tmp_path / "run", 6)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert "generators/tasks" in a and "generators/noise" in a


def test_samples_are_one_row_per_validation_class() -> None:
    method = MetaGANInit(config(), device=torch.device("cpu"))
    images = method.samples()
    assert images.dtype == torch.uint8 and images.shape == (3 * method.sample_columns, 1, 8, 8)
    split = method._eval_split()
    assert torch.equal(images[0], split[0][0][0])  # each row starts with a real shot of its class


def test_config_mistakes_are_clear() -> None:
    with pytest.raises(ConfigError, match="metagan.objective.*hinge"):
        config({"objective": "hinje"})
    with pytest.raises(ConfigError, match="metagan.algorithm"):
        config({"algorithm": "maml"})
    with pytest.raises(ConfigError, match="metagan.group_by.*groupings"):
        MetaGANInit(config({"task": "group", "group_by": "alphabet"}), device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="even side >= 8.*Resize"):
        MetaGANInit(config(size=7), device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="norm='layer'"):
        MetaGANInit(config({"objective": "wgan-gp", "d_norm": "batch"}, size=16), device=torch.device("cpu"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_load(recipe: Path) -> None:
    cfg = load_config(recipe)
    assert cfg.method == "meta-gan" and cfg.metagan.algorithm in ("reptile", "fomaml", "pretrain")

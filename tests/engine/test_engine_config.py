"""Experiment configs: YAML + dotted overrides onto typed dataclasses, and errors that name the key and the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaxfer.engine.config import (
    ConfigError,
    ExperimentConfig,
    config_diff,
    config_to_dict,
    config_to_yaml,
    load_config,
)
from metaxfer.engine.optim import lr_factor

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def test_tiny_recipe_loads_with_typed_sections():
    cfg = load_config(TINY)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.method == "classifier" and cfg.name == "tiny"
    assert cfg.train.steps == 200 and isinstance(cfg.train.lr, float)
    assert cfg.data.options == {"num_classes": 5, "per_class": 40, "size": 16, "seed": 0}
    assert cfg.model.width == 8  # the method's own section, typed by the method's dataclass


def test_dotted_overrides_are_parsed_as_yaml_and_typed():
    cfg = load_config(TINY, ["train.steps=2000", "train.lr=1e-2", "model.dropout=0.25", "data.options.size=20",
                             "train.early_stop.patience=3", "name=other", "train.samples=false"])
    assert cfg.train.steps == 2000 and cfg.train.lr == pytest.approx(0.01)
    assert cfg.model.dropout == 0.25 and cfg.data.options["size"] == 20 and cfg.data.options["num_classes"] == 5
    assert cfg.train.early_stop.patience == 3 and cfg.name == "other" and cfg.train.samples is False


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(TINY, ["train.steps=7", "seed=3"])
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(cfg))
    again = load_config(path)
    assert config_to_dict(again) == config_to_dict(cfg)


def test_unknown_key_names_it_suggests_and_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config(TINY, ["train.stpes=10"])
    msg = str(err.value)
    assert "'train.stpes'" in msg and "Did you mean 'train.steps'" in msg
    assert "checkpoint_every" in msg and "on_nan" in msg  # the valid keys under train are listed


def test_unknown_top_level_key_in_yaml(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("method: classifier\ntrian: {steps: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trian'.*Did you mean 'train'.*Valid keys at the top level"):
        load_config(path)


def test_section_of_another_method_is_an_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'meta'.*Valid keys at the top level: .*model"):
        load_config(TINY, ["meta.inner_lr=0.4"])


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"'train.steps' expects a value of type int.*'abc'"):
        load_config(TINY, ["train.steps=abc"])
    with pytest.raises(ConfigError, match=r"'train.amp'.*str"):
        load_config(TINY, ["train.amp=[1, 2]"])
    with pytest.raises(ConfigError, match=r"'train.samples' expects a value of type bool"):
        load_config(TINY, ["train.samples=maybe"])


def test_section_given_a_scalar_and_scalar_given_a_mapping():
    with pytest.raises(ConfigError, match=r"'train' is a section with keys steps, .*train.steps="):
        load_config(TINY, ["train=5"])
    with pytest.raises(ConfigError, match=r"'train.steps' takes a single int, not a mapping"):
        load_config(TINY, ["train.steps.x=5"])


def test_bad_choice_lists_the_choices():
    with pytest.raises(ConfigError, match=r"'train.schedule' is 'cosin'; choose one of: constant, cosine, linear, step"):
        load_config(TINY, ["train.schedule=cosin"])
    with pytest.raises(ConfigError, match=r"'train.on_nan' is 'skip'; choose one of: stop, rollback"):
        load_config(TINY, ["train.on_nan=skip"])
    with pytest.raises(ConfigError, match=r"'device' is 'gpu'; choose one of: auto, cpu, cuda or cuda:N"):
        load_config(TINY, ["device=gpu"])


def test_out_of_range_values_name_the_bound():
    with pytest.raises(ConfigError, match=r"'train.steps' is 0; it must be >= 1"):
        load_config(TINY, ["train.steps=0"])
    with pytest.raises(ConfigError, match=r"'data.test_fraction' is 1.5; it must be < 1.0"):
        load_config(TINY, ["data.test_fraction=1.5"])
    with pytest.raises(ConfigError, match=r"'model.blocks' is 9; it must be <= 4"):
        load_config(TINY, ["model.blocks=9"])


def test_unknown_or_missing_method_lists_the_methods():
    with pytest.raises(ConfigError, match=r"unknown method 'clasifier'.*'classifier'"):
        load_config(TINY, ["method=clasifier"])
    with pytest.raises(ConfigError, match=r"names no method; set `method:` to one of: .*classifier"):
        load_config({})


@pytest.mark.parametrize("bad", ["train.steps", "=3", "train..steps=3", "1x=2"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match=r"must look like key=value"):
        load_config(TINY, [bad])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist; the recipes are YAML files in configs/"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listy)


def test_config_error_is_a_value_error_and_metaxfer_error():
    from metaxfer.errors import MetaxferError

    with pytest.raises(ValueError):
        load_config(TINY, ["train.steps=-1"])
    with pytest.raises(MetaxferError):
        load_config(TINY, ["train.steps=-1"])


def test_config_diff_names_changed_keys():
    a = config_to_dict(load_config(TINY))
    b = config_to_dict(load_config(TINY, ["train.lr=0.5", "device=cpu", "data.options.size=8"]))
    diff = config_diff(a, b, ignore=("device",))
    assert diff == ["data.options: {'num_classes': 5, 'per_class': 40, 'size': 16, 'seed': 0} != "
                    "{'num_classes': 5, 'per_class': 40, 'size': 8, 'seed': 0}", "train.lr: 0.003 != 0.5"]


def test_learning_rate_schedules():
    def factors(*overrides):
        return [lr_factor(load_config(TINY, ["train.steps=10", *overrides]).train)(t) for t in range(10)]

    assert factors("train.schedule=constant", "train.warmup_steps=0") == [1.0] * 10
    warm = factors("train.schedule=constant", "train.warmup_steps=4")
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0] and warm[4:] == [1.0] * 6
    cos = factors("train.schedule=cosine", "train.warmup_steps=0", "train.min_lr_ratio=0.1")
    assert cos[0] == 1.0 and cos[5] == pytest.approx(0.55) and all(x > y for x, y in zip(cos, cos[1:]))
    lin = factors("train.schedule=linear", "train.warmup_steps=0")
    assert lin[5] == pytest.approx(0.5)
    step = factors("train.schedule=step", "train.warmup_steps=0", "train.decay_every=3", "train.decay_gamma=0.5")
    assert step == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]

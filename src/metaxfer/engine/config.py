"""Experiment configs: typed dataclasses, loaded from YAML recipes with dotted command-line overrides.

An experiment config has common sections (``name``, ``seed``, ``method``, ``device``, ``deterministic``, ``data``,
``train``) and one section that belongs to the chosen method and is typed by the dataclass the method declares (see
:class:`metaxfer.engine.methods.Method`), so ``meta.inner_lr`` exists only when a meta-learning method is chosen.

Loading goes: YAML file → overrides (``train.steps=2000``) → merged onto the typed schema with OmegaConf → checked
for choices and ranges. Every problem is a :class:`ConfigError` that names the key and lists the valid keys or
choices.

Example:
    >>> cfg = load_config({"method": "classifier"}, ["train.steps=20", "train.lr=0.01"])
    >>> cfg.train.steps, cfg.train.lr
    (20, 0.01)
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from metaxfer.engine.methods import METHODS, Method, load_builtin_methods
from metaxfer.errors import MetaxferError, UnknownNameError

__all__ = [
    "ConfigError",
    "option",
    "DataConfig",
    "EarlyStopConfig",
    "TrainConfig",
    "ExperimentConfig",
    "experiment_schema",
    "load_config",
    "config_to_dict",
    "config_to_yaml",
    "config_diff",
    "flatten_config",
    "validate_config",
]


class ConfigError(MetaxferError, ValueError):
    """A config is invalid: an unknown key, a value of the wrong type, or a value outside its choices or range."""


def option(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    choices: Sequence[Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    pattern: str | None = None,
    pattern_help: str = "",
    help: str = "",  # noqa: A002  (the natural name for a field's help text)
) -> Any:
    """A dataclass field with checks that :func:`validate_config` applies after loading.

    Args:
        default: The default value.
        default_factory: For mutable defaults (lists, dicts, nested dataclasses).
        choices: The allowed values.
        ge, gt, le, lt: Bounds (greater or equal, greater, less or equal, less).
        pattern: A regular expression the whole (string) value must match; ``pattern_help`` describes it.
        help: One line shown in docs and errors.

    Returns:
        A ``dataclasses.field``.
    """
    meta = {"choices": tuple(choices) if choices is not None else None, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "pattern": pattern, "pattern_help": pattern_help, "help": help}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Which domain to train on (methods that use two or more domains add the others in their own section)."""

    domain: str = option("synthetic", help="a registered domain name (metaxfer data list)")
    options: dict[str, Any] = option(default_factory=dict, help="build options of the domain, e.g. {size: 28}")
    batch_size: int = option(32, ge=1, help="examples per training batch")
    test_fraction: float = option(0.2, gt=0.0, lt=1.0, help="share of each class held out for evaluation")
    split_seed: int = option(0, help="seed of the train/test split (fixed across training seeds)")


@dataclass
class EarlyStopConfig:
    """Best-model tracking and early stopping on an evaluation metric."""

    metric: str = option("", help="metric to track, e.g. eval/acc; empty: the method's headline metric")
    mode: str = option("auto", choices=("auto", "max", "min"), help="auto: from the metric's name")
    patience: int = option(0, ge=0, help="evaluations without improvement before stopping; 0: never stop early")
    min_delta: float = option(0.0, ge=0.0, help="smallest change that counts as an improvement")


@dataclass
class TrainConfig:
    """The training loop: length, evaluation, checkpoints, optimiser, schedule, precision, failure handling."""

    steps: int = option(1000, ge=1, help="training iterations")
    log_every: int = option(10, ge=1, help="iterations between metric lines (averaged over the window)")
    eval_every: int = option(100, ge=1, help="iterations between evaluations (and sample pictures)")
    checkpoint_every: int = option(100, ge=1, help="iterations between checkpoints")
    keep_last: int = option(3, ge=1, help="checkpoints kept besides the best one")
    optimizer: str = option("adam", choices=("adam", "adamw", "sgd"), help="optimiser built by optimizer_for()")
    lr: float = option(1e-3, gt=0.0, help="peak learning rate")
    weight_decay: float = option(0.0, ge=0.0, help="weight decay")
    momentum: float = option(0.9, ge=0.0, lt=1.0, help="SGD momentum")
    schedule: str = option("constant", choices=("constant", "cosine", "linear", "step"), help="learning-rate shape")
    warmup_steps: int = option(0, ge=0, help="linear warm-up iterations before the schedule")
    min_lr_ratio: float = option(0.0, ge=0.0, le=1.0, help="final lr / peak lr for cosine and linear")
    decay_every: int = option(1000, ge=1, help="iterations between decays for the step schedule")
    decay_gamma: float = option(0.1, gt=0.0, le=1.0, help="factor of each decay of the step schedule")
    grad_clip: float = option(0.0, ge=0.0, help="clip the gradient norm of each optimiser's parameters; 0: off")
    amp: str = option("auto", choices=("auto", "fp32", "bf16", "fp16"),
                      help="mixed precision; auto: bf16 (or fp16) on CUDA, fp32 (none) on the CPU")
    early_stop: EarlyStopConfig = option(default_factory=EarlyStopConfig)
    on_nan: str = option("stop", choices=("stop", "rollback"), help="on a NaN/Inf loss: stop, or roll back")
    nan_lr_factor: float = option(0.5, gt=0.0, lt=1.0, help="learning-rate factor applied at each rollback")
    max_rollbacks: int = option(3, ge=0, help="rollbacks allowed before the run stops")
    samples: bool = option(True, help="save the method's sample pictures at each evaluation")
    tensorboard: bool = option(True, help="write TensorBoard events when tensorboard is installed")


_DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"


@dataclass
class ExperimentConfig:
    """One experiment. The chosen method adds its own section (see :func:`experiment_schema`)."""

    method: str = option("", help="a registered method name")
    name: str = option("", help="run name; empty: the recipe file's name")
    seed: int = option(0, help="seed of python, numpy and torch and of the method's generators")
    device: str = option("auto", pattern=_DEVICE_PATTERN, pattern_help="auto, cpu, cuda or cuda:N",
                         help="auto: CUDA when present")
    deterministic: bool = option(False, help="deterministic CUDA kernels where PyTorch has them")
    threads: int = option(0, ge=0, help="CPU threads of PyTorch; 0: PyTorch's default")
    data: DataConfig = option(default_factory=DataConfig)
    train: TrainConfig = option(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------- schema and loading
def experiment_schema(method: type[Method]) -> type[ExperimentConfig]:
    """The ``ExperimentConfig`` subclass with the method's own section added (or ``ExperimentConfig`` itself)."""
    if method.section is None:
        return ExperimentConfig
    return dataclasses.make_dataclass(
        f"{method.__name__}ExperimentConfig",
        [(method.section, method.Config, field(default_factory=method.Config))],  # type: ignore[arg-type]
        bases=(ExperimentConfig,),
    )


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, override, type-check and validate an experiment config.

    Args:
        source: A YAML file, a mapping with the same content, or ``None`` (defaults plus overrides).
        overrides: Dotted ``key=value`` strings; values are YAML (``train.lr=1e-3``, ``data.options={size: 16}``).

    Returns:
        The config: an instance of ``experiment_schema(method)``, so the method's section is an attribute.

    Raises:
        ConfigError: An unreadable file, a malformed override, an unknown method or key, a value of the wrong type,
            or a value outside its choices or range; the message names the key and the valid keys or choices.
    """
    raw = _read_source(source)
    dotted = _parse_overrides(overrides)
    method_name = dotted.get("method", raw.get("method", ""))
    if not method_name:
        load_builtin_methods()
        raise ConfigError(f"the config names no method; set `method:` to one of: {', '.join(METHODS.names())}")
    load_builtin_methods()
    try:
        method = METHODS.get(str(method_name))
    except UnknownNameError as exc:
        raise ConfigError(f"config key 'method': {exc}") from None
    schema = experiment_schema(method)
    override_tree = OmegaConf.to_container(OmegaConf.from_dotlist([f"{k}={v}" for k, v in dotted.items()]))
    for tree in (raw, override_tree):
        _check_keys(tree, schema, "")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(raw), override_tree)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe_omegaconf_error(exc, schema)) from None
    if not cfg.name:
        cfg.name = Path(source).stem if isinstance(source, (str, os.PathLike)) else cfg.method
    validate_config(cfg)
    return cfg


def _read_source(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; the recipes are YAML files in configs/")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys (method:, train:, ...), got {type(raw).__name__}")
    return raw


def _parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
            raise ConfigError(f"override {item!r} must look like key=value with a dotted key, e.g. train.steps=2000")
        out[key] = value
    return out


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _is_mapping_type(tp: Any) -> bool:
    return typing.get_origin(tp) in (dict, Mapping) or tp is dict


def _check_keys(tree: Any, schema: type, prefix: str) -> None:
    """Reject unknown keys and sections given as scalars, before OmegaConf sees them (for clearer messages)."""
    fields = _fields(schema)
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(_unknown_key_message(str(key), value, fields, prefix))
        f, tp = fields[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {full!r} is a section with keys {', '.join(_fields(tp))}; give a mapping "
                    f"or set one key, e.g. {full}.{next(iter(_fields(tp)))}=..."
                )
            _check_keys(value, tp, f"{full}.")
        elif isinstance(value, Mapping) and not _is_mapping_type(tp) and tp is not Any:
            raise ConfigError(f"config key {full!r} takes a single {_type_name(tp)}, not a mapping")
        elif tp is str and isinstance(value, bool):
            choices = f.metadata.get("choices")
            allowed = f" (one of: {', '.join(map(str, choices))})" if choices else ""
            raise ConfigError(
                f"config key {full!r} takes a string{allowed}, but YAML read its value as the boolean {value} (YAML "
                f"turns yes, no, on, off into booleans); quote the value, e.g. {full}='\"no\"'"
            )


def _unknown_key_message(key: str, value: Any, fields: Mapping[str, tuple[Any, Any]], prefix: str) -> str:
    full = f"{prefix}{key}"
    is_section = isinstance(value, Mapping)
    # suggest a near name only if it is of the same kind (a section for a section, a value for a value)
    similar = [n for n in fields if dataclasses.is_dataclass(fields[n][1]) == is_section]
    close = difflib.get_close_matches(key, similar, n=1)
    hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
    where = f"under {prefix[:-1]!r}" if prefix else "at the top level"
    extra = ""
    if not prefix and is_section:
        owners = sorted(m for m in METHODS.names() if METHODS.get(m).section == key)
        extra = (f" (section {key!r} belongs to method(s) {', '.join(owners)})" if owners
                 else " (a method's own section exists only when that method is chosen)")
    return f"unknown config key {full!r}{extra}.{hint} Valid keys {where}: {', '.join(fields)}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _field_type(schema: type, dotted: str) -> Any:
    tp: Any = schema
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(tp):
            return None
        fields = _fields(tp)
        if part not in fields:
            return None
        tp = fields[part][1]
    return tp


def _describe_omegaconf_error(exc: OmegaConfBaseException, schema: type) -> str:
    full_key = getattr(exc, "full_key", None)
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if full_key:
        tp = _field_type(schema, full_key)
        expects = f" expects a value of type {_type_name(tp)}" if tp is not None else ""
        return f"config key {full_key!r}{expects}: {detail}"
    return f"invalid config: {detail}"


# --------------------------------------------------------------------------------------------- validation
def validate_config(cfg: Any, prefix: str = "") -> None:
    """Check every field's choices, bounds and pattern (from :func:`option`), recursively.

    Raises:
        ConfigError: Naming the first key whose value is not allowed, and what is allowed.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate_config(value, f"{key}.")
            continue
        meta = f.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ConfigError(
                f"config key {key!r} is {value!r}; choose one of: {', '.join(map(str, meta['choices']))}"
            )
        for bound, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                                ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
            b = meta.get(bound)
            if b is not None and not ok(value, b):
                raise ConfigError(f"config key {key!r} is {value!r}; it must be {word} {b}")
        if meta.get("pattern") and not re.fullmatch(meta["pattern"], str(value)):
            raise ConfigError(f"config key {key!r} is {value!r}; choose one of: {meta['pattern_help']}")
    if not prefix and isinstance(cfg, ExperimentConfig):
        load_builtin_methods()
        if cfg.method not in METHODS:
            raise ConfigError(f"config key 'method': {METHODS.unknown_message(cfg.method)}")


# --------------------------------------------------------------------------------------------- plain data
def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as plain nested dicts (what config.yaml and checkpoints store)."""
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: ExperimentConfig) -> str:
    """The config as YAML text, in field order."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def flatten_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A plain config as ``{dotted key: value}``; ``options`` mappings (free-form) stay whole values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value and key != "options":
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any], *, ignore: Sequence[str] = ()) -> list[str]:
    """The dotted keys whose values differ between two plain configs, as ``"key: a_value != b_value"`` lines.

    Args:
        a, b: Plain configs (from :func:`config_to_dict`).
        ignore: Dotted keys to leave out of the comparison (e.g. ``device``).
    """
    fa, fb = flatten_config(a), flatten_config(b)
    lines = []
    for key in sorted(set(fa) | set(fb)):
        if key in ignore:
            continue
        va, vb = fa.get(key, "<absent>"), fb.get(key, "<absent>")
        if va != vb:
            lines.append(f"{key}: {va!r} != {vb!r}")
    return lines

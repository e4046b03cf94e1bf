"""Comparison recipes: which trainings to run and which transfer paths to score on one set of target episodes.

A recipe (``configs/run/<name>.yaml``) names

* ``trainings``: engine runs (a config of ``configs/`` plus overrides), e.g. a ProtoNet meta-trained on the source,
  a DAGAN, a meta-learned GAN; each is trained once and may serve several paths;
* ``paths``: what is scored. A path is a few-shot *classifier* (a ``meta`` training, or an algorithm that needs no
  training such as ``scratch``) and optionally an *augmenter* that enlarges every support set with generated images
  (a GAN training, or a GAN trained from scratch on the shots) before the classifier adapts;
* ``target``: the ``meta`` config whose ``meta.target`` every path is scored on, the setting (``5w5s``), the number of
  episodes and their seed. All paths see the very same episodes (their fingerprint is checked).

Sizes: ``quick`` (a smoke test), ``default`` (the demo, minutes) and ``full`` (the numbers of ``docs/results.md``) pick
per-training override lists and an episode count.

Example:
    >>> recipe = load_recipe("digits")                       # doctest: +SKIP
    >>> [p.name for p in recipe.paths]                        # doctest: +SKIP
    ['scratch', 'fine-tune', 'protonet', 'maml', ...]
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import metaxfer
from metaxfer.engine.config import ConfigError
from metaxfer.errors import MetaxferError

__all__ = [
    "SIZES",
    "FAMILIES",
    "AUGMENTER_KINDS",
    "TrainingSpec",
    "ClassifierSpec",
    "AugmentSpec",
    "PathSpec",
    "TargetSpec",
    "Recipe",
    "recipe_dirs",
    "list_recipes",
    "find_recipe",
    "load_recipe",
    "recipe_summary",
    "DEFAULT_RECIPE",
]

#: Run sizes, smallest first.
SIZES = ("quick", "default", "full")
#: Path families, in the order the report groups them.
FAMILIES = ("baseline", "meta-learning", "gan", "meta-gan")
#: How an augmenter is made: from a training run (``dagan``, ``meta-gan`` or ``finetune-gan`` read the run's method),
#: a GAN trained from scratch on each episode's shots (``scratch-gan``, no training), or classic augmentations of the
#: shots (``classic``: shifts, zooms, rotations, contrast, blur, noise; no GAN, no training).
AUGMENTER_KINDS = ("run", "scratch-gan", "classic")
#: The recipe ``metaxfer run`` runs with no argument: it needs only the pip-installed data.
DEFAULT_RECIPE = "digits"


@dataclass
class TrainingSpec:
    """One engine run of a recipe.

    Attributes:
        config: A config file, relative to the recipe's folder (e.g. ``../meta-digits.yaml``).
        overrides: ``key=value`` overrides for every size.
        quick: Extra overrides for ``--quick``.
        full: Extra overrides for ``--full``.
        description: One line for the report.
    """

    config: str = ""
    overrides: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    description: str = ""

    def overrides_for(self, size: str) -> list[str]:
        """The overrides of one size (common ones first)."""
        extra = {"quick": self.quick, "full": self.full}.get(size, [])
        return [*self.overrides, *extra]


@dataclass
class ClassifierSpec:
    """The few-shot classifier of a path: a ``meta`` training, or an untrained algorithm (``scratch``).

    Attributes:
        training: Name of a ``meta`` training of the recipe.
        algorithm: An algorithm that needs no training, built from the target config (``scratch``).
        overrides: Extra overrides of the target config for ``algorithm`` (e.g. ``meta.scratch_steps=50``).
    """

    training: str = ""
    algorithm: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class AugmentSpec:
    """Generated support images added to every episode before the classifier adapts.

    Attributes:
        kind: ``run`` (an augmenter read from ``training``), ``scratch-gan`` (a GAN trained on each class's shots) or
            ``classic`` (classic augmentations of the shots).
        training: The training the augmenter comes from (``kind: run``).
        per_class: Generated images per class and episode.
        options: Extra keyword arguments of the augmenter (e.g. adaptation steps).
        made_weight: Weight of a generated image against a real shot's 1 in the classifier's adaptation (below 1:
            the real shots count more); only classifiers that weigh support images take another value than 1
            (``weighted_support``: ProtoNet, Matching Networks, scratch, the Baselines).
    """

    kind: str = "run"
    training: str = ""
    per_class: int = 5
    options: dict[str, Any] = field(default_factory=dict)
    made_weight: float = 1.0


@dataclass
class PathSpec:
    """One transfer path of the comparison.

    Attributes:
        name: Short unique name (a table row, a folder name).
        family: ``baseline``, ``meta-learning``, ``gan`` or ``meta-gan``.
        description: One line for the report.
        classifier: The few-shot classifier.
        augment: Generated support images, or ``None``.
    """

    name: str = ""
    family: str = "baseline"
    description: str = ""
    classifier: ClassifierSpec = field(default_factory=ClassifierSpec)
    augment: AugmentSpec | None = None


@dataclass
class TargetSpec:
    """Where and how every path is scored.

    Attributes:
        config: The ``meta`` config (relative to the recipe) whose ``meta.target`` is the target domain.
        setting: ``<N>w<K>s[<Q>q]``, e.g. ``5w5s``.
        queries: Q when ``setting`` gives none.
        episodes: Episodes per size.
        seed: Seed of the episode draw.
    """

    config: str = ""
    setting: str = "5w5s"
    queries: int = 15
    episodes: dict[str, int] = field(default_factory=lambda: {"quick": 10, "default": 100, "full": 600})
    seed: int = 0


@dataclass
class Recipe:
    """A comparison recipe (see the module docstring).

    Attributes:
        name: Recipe name (its file name).
        title: Report title.
        description: A paragraph for the report.
        data: What data it needs, in words (``pip`` for the pip-only set-up).
        threads: Torch threads for every training and the evaluation.
        target: The scoring set-up.
        trainings: Engine runs by name.
        paths: The paths, in table order.
        path: The recipe file (filled in by :func:`load_recipe`).
    """

    name: str = ""
    title: str = ""
    description: str = ""
    data: str = "pip"
    threads: int = 1
    target: TargetSpec = field(default_factory=TargetSpec)
    trainings: dict[str, TrainingSpec] = field(default_factory=dict)
    paths: list[PathSpec] = field(default_factory=list)
    path: str = ""

    @property
    def folder(self) -> Path:
        """The folder config paths are relative to."""
        return Path(self.path).parent

    def config_path(self, relative: str) -> Path:
        """A config file named relative to the recipe."""
        return (self.folder / relative).resolve()

    def trainings_used(self, paths: list[PathSpec] | None = None) -> list[str]:
        """The trainings the given paths (default all) need, in recipe order."""
        needed: set[str] = set()
        for p in self.paths if paths is None else paths:
            if p.classifier.training:
                needed.add(p.classifier.training)
            if p.augment is not None and p.augment.training:
                needed.add(p.augment.training)
        return [name for name in self.trainings if name in needed]

    def select(self, names: list[str]) -> list[PathSpec]:
        """The paths with these names (all when empty).

        Raises:
            ConfigError: An unknown path name (the message lists the valid ones).
        """
        if not names:
            return list(self.paths)
        known = {p.name: p for p in self.paths}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"recipe {self.name!r} has no path {', '.join(map(repr, unknown))}; its paths: "
                              f"{', '.join(known)}")
        return [known[n] for n in names]

    def validate(self) -> None:
        """Check names and references.

        Raises:
            ConfigError: What is wrong, and where.
        """
        where = f"recipe {self.name!r} ({self.path})"
        if not self.paths:
            raise ConfigError(f"{where}: no paths; add at least one under `paths:`")
        if not self.target.config:
            raise ConfigError(f"{where}: target.config must name the meta config whose target is scored")
        for size in SIZES:
            if self.target.episodes.get(size, 1) < 1:
                raise ConfigError(f"{where}: target.episodes.{size} must be >= 1")
        if self.threads < 1:
            raise ConfigError(f"{where}: threads must be >= 1, got {self.threads}")
        for name, t in self.trainings.items():
            if not t.config:
                raise ConfigError(f"{where}: training {name!r} needs a config")
            if not self.config_path(t.config).is_file():
                raise ConfigError(f"{where}: training {name!r}: config {self.config_path(t.config)} not found")
        seen: set[str] = set()
        for p in self.paths:
            if not p.name or "/" in p.name or p.name in seen:
                raise ConfigError(f"{where}: path names must be unique, non-empty and without '/', got {p.name!r}")
            seen.add(p.name)
            if p.family not in FAMILIES:
                raise ConfigError(f"{where}: path {p.name!r}: family {p.family!r} is not one of {', '.join(FAMILIES)}")
            c = p.classifier
            if bool(c.training) == bool(c.algorithm):
                raise ConfigError(f"{where}: path {p.name!r}: give the classifier either `training` (a meta run) or "
                                  "`algorithm` (one that needs no training, e.g. scratch), not both or neither")
            if c.training and c.training not in self.trainings:
                raise ConfigError(f"{where}: path {p.name!r}: unknown training {c.training!r}; trainings: "
                                  f"{', '.join(self.trainings) or 'none'}")
            a = p.augment
            if a is None:
                continue
            if a.kind not in AUGMENTER_KINDS:
                raise ConfigError(f"{where}: path {p.name!r}: augment.kind {a.kind!r} is not one of "
                                  f"{', '.join(AUGMENTER_KINDS)}")
            if a.kind == "run" and a.training not in self.trainings:
                raise ConfigError(f"{where}: path {p.name!r}: augment.training {a.training!r} is not a training of "
                                  f"the recipe ({', '.join(self.trainings) or 'none'})")
            if a.per_class < 1:
                raise ConfigError(f"{where}: path {p.name!r}: augment.per_class must be >= 1")
            if not math.isfinite(a.made_weight) or a.made_weight <= 0:
                raise ConfigError(f"{where}: path {p.name!r}: augment.made_weight must be a positive number (a "
                                  f"generated image's weight against a real shot's 1), got {a.made_weight}")


def recipe_dirs() -> list[Path]:
    """Folders searched for recipes by name: ``$METAXFER_RECIPES``, ``./configs/run``, then the checkout's."""
    dirs = []
    env = os.environ.get("METAXFER_RECIPES")
    if env:
        dirs.append(Path(env))
    dirs.append(Path.cwd() / "configs" / "run")
    dirs.append(Path(metaxfer.__file__).resolve().parents[2] / "configs" / "run")
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in out:
            out.append(d.resolve())
    return out


def list_recipes() -> dict[str, Path]:
    """Every recipe found, by name (the first folder of :func:`recipe_dirs` wins)."""
    found: dict[str, Path] = {}
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def find_recipe(name_or_path: str) -> Path:
    """A recipe file from a name (``digits``) or a path.

    Raises:
        ConfigError: No such recipe (the message lists the recipes found and where they were looked for).
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise ConfigError(f"recipe file {p} not found")
        return p
    found = list_recipes()
    if name_or_path not in found:
        where = ", ".join(str(d) for d in recipe_dirs()) or "no configs/run folder found (run from the checkout)"
        raise ConfigError(f"unknown recipe {name_or_path!r}; recipes: {', '.join(found) or 'none'} (searched {where})")
    return found[name_or_path]


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe.

    Args:
        name_or_path: A recipe name or a YAML file.
        overrides: Dotted ``key=value`` overrides, e.g. ``target.episodes.default=50`` or ``threads=2``.

    Raises:
        ConfigError: Unreadable YAML, unknown keys, wrong types or broken references; the message names the key.
    """
    path = find_recipe(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path}: the top level must be a mapping")
    raw.setdefault("name", path.stem)
    raw["path"] = str(path.resolve())
    try:
        base = OmegaConf.structured(Recipe)
        merged = OmegaConf.merge(base, raw)
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"override {item!r} must look like key=value, e.g. target.episodes.default=50")
            if OmegaConf.select(merged, key, default="\x00missing") == "\x00missing":
                raise ConfigError(f"recipe {path.stem}: no key {key!r} to override (top-level keys: "
                                  f"{', '.join(f.name for f in dataclasses.fields(Recipe))})")
            OmegaConf.update(merged, key, yaml.safe_load(value), merge=True)
        recipe: Recipe = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"recipe {path}: {exc}".split("\n    full_key")[0]) from exc
    recipe.validate()
    return recipe


def recipe_summary(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data (for ``comparison.json``)."""
    return OmegaConf.to_container(OmegaConf.structured(recipe))  # type: ignore[return-value]

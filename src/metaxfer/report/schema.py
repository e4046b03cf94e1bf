"""The comparison file of a ``metaxfer run`` folder (``<run>/comparison.json``) as typed dataclasses.

``metaxfer run`` fills a :class:`Comparison` (one :class:`PathResult` per transfer path, all evaluated on the same
target episodes) and saves it with :meth:`Comparison.save`; the report (:func:`metaxfer.report.write_report`) and
the printed table (:func:`metaxfer.report.format_table`) read it back with :meth:`Comparison.load`.

The JSON layout::

    {"recipe": str, "title": str, "description": str, "created": ISO 8601 time, "command": str,
     "versions": {name: version}, "device": str, "threads": int,
     "setting": {"source", "target", "ways", "shots", "queries", "episodes", "seed", "fingerprint"},
     "paths": [{"name", "family", "description",
                "accuracy": {"mean", "ci95", "n"},          # fractions in [0, 1]; n = target episodes
                "seconds": {"train", "evaluate"},
                "run": "paths/<name>" | null,               # an engine run folder (metrics.jsonl, samples/)
                "images": [{"title", "path", "caption"}],   # paths relative to the run folder
                "metrics": {name: number}}],                # optional extra numbers (e.g. FID), may be {}
     "images": [{"title", "path", "caption"}],              # figures about the whole comparison
     "config": {...}}                                       # the resolved recipe as plain data

Every file path in it is relative to the run folder and stays inside it, so a run folder can be moved or copied
whole. Validation errors name the offending field (``paths[2].accuracy.mean``) and say what it should be.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from metaxfer.engine.files import atomic_write_text
from metaxfer.errors import DataFormatError, MetaxferError

__all__ = [
    "COMPARISON_FILE",
    "FAMILIES",
    "ComparisonError",
    "Accuracy",
    "Seconds",
    "ImageRef",
    "Setting",
    "PathResult",
    "Paired",
    "Comparison",
]

COMPARISON_FILE = "comparison.json"

#: The kinds of transfer path, in the order the report's legend lists them.
FAMILIES: tuple[str, ...] = ("baseline", "meta-learning", "gan", "meta-gan")


class ComparisonError(MetaxferError, ValueError):
    """A comparison (or its ``comparison.json``) is malformed; the message names the field and the fix."""


# ---------------------------------------------------------------------------------------------- field checks
def _fail(where: str, what: str) -> ComparisonError:
    return ComparisonError(f"{where} {what}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"must be a JSON object, got {type(value).__name__}")
    return value


def _keys(data: dict[str, Any], where: str, *, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in data]
    if missing:
        raise _fail(where, f"lacks {', '.join(map(repr, missing))} (it needs {', '.join(required)})")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise _fail(where, f"has unknown keys {', '.join(map(repr, unknown))}; the known keys are "
                           f"{', '.join(required + optional)} (new fields go into metaxfer.report.schema first)")


def _str(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, got {type(value).__name__} {value!r}")
    if not empty and not value.strip():
        raise _fail(where, "must not be empty")
    return value


def _int(value: Any, where: str, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"must be an integer, got {type(value).__name__} {value!r}")
    if low is not None and value < low:
        raise _fail(where, f"must be at least {low}, got {value}")
    return value


def _float(value: Any, where: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(where, f"must be a finite number, got {value}")
    if low is not None and value < low:
        raise _fail(where, f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise _fail(where, f"must be at most {high}, got {value}")
    return value


def _relative(value: Any, where: str) -> str:
    """A path relative to the run folder that stays inside it, written with forward slashes."""
    text = _str(value, where, empty=False)
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or text.startswith("~") or (len(text) > 1 and text[1] == ":"):
        raise _fail(where, f"must be relative to the run folder, got absolute path {text!r}")
    if ".." in posix.parts:
        raise _fail(where, f"must stay inside the run folder, got {text!r} (it climbs out with '..')")
    return posix.as_posix()


# ---------------------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class Accuracy:
    """Mean accuracy over the target episodes with its 95% confidence half-width.

    Args:
        mean: Mean query accuracy, a fraction in [0, 1].
        ci95: Half-width of the 95% confidence interval, a fraction (``mean ± ci95``).
        n: Number of episodes averaged.
    """

    mean: float
    ci95: float
    n: int

    @property
    def low(self) -> float:
        """Lower end of the 95% interval."""
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        """Upper end of the 95% interval."""
        return self.mean + self.ci95

    def check(self, where: str = "accuracy") -> None:
        """Raise :class:`ComparisonError` unless the fields hold valid values."""
        _float(self.mean, f"{where}.mean", low=0.0, high=1.0)
        _float(self.ci95, f"{where}.ci95", low=0.0, high=1.0)
        _int(self.n, f"{where}.n", low=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"mean": float(self.mean), "ci95": float(self.ci95), "n": int(self.n)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "accuracy") -> Accuracy:
        """Parse and validate plain JSON data; ``where`` names it in error messages."""
        data = _mapping(data, where)
        _keys(data, where, required=("mean", "ci95", "n"))
        out = cls(mean=_float(data["mean"], f"{where}.mean"), ci95=_float(data["ci95"], f"{where}.ci95"),
                  n=_int(data["n"], f"{where}.n"))
        out.check(where)
        return out


@dataclass(frozen=True)
class Seconds:
    """Wall-clock seconds a path spent training (including meta-training and GAN training) and evaluating."""

    train: float
    evaluate: float

    def check(self, where: str = "seconds") -> None:
        """Raise :class:`ComparisonError` unless both times are finite and non-negative."""
        _float(self.train, f"{where}.train", low=0.0)
        _float(self.evaluate, f"{where}.evaluate", low=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"train": float(self.train), "evaluate": float(self.evaluate)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "seconds") -> Seconds:
        """Parse and validate plain JSON data; ``where`` names it in error messages."""
        data = _mapping(data, where)
        _keys(data, where, required=("train", "evaluate"))
        out = cls(train=_float(data["train"], f"{where}.train"), evaluate=_float(data["evaluate"], f"{where}.evaluate"))
        out.check(where)
        return out


@dataclass(frozen=True)
class ImageRef:
    """A picture in the run folder (a PNG or JPEG) shown in the report.

    Args:
        title: Heading above it.
        path: File path relative to the run folder (e.g. ``paths/dagan/samples/step-00000500.png``).
        caption: One or two sentences under it saying what it shows.
    """

    title: str
    path: str
    caption: str = ""

    def check(self, where: str = "image") -> None:
        """Raise :class:`ComparisonError` unless the title and caption are strings and the path is relative."""
        _str(self.title, f"{where}.title")
        _str(self.caption, f"{where}.caption")
        _relative(self.path, f"{where}.path")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"title": self.title, "path": _relative(self.path, "image.path"), "caption": self.caption}

    @classmethod
    def from_dict(cls, data: Any, where: str = "image") -> ImageRef:
        """Parse and validate plain JSON data; ``where`` names it in error messages."""
        data = _mapping(data, where)
        _keys(data, where, required=("title", "path"), optional=("caption",))
        return cls(title=_str(data["title"], f"{where}.title"), path=_relative(data["path"], f"{where}.path"),
                   caption=_str(data.get("caption", ""), f"{where}.caption"))


@dataclass(frozen=True)
class Setting:
    """The target episodes every path was evaluated on.

    Args:
        source: Source domain(s) the transfer starts from.
        target: Target domain the episodes come from.
        ways: Classes per episode.
        shots: Labelled support examples per class.
        queries: Query examples per class.
        episodes: Number of target episodes.
        seed: Seed of the episode sampler.
        fingerprint: Hash of the episode list, the same for every path of one run.
    """

    source: str
    target: str
    ways: int
    shots: int
    queries: int
    episodes: int
    seed: int
    fingerprint: str

    def check(self, where: str = "setting") -> None:
        """Raise :class:`ComparisonError` unless every field holds a valid value."""
        _str(self.source, f"{where}.source", empty=False)
        _str(self.target, f"{where}.target", empty=False)
        for name in ("ways", "shots", "queries", "episodes"):
            _int(getattr(self, name), f"{where}.{name}", low=1)
        _int(self.seed, f"{where}.seed")
        _str(self.fingerprint, f"{where}.fingerprint")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"source": self.source, "target": self.target, "ways": self.ways, "shots": self.shots,
                "queries": self.queries, "episodes": self.episodes, "seed": self.seed, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, data: Any, where: str = "setting") -> Setting:
        """Parse and validate plain JSON data; ``where`` names it in error messages."""
        data = _mapping(data, where)
        names = ("source", "target", "ways", "shots", "queries", "episodes", "seed", "fingerprint")
        _keys(data, where, required=names)
        out = cls(**{k: data[k] for k in names})
        out.check(where)
        return out


@dataclass(frozen=True)
class PathResult:
    """One transfer path's result on the shared target episodes.

    Args:
        name: Short unique name (``protonet``, ``dagan+finetune``); it labels table rows, bars and curves.
        family: One of :data:`FAMILIES`.
        description: One sentence on what the path does.
        accuracy: Its accuracy over the target episodes.
        seconds: Its training and evaluation time.
        run: Its engine run folder relative to the comparison folder (``paths/<name>``), or ``None``; the report
            draws learning curves from its ``metrics.jsonl`` and shows its last ``samples/`` grid.
        images: Pictures of this path (sample grids, translations), relative to the comparison folder.
        metrics: Extra numbers to show beside the accuracy (e.g. ``{"FID": 41.2}``).
    """

    name: str
    family: str
    description: str
    accuracy: Accuracy
    seconds: Seconds
    run: str | None = None
    images: list[ImageRef] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def check(self, where: str = "path") -> None:
        """Raise :class:`ComparisonError` unless every field holds a valid value."""
        _str(self.name, f"{where}.name", empty=False)
        if self.family not in FAMILIES:
            raise _fail(f"{where}.family", f"must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        _str(self.description, f"{where}.description")
        if not isinstance(self.accuracy, Accuracy):
            raise _fail(f"{where}.accuracy", f"must be an Accuracy, got {type(self.accuracy).__name__}")
        self.accuracy.check(f"{where}.accuracy")
        if not isinstance(self.seconds, Seconds):
            raise _fail(f"{where}.seconds", f"must be a Seconds, got {type(self.seconds).__name__}")
        self.seconds.check(f"{where}.seconds")
        if self.run is not None:
            _relative(self.run, f"{where}.run")
        for i, image in enumerate(self.images):
            image.check(f"{where}.images[{i}]")
        _mapping(self.metrics, f"{where}.metrics")
        for key, value in self.metrics.items():
            _str(key, f"{where}.metrics key", empty=False)
            _float(value, f"{where}.metrics[{key!r}]")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"name": self.name, "family": self.family, "description": self.description,
                "accuracy": self.accuracy.to_dict(), "seconds": self.seconds.to_dict(),
                "run": None if self.run is None else _relative(self.run, "path.run"),
                "images": [i.to_dict() for i in self.images],
                "metrics": {k: float(v) for k, v in self.metrics.items()}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "path") -> PathResult:
        """Parse and validate plain JSON data; ``where`` names it in error messages."""
        data = _mapping(data, where)
        _keys(data, where, required=("name", "family", "description", "accuracy", "seconds"),
              optional=("run", "images", "metrics"))
        run = data.get("run")
        images = data.get("images", [])
        if not isinstance(images, list):
            raise _fail(f"{where}.images", f"must be a list, got {type(images).__name__}")
        metrics = _mapping(data.get("metrics", {}), f"{where}.metrics")
        out = cls(
            name=_str(data["name"], f"{where}.name", empty=False),
            family=_str(data["family"], f"{where}.family"),
            description=_str(data["description"], f"{where}.description"),
            accuracy=Accuracy.from_dict(data["accuracy"], f"{where}.accuracy"),
            seconds=Seconds.from_dict(data["seconds"], f"{where}.seconds"),
            run=None if run is None else _relative(run, f"{where}.run"),
            images=[ImageRef.from_dict(x, f"{where}.images[{i}]") for i, x in enumerate(images)],
            metrics={_str(k, f"{where}.metrics key", empty=False): _float(v, f"{where}.metrics[{k!r}]")
                     for k, v in metrics.items()},
        )
        out.check(where)
        return out


@dataclass(frozen=True)
class Paired:
    """The best path against another, paired by episode (both were scored on the same episodes).

    Args:
        best: Name of the best path.
        other: Name of the other path.
        difference: Mean over episodes of ``best − other`` accuracy (a fraction in [-1, 1]).
        ci95: Half-width of its 95% confidence interval.
        significant: Whether the interval excludes zero.
    """

    best: str
    other: str
    difference: float
    ci95: float
    significant: bool

    def check(self, where: str = "paired") -> None:
        """Raise :class:`ComparisonError` unless the fields hold valid values."""
        _str(self.best, f"{where}.best", empty=False)
        _str(self.other, f"{where}.other", empty=False)
        _float(self.difference, f"{where}.difference", low=-1.0, high=1.0)
        _float(self.ci95, f"{where}.ci95", low=0.0, high=2.0)
        if not isinstance(self.significant, bool):
            raise _fail(f"{where}.significant", f"must be true or false, got {self.significant!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"best": self.best, "other": self.other, "difference": float(self.difference),
                "ci95": float(self.ci95), "significant": bool(self.significant)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "paired") -> Paired:
        """Parse and validate plain JSON data; ``where`` names it in error messages."""
        data = _mapping(data, where)
        _keys(data, where, required=("best", "other", "difference", "ci95", "significant"))
        out = cls(best=_str(data["best"], f"{where}.best"), other=_str(data["other"], f"{where}.other"),
                  difference=_float(data["difference"], f"{where}.difference"),
                  ci95=_float(data["ci95"], f"{where}.ci95"), significant=data["significant"])
        out.check(where)
        return out


@dataclass
class Comparison:
    """Everything ``metaxfer run`` measured: one result per transfer path on the same target episodes.

    Args:
        recipe: Name of the recipe that was run.
        title: Heading of the report.
        description: A paragraph on what the recipe compares.
        created: When the run started, ISO 8601 (:func:`metaxfer.engine.runs.now_iso`).
        command: The command line that produced the run.
        versions: Software versions (:func:`metaxfer.engine.runs.versions`).
        device: The device it ran on (``cpu``, ``cuda:0 (NVIDIA H100)``).
        threads: CPU threads torch used.
        setting: The shared target episodes.
        paths: One result per path (at least one; names unique).
        images: Figures about the whole comparison, relative to the run folder.
        config: The resolved recipe as plain JSON data.
        size: The run size (``quick``, ``default`` or ``full``).
        seconds: Wall-clock seconds of the whole comparison.
        paired: The best path against each other one, paired by episode.
    """

    recipe: str
    title: str
    description: str
    created: str
    command: str
    versions: dict[str, str]
    device: str
    threads: int
    setting: Setting
    paths: list[PathResult]
    images: list[ImageRef] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    size: str = "default"
    seconds: float = 0.0
    paired: list[Paired] = field(default_factory=list)

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Raise :class:`ComparisonError` naming the first invalid field (and what a valid one looks like)."""
        _str(self.recipe, "recipe", empty=False)
        _str(self.title, "title", empty=False)
        _str(self.description, "description")
        _str(self.created, "created", empty=False)
        try:
            _dt.datetime.fromisoformat(self.created)
        except ValueError:
            raise _fail("created", f"must be an ISO 8601 time such as 2024-05-01T12:30:00+02:00, got "
                                   f"{self.created!r}") from None
        _str(self.command, "command")
        _mapping(self.versions, "versions")
        for key, value in self.versions.items():
            _str(value, f"versions[{key!r}]")
        _str(self.device, "device")
        _int(self.threads, "threads", low=1)
        if not isinstance(self.setting, Setting):
            raise _fail("setting", f"must be a Setting, got {type(self.setting).__name__}")
        self.setting.check("setting")
        if not isinstance(self.paths, list) or not self.paths:
            raise _fail("paths", "must be a non-empty list: a comparison needs at least one path")
        seen: set[str] = set()
        for i, path in enumerate(self.paths):
            if not isinstance(path, PathResult):
                raise _fail(f"paths[{i}]", f"must be a PathResult, got {type(path).__name__}")
            path.check(f"paths[{i}]")
            if path.name in seen:
                raise _fail(f"paths[{i}].name", f"{path.name!r} is used twice; every path needs its own name")
            seen.add(path.name)
        for i, image in enumerate(self.images):
            image.check(f"images[{i}]")
        _str(self.size, "size", empty=False)
        _float(self.seconds, "seconds", low=0.0)
        for i, pair in enumerate(self.paired):
            if not isinstance(pair, Paired):
                raise _fail(f"paired[{i}]", f"must be a Paired, got {type(pair).__name__}")
            pair.check(f"paired[{i}]")
            for end in (pair.best, pair.other):
                if end not in seen:
                    raise _fail(f"paired[{i}]", f"names path {end!r}, which is not in paths")
        _mapping(self.config, "config")
        try:
            json.dumps(self.config, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _fail("config", f"must be plain JSON data (dicts, lists, strings, finite numbers): {exc}; "
                                  "convert it with omegaconf.OmegaConf.to_container or dataclasses.asdict") from None

    # ------------------------------------------------------------------ queries
    def ranked(self) -> list[PathResult]:
        """The paths from best to worst mean accuracy (ties broken by name)."""
        return sorted(self.paths, key=lambda p: (-p.accuracy.mean, p.name))

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON data (validated first)."""
        self.check()
        return {
            "recipe": self.recipe, "title": self.title, "description": self.description, "created": self.created,
            "command": self.command, "versions": dict(self.versions), "device": self.device, "threads": self.threads,
            "setting": self.setting.to_dict(), "paths": [p.to_dict() for p in self.paths],
            "images": [i.to_dict() for i in self.images], "config": self.config,
            "size": self.size, "seconds": float(self.seconds), "paired": [p.to_dict() for p in self.paired],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Comparison:
        """Parse and validate plain JSON data.

        Raises:
            ComparisonError: A field is missing, unknown, of the wrong type or out of range.
        """
        data = _mapping(data, "comparison")
        _keys(data, "comparison", required=("recipe", "title", "description", "created", "command", "versions",
                                            "device", "threads", "setting", "paths"),
              optional=("images", "config", "size", "seconds", "paired"))
        paths = data["paths"]
        if not isinstance(paths, list):
            raise _fail("paths", f"must be a list, got {type(paths).__name__}")
        images = data.get("images", [])
        if not isinstance(images, list):
            raise _fail("images", f"must be a list, got {type(images).__name__}")
        paired = data.get("paired", [])
        if not isinstance(paired, list):
            raise _fail("paired", f"must be a list, got {type(paired).__name__}")
        out = cls(
            recipe=_str(data["recipe"], "recipe"), title=_str(data["title"], "title"),
            description=_str(data["description"], "description"), created=_str(data["created"], "created"),
            command=_str(data["command"], "command"), versions=dict(_mapping(data["versions"], "versions")),
            device=_str(data["device"], "device"), threads=_int(data["threads"], "threads"),
            setting=Setting.from_dict(data["setting"], "setting"),
            paths=[PathResult.from_dict(p, f"paths[{i}]") for i, p in enumerate(paths)],
            images=[ImageRef.from_dict(x, f"images[{i}]") for i, x in enumerate(images)],
            config=_mapping(data.get("config", {}), "config"),
            size=_str(data.get("size", "default"), "size"),
            seconds=_float(data.get("seconds", 0.0), "seconds"),
            paired=[Paired.from_dict(x, f"paired[{i}]") for i, x in enumerate(paired)],
        )
        out.check()
        return out

    def to_json(self) -> str:
        """The comparison as indented JSON text (validated first)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "comparison JSON") -> Comparison:
        """Parse and validate JSON text.

        Args:
            text: The JSON.
            source: What the text came from, for error messages (e.g. the file path).

        Raises:
            ComparisonError: The text is not JSON, or a field is invalid (the message starts with ``source``).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ComparisonError(f"{source} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ComparisonError as exc:
            raise ComparisonError(f"{source}: {exc}") from None

    # ------------------------------------------------------------------ files
    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Write ``<run_dir>/comparison.json`` atomically; return its path."""
        return atomic_write_text(Path(run_dir) / COMPARISON_FILE, self.to_json())

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> Comparison:
        """Read ``<run_dir>/comparison.json``.

        Raises:
            DataFormatError: ``run_dir`` holds no comparison.json (it is not a ``metaxfer run`` folder).
            ComparisonError: The file is malformed.
        """
        path = Path(run_dir) / COMPARISON_FILE
        if not path.is_file():
            raise DataFormatError(f"{run_dir} has no {COMPARISON_FILE}: it is not a `metaxfer run` folder (or the "
                                  "run stopped before its paths finished); run `metaxfer run` to make one")
        return cls.from_json(path.read_text(encoding="utf-8"), source=str(path))

"""The ``Domain``: one labelled image set, and the registry of named domains.

A domain holds every image in memory as one uint8 tensor; at the sizes metaxfer works with (28×28 to 84×84, up to
a few hundred thousand images) this is what makes episode sampling and training fast and simple.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from metaxfer.errors import DataFormatError, DataNotFoundError, MissingDependencyError
from metaxfer.registry import Registry

__all__ = [
    "DIGIT_CLASS_NAMES",
    "DIGIT_CLASS_KEYS",
    "Domain",
    "DomainSpec",
    "DOMAINS",
    "register_domain",
    "create_domain",
    "list_domains",
]

log = logging.getLogger(__name__)

#: Class names and keys shared by every digit domain (MNIST, optdigits, USPS, SVHN, printed digits, ...), so that
#: digit domains align class for class in cross-domain episodes and translation recipes.
DIGIT_CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
DIGIT_CLASS_KEYS: tuple[str, ...] = tuple(f"digit-{d}" for d in range(10))


@dataclass
class Domain:
    """A labelled image set from one visual domain.

    Attributes:
        name: The domain's name, e.g. ``"emoji-twemoji"``.
        images: uint8 tensor of shape (N, C, H, W), values 0–255, C = 1 (grey) or 3 (RGB). Ink or foreground is
            bright (255) on a dark (0) background for line drawings, glyphs and digits, as in MNIST.
        labels: int64 tensor of shape (N,), values in ``[0, num_classes)``.
        class_names: One human-readable name per class.
        class_keys: One stable identifier per class (e.g. an emoji's code points, a character's code point); domains
            that share keys share classes, which is what cross-domain episodes align on. Defaults to the names.
        groups: Per-class group memberships, e.g. ``{"alphabet": ["Latin", "Latin", "Greek", ...]}``: for each
            grouping, a list with one entry per class. Used for splits by group.
        instances: Optional per-example attributes, e.g. ``{"font": [...one per image...]}`` or ``{"drawer": ...}``.
        metadata: Plain-data facts about the domain: ``source``, ``license``, ``description`` and anything else
            (e.g. ``names`` per language for emoji). Must be JSON-serialisable.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    class_keys: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    instances: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.class_keys:
            self.class_keys = list(self.class_names)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check shapes, dtypes and that every per-class and per-example list has the right length.

        Raises:
            DataFormatError: Naming the first inconsistency found.
        """
        where = f"domain {self.name!r}"
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            got = getattr(self.images, "dtype", type(self.images).__name__), tuple(getattr(self.images, "shape", ()))
            raise DataFormatError(f"{where}: images must be a uint8 tensor of shape (N, C, H, W), got {got}")
        if self.images.shape[1] not in (1, 3):
            raise DataFormatError(f"{where}: images must have 1 or 3 channels, got {self.images.shape[1]}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataFormatError(
                f"{where}: labels must be int64 of shape ({self.images.shape[0]},), "
                f"got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        n_classes = len(self.class_names)
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= n_classes):
            raise DataFormatError(f"{where}: labels must lie in [0, {n_classes}) to match class_names")
        if len(self.class_keys) != n_classes or len(set(self.class_keys)) != n_classes:
            raise DataFormatError(f"{where}: class_keys must be {n_classes} distinct strings, one per class")
        for key, values in self.groups.items():
            if len(values) != n_classes:
                raise DataFormatError(f"{where}: group {key!r} has {len(values)} entries, expected {n_classes}")
        for key, values in self.instances.items():
            if len(values) != len(self.labels):
                raise DataFormatError(f"{where}: instance {key!r} has {len(values)} entries, expected {len(self)}")

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def class_counts(self) -> torch.Tensor:
        """Number of examples of each class, shape (num_classes,)."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: torch.Tensor | Sequence[int], *, name: str | None = None) -> Domain:
        """The examples at ``indices``, with every class kept (classes may end up empty)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        keep = idx.tolist()
        return dataclasses.replace(
            self,
            name=name or self.name,
            images=self.images[idx],
            labels=self.labels[idx],
            instances={k: [v[i] for i in keep] for k, v in self.instances.items()},
        )

    def select_classes(self, classes: Sequence[int], *, name: str | None = None) -> Domain:
        """Keep only ``classes`` (in the given order), relabelled 0..len(classes)-1."""
        classes = [int(c) for c in classes]
        remap = torch.full((self.num_classes,), -1, dtype=torch.int64)
        remap[torch.tensor(classes, dtype=torch.int64)] = torch.arange(len(classes))
        new_labels = remap[self.labels]
        idx = torch.nonzero(new_labels >= 0).flatten()
        out = self.subset(idx, name=name)
        out.labels = new_labels[idx]
        out.class_names = [self.class_names[c] for c in classes]
        out.class_keys = [self.class_keys[c] for c in classes]
        out.groups = {k: [v[c] for c in classes] for k, v in self.groups.items()}
        out.metadata = _select_per_class_metadata(self.metadata, classes, self.num_classes)
        out.validate()
        return out

    def describe(self) -> str:
        """One line: name, classes, examples, shape."""
        c, h, w = self.image_shape
        return f"{self.name}: {self.num_classes} classes, {len(self)} images of {c}×{h}×{w}"


def _select_per_class_metadata(metadata: Mapping[str, Any], classes: list[int], n: int) -> dict[str, Any]:
    """Carry metadata over to a class subset; per-class tables (dicts of lists of length n) are subset too."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, dict) and value and all(isinstance(v, list) and len(v) == n for v in value.values()):
            out[key] = {k: [v[c] for c in classes] for k, v in value.items()}
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class DomainSpec:
    """How to build one registered domain.

    Attributes:
        name: Registry name.
        build: ``build(**options) -> Domain``; options are domain-specific (e.g. ``size=28``).
        description: One line for ``metaxfer data list``.
        source: Where the data comes from (a PyPI or Debian package, or "user path").
        license: The data's licence.
        requires: ``(python_modules, debian_packages, install_hint)``: what must be present. ``check()`` uses it.
        default: Whether the domain is part of the default set (shown by ``make demo``).
        cache_key: Extra inputs of the cache fingerprint (e.g. files the build reads); see ``metaxfer.data.cache``.
        needs_root: Whether the domain reads a user-supplied path (a ``root=`` option) instead of package data.
    """

    name: str
    build: Callable[..., Domain]
    description: str
    source: str
    license: str
    python_modules: tuple[str, ...] = ()
    debian_packages: tuple[str, ...] = ()
    install_hint: str = ""
    default: bool = True
    needs_root: bool = False
    fingerprint_files: Callable[..., list[str]] | None = None

    def check(self) -> str | None:
        """Return ``None`` if the domain can be built here, else a message saying what to install."""
        import importlib.util

        missing = [m for m in self.python_modules if importlib.util.find_spec(m) is None]
        if missing:
            return f"missing Python module(s) {', '.join(missing)}: {self.install_hint or 'pip install ' + ' '.join(missing)}"
        if self.debian_packages:
            from metaxfer.data import system

            absent = [p for p in self.debian_packages if not system.debian_package_present(p)]
            if absent:
                return (
                    f"missing Debian package(s) {', '.join(absent)}: "
                    f"{self.install_hint or 'sudo apt-get install ' + ' '.join(absent)}"
                )
        return None


DOMAINS: Registry[DomainSpec] = Registry("domain")


def register_domain(spec: DomainSpec) -> DomainSpec:
    """Add ``spec`` to the domain registry and return it."""
    DOMAINS.register(spec.name, spec)
    return spec


def list_domains(*, default_only: bool = False) -> list[DomainSpec]:
    """Every registered domain's spec, sorted by name."""
    _load_builtin_domains()
    specs = [DOMAINS.get(n) for n in DOMAINS.names()]
    return [s for s in specs if s.default or not default_only]


def create_domain(name: str, *, cache: bool = True, **options: Any) -> Domain:
    """Build (or load from the cache) the registered domain ``name``.

    Args:
        name: A registered domain name (``metaxfer data list`` shows them).
        cache: Read and write the decoded domain in the user cache folder (see ``metaxfer.data.cache``).
        **options: Domain-specific options, e.g. ``size=32`` or ``root="/data/mnist"``.

    Returns:
        The domain.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the valid names.
        MissingDependencyError: A package the domain needs is not installed; the message says how to install it.
    """
    _load_builtin_domains()
    spec = DOMAINS.get(name)
    problem = spec.check()
    if problem is not None:
        raise MissingDependencyError(f"domain {name!r} cannot be built here: {problem}")
    if spec.needs_root and options.get("root") is None:
        raise DataNotFoundError(
            f"domain {name!r} reads files you have on disk: pass root=PATH (on the command line: --option root=PATH). "
            f"{spec.description}"
        )
    if not cache:
        return spec.build(**options)
    from metaxfer.data import cache as cache_mod

    return cache_mod.cached_build(spec, options)


def _load_builtin_domains() -> None:
    """Import the modules that register the built-in domains (once; imports are cached by Python)."""
    import metaxfer.data.loaders  # noqa: F401  (registers on-disk dataset domains)
    import metaxfer.data.sources  # noqa: F401  (registers package-shipped domains)

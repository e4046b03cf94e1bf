"""Cross-domain few-shot data for the ``meta`` method: the source, its split, the target, and evaluation settings.

The protocol: meta-train on the *source* (a domain, possibly merged with others, brought to one image format by
explicit transforms), select the model on *validation* episodes of held-out source classes (or held-out source
examples when source and target share their classes), and report accuracy on fixed episodes of the *target*: the
source's own held-out test classes (``target.domain: ""``), or another domain, optionally with the query set taken
from a third one (emoji: Twemoji support, OpenMoji queries).

The config pieces here are typed dataclasses that :class:`~metaxfer.methods.meta.MetaConfig` nests in the ``meta:``
section; the source domain itself is the engine's ``data.domain`` / ``data.options``.

Example:
    >>> source = build_source("font-glyphs", {}, SourceConfig(), SplitConfig(by="alphabet"), seed=0)
    >>> target = build_target(TargetConfig(), source_test=source.test, image_shape=source.image_shape)
    >>> episodes = target_episodes(target, parse_setting("5w1s", queries=15), episodes=600, seed=0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from metaxfer.data.domain import Domain, create_domain
from metaxfer.data.episodes import EpisodeSampler, EpisodeSet, split_classes
from metaxfer.data.transforms import (
    CenterCrop,
    Compose,
    FitToBox,
    IntensityRange,
    Invert,
    OptdigitsStyle,
    Pad,
    Resize,
    ToChannels,
    Transform,
    apply_to_domain,
)
from metaxfer.engine.config import ConfigError, option
from metaxfer.errors import DataFormatError, EpisodeError
from metaxfer.registry import Registry

__all__ = [
    "TRANSFORMS",
    "AugmentConfig",
    "DomainConfig",
    "SourceConfig",
    "SplitConfig",
    "TargetConfig",
    "Setting",
    "parse_setting",
    "parse_transforms",
    "load_domain",
    "merge_domains",
    "split_domain",
    "jitter_images",
    "augment_domain",
    "SourceData",
    "TargetData",
    "build_source",
    "build_target",
    "GroupedEpisodes",
    "target_episodes",
]

log = logging.getLogger(__name__)

#: Image transforms a config may name in ``transforms: [{name: Resize, size: 28}, ...]``.
TRANSFORMS: Registry[type] = Registry("transform")
for _cls in (Resize, Pad, CenterCrop, FitToBox, ToChannels, Invert, IntensityRange, OptdigitsStyle):
    TRANSFORMS.register(_cls.__name__, _cls)

_SETTING = re.compile(r"(\d+)w(\d+)s(?:(\d+)q)?(?:@([A-Za-z_][\w-]*))?")


# ------------------------------------------------------------------------------------------------------ configs
@dataclass
class AugmentConfig:
    """Jittered copies added to the source (after the split, so copies never cross it).

    Needed where a source class has too few images for an episode's support and query sets, e.g. the emoji styles
    (one drawing per class and style).
    """

    copies: int = option(0, ge=0, help="jittered copies added per source image (0: none)")
    shift: float = option(0.08, ge=0.0, le=0.5, help="largest shift, as a fraction of the image side")
    scale: float = option(0.1, ge=0.0, lt=1.0, help="largest relative change of size")
    rotate: float = option(12.0, ge=0.0, le=180.0, help="largest rotation in degrees")
    seed: int = option(0, help="seed of the jitter (fixed across training seeds: the data stay the same)")


@dataclass
class DomainConfig:
    """A registered domain, its build options and the transforms that bring it to the common image format."""

    domain: str = option("", help="a registered domain (metaxfer data list)")
    options: dict[str, Any] = option(default_factory=dict, help="build options, e.g. {categories: plant}")
    transforms: list[dict[str, Any]] = option(
        default_factory=list, help="e.g. [{name: OptdigitsStyle}, {name: Resize, size: 28, mode: bilinear}]"
    )

    def __post_init__(self) -> None:
        parse_transforms(self.transforms, where="transforms (of a meta.source.extra or meta.target.query domain)")


@dataclass
class SourceConfig:
    """What happens to the source domain (``data.domain``) before it is split."""

    transforms: list[dict[str, Any]] = option(default_factory=list, help="transforms of data.domain's images")
    extra: list[DomainConfig] = option(
        default_factory=list, help="more source domains merged with data.domain (same image format after transforms)"
    )
    augment: AugmentConfig = option(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        parse_transforms(self.transforms, where="meta.source.transforms")


@dataclass
class SplitConfig:
    """How the source is split into meta-training, validation and (optionally) test parts."""

    by: str = option("class", help="class, example (same classes, held-out examples) or a class group, e.g. alphabet")
    fractions: list[float] = option(default_factory=lambda: [0.6, 0.2, 0.2], help="shares of train, val[, test]")
    names: dict[str, list[str]] = option(
        default_factory=dict, help="instead of fractions: {val: [...], test: [...]} (train: all the others if absent)"
    )

    def __post_init__(self) -> None:
        if len(self.fractions) not in (2, 3) or any(f < 0 for f in self.fractions) or not math.isclose(
            sum(self.fractions), 1.0, abs_tol=1e-6
        ):
            raise ConfigError(
                f"config key 'meta.split.fractions' is {list(self.fractions)}; give 2 or 3 non-negative shares "
                "(train, val[, test]) summing to 1, e.g. [0.6, 0.2, 0.2]"
            )
        extra = sorted(set(self.names) - {"train", "val", "test"})
        if extra:
            raise ConfigError(f"config key 'meta.split.names' has keys {extra}; use train, val and test")


@dataclass
class TargetConfig:
    """The domain few-shot performance is reported on."""

    domain: str = option("", help="a registered domain; empty: the source's test split (its unseen classes)")
    options: dict[str, Any] = option(default_factory=dict, help="build options of the target domain")
    transforms: list[dict[str, Any]] = option(default_factory=list, help="transforms to the source's image format")
    by: str = option("class", help="what `names` lists: class names or values of a class group (e.g. alphabet)")
    names: list[str] = option(default_factory=list, help="keep only these classes (or groups); empty: all")
    query: DomainConfig = option(
        default_factory=DomainConfig, help="take query images from this domain (classes matched by class_keys)"
    )

    def __post_init__(self) -> None:
        parse_transforms(self.transforms, where="meta.target.transforms")


# ------------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """One evaluation setting: N-way K-shot with Q queries per class, optionally within one class group.

    Attributes:
        ways, shots, queries: N, K, Q.
        within: A class group (e.g. ``"alphabet"``): every episode's classes come from one group value, as in
            Lake et al.'s within-alphabet one-shot runs; ``None`` for classes drawn from the whole target.
    """

    ways: int
    shots: int
    queries: int
    within: str | None = None

    @property
    def name(self) -> str:
        """File-name form, e.g. ``5w1s15q`` or ``20w1s1q-alphabet``."""
        return f"{self.ways}w{self.shots}s{self.queries}q" + (f"-{self.within}" if self.within else "")

    @property
    def label(self) -> str:
        """Human form, e.g. ``5-way 1-shot`` or ``20-way 1-shot within alphabet``."""
        return f"{self.ways}-way {self.shots}-shot" + (f" within {self.within}" if self.within else "")


def parse_setting(text: str, *, queries: int) -> Setting:
    """Read a setting written ``<N>w<K>s[<Q>q][@<group>]``, e.g. ``5w1s``, ``5w5s15q``, ``20w1s1q@alphabet``.

    Args:
        text: The setting.
        queries: Q when the text gives none.

    Returns:
        The setting.

    Raises:
        ConfigError: The text does not follow the pattern, or N < 2, K < 1 or Q < 1.
    """
    m = _SETTING.fullmatch(str(text).strip())
    if m is None:
        raise ConfigError(
            f"evaluation setting {text!r} must look like <N>w<K>s[<Q>q][@<group>], e.g. 5w1s, 5w5s15q or "
            "20w1s1q@alphabet (N-way K-shot, Q queries per class, classes from one group)"
        )
    ways, shots = int(m[1]), int(m[2])
    q = int(m[3]) if m[3] else queries
    if ways < 2 or shots < 1 or q < 1:
        raise ConfigError(f"evaluation setting {text!r}: need at least 2 ways, 1 shot and 1 query")
    return Setting(ways, shots, q, m[4])


# ------------------------------------------------------------------------------------------------------ domains
def parse_transforms(specs: Sequence[Mapping[str, Any]], *, where: str) -> Compose:
    """Build the transforms a config lists, e.g. ``[{name: Resize, size: 28, mode: bilinear}]``.

    Args:
        specs: One mapping per transform: ``name`` (a class of :mod:`metaxfer.data.transforms`, see
            :data:`TRANSFORMS`) and its keyword arguments (lists become tuples).
        where: The config key, for error messages.

    Returns:
        The transforms composed in order (an empty :class:`Compose` for none).

    Raises:
        ConfigError: A spec is not a mapping, names no or an unknown transform, or has bad arguments.
    """
    steps: list[Transform] = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError(
                f"config key '{where}[{i}]' must be a mapping with a name, e.g. {{name: Resize, size: 28}}; "
                f"got {spec!r}"
            )
        kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in spec.items() if k != "name"}
        name = str(spec["name"])
        if name not in TRANSFORMS:
            raise ConfigError(f"config key '{where}[{i}].name': {TRANSFORMS.unknown_message(name)}")
        cls = TRANSFORMS.get(name)
        try:
            steps.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config key '{where}[{i}]' ({name}): {exc}") from None
    return Compose(steps)


def load_domain(
    name: str, options: Mapping[str, Any], transforms: Sequence[Mapping[str, Any]], *, where: str, transforms_key: str
) -> Domain:
    """Build a registered domain and apply the config's transforms to it.

    Args:
        name: Registered domain name.
        options: Its build options.
        transforms: Transform specs (see :func:`parse_transforms`).
        where: Config key of the domain name, for error messages.
        transforms_key: Config key of the transforms, for error messages.

    Returns:
        The domain; after transforms its name is ``<name>+<Transform>+...``.
    """
    if not name:
        raise ConfigError(f"config key '{where}' names no domain; set it to a registered domain (metaxfer data list)")
    domain = create_domain(name, **dict(options))
    chain = parse_transforms(transforms, where=transforms_key)
    if len(chain) == 0:
        return domain
    label = "+".join([domain.name, *(type(t).__name__ for t in chain.transforms)])
    return apply_to_domain(domain, chain, name=label)


def merge_domains(domains: Sequence[Domain], *, name: str | None = None) -> Domain:
    """One domain holding the classes of several (e.g. Omniglot alphabets plus font-glyph scripts).

    Class keys that repeat across domains are prefixed with their domain's name. Groups and instances kept are those
    every domain has; a ``domain`` group records where each class came from.

    Args:
        domains: Domains with the same image shape.
        name: The merged domain's name (default: the names joined with ``&``).

    Raises:
        DataFormatError: The image shapes differ (the message says to add transforms).
    """
    if len(domains) == 1:
        return domains[0]
    shapes = {d.name: d.image_shape for d in domains}
    if len(set(shapes.values())) != 1:
        raise DataFormatError(
            f"source domains to merge have different image shapes {shapes}: give each transforms to one format, "
            "e.g. [{name: Resize, size: 28}] or [{name: ToChannels, channels: 1}]"
        )
    labels, names, keys, seen = [], [], [], set()
    offset = 0
    for d in domains:
        labels.append(d.labels + offset)
        offset += d.num_classes
        names += d.class_names
        for k in d.class_keys:
            keys.append(k if k not in seen else f"{d.name}:{k}")
            seen.add(keys[-1])
    common_groups = set.intersection(*(set(d.groups) for d in domains))
    groups = {g: [v for d in domains for v in d.groups[g]] for g in sorted(common_groups)}
    groups["domain"] = [d.name for d in domains for _ in range(d.num_classes)]
    common_instances = set.intersection(*(set(d.instances) for d in domains))
    instances = {k: [v for d in domains for v in d.instances[k]] for k in sorted(common_instances)}
    return Domain(
        name=name or "&".join(d.name for d in domains),
        images=torch.cat([d.images for d in domains]),
        labels=torch.cat(labels),
        class_names=names,
        class_keys=keys,
        groups=groups,
        instances=instances,
        metadata={
            "source": "; ".join(str(d.metadata.get("source", d.name)) for d in domains),
            "license": "; ".join(sorted({str(d.metadata.get("license", "?")) for d in domains})),
            "description": "merged: " + ", ".join(d.describe() for d in domains),
            "merged_from": [d.name for d in domains],
        },
    )


def split_domain(domain: Domain, split: SplitConfig, *, seed: int) -> tuple[Domain, Domain, Domain | None]:
    """Split the source into meta-training, validation and test domains.

    ``by: example`` keeps every class in every part and splits each class's examples by ``fractions`` (for sources
    whose classes the target shares, e.g. MNIST → optdigits). Otherwise the classes (or whole groups, e.g. alphabets)
    are split by :func:`metaxfer.data.episodes.split_classes`, and each part is relabelled ``0..n-1``.

    Returns:
        ``(train, val, test)``; ``test`` is ``None`` when it would be empty.

    Raises:
        EpisodeError: An unknown grouping or name, or an empty training or validation part.
    """
    fractions = [*split.fractions, 0.0][:3]
    if split.by == "example":
        if split.names:
            raise EpisodeError("meta.split.names lists classes or groups; with meta.split.by=example use fractions")
        parts = _split_examples(domain.labels, fractions, seed=seed)
        train, val, test = (domain.subset(p, name=domain.name) for p in parts)
        test_or_none = test if len(test) else None
    else:
        names = None
        if split.names:
            items = domain.class_names if split.by == "class" else domain.groups.get(split.by, [])
            listed = {v for k in ("val", "test") for v in split.names.get(k, [])}
            names = {k: list(v) for k, v in split.names.items()}
            names.setdefault("train", sorted(set(items) - listed))
        cs = split_classes(domain, fractions=tuple(fractions), by=split.by, names=names, seed=seed)
        train, val = domain.select_classes(cs.train), domain.select_classes(cs.val)
        test_or_none = domain.select_classes(cs.test) if cs.test else None
    for part, what in ((train, "training"), (val, "validation")):
        if part.num_classes == 0 or len(part) == 0:
            raise EpisodeError(
                f"the source split by {split.by!r} leaves the {what} part of {domain.name!r} empty: give it a positive "
                "share in meta.split.fractions or list its items in meta.split.names"
            )
    return train, val, test_or_none


def _split_examples(labels: torch.Tensor, fractions: Sequence[float], *, seed: int) -> list[torch.Tensor]:
    """Per class, shuffled example indices cut by ``fractions`` (largest-remainder rounding); each part sorted."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        raw = [len(idx) * f for f in fractions]
        counts = [int(math.floor(r)) for r in raw]
        for i in sorted(range(3), key=lambda i: raw[i] - counts[i], reverse=True)[: len(idx) - sum(counts)]:
            counts[i] += 1
        start = 0
        for i, n in enumerate(counts):
            parts[i].append(idx[start : start + n])
            start += n
    return [torch.cat(p).sort().values if p else torch.empty(0, dtype=torch.int64) for p in parts]


# ------------------------------------------------------------------------------------------------------ augmentation
def jitter_images(
    images: torch.Tensor, *, copies: int, shift: float, scale: float, rotate: float, generator: torch.Generator
) -> torch.Tensor:
    """Random affine copies (shift, scale, rotation) of each image; edges are continued (border padding), so a
    white or black background stays white or black.

    Args:
        images: uint8 (N, C, H, W).
        copies: Copies per image.
        shift: Largest shift as a fraction of the side.
        scale: Largest relative change of size.
        rotate: Largest rotation in degrees.
        generator: Source of the random draws.

    Returns:
        uint8 (copies * N, C, H, W): all images' first copy, then all images' second copy, and so on.
    """
    n = images.shape[0]
    total = copies * n
    angle = (torch.rand(total, generator=generator) * 2 - 1) * math.radians(rotate)
    factor = 1.0 + (torch.rand(total, generator=generator) * 2 - 1) * scale
    offset = (torch.rand(total, 2, generator=generator) * 2 - 1) * (2 * shift)  # grid coordinates span 2
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    out = []
    for start in range(0, total, 2048):
        th = theta[start : start + 2048]
        src = images[torch.arange(start, start + len(th)) % n].float()
        grid = F.affine_grid(th, list(src.shape), align_corners=False)
        moved = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out.append(moved.round().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images[:0]


def augment_domain(domain: Domain, augment: AugmentConfig, *, seed_offset: int = 0) -> Domain:
    """The domain plus ``augment.copies`` jittered copies of each image (instance ``copy`` = 0 for originals).

    Args:
        domain: The domain.
        augment: How many copies and how much jitter.
        seed_offset: Added to ``augment.seed`` (so the training and validation parts get different draws).
    """
    if augment.copies == 0:
        return domain
    g = torch.Generator().manual_seed(augment.seed + seed_offset)
    copies = jitter_images(domain.images, copies=augment.copies, shift=augment.shift, scale=augment.scale,
                           rotate=augment.rotate, generator=g)
    reps = augment.copies + 1
    instances = {k: v * reps for k, v in domain.instances.items()}
    instances["copy"] = [str(i) for i in range(reps) for _ in range(len(domain))]
    metadata = dict(domain.metadata)
    metadata["augment"] = dataclasses.asdict(augment)
    return dataclasses.replace(
        domain, images=torch.cat([domain.images, copies]), labels=domain.labels.repeat(reps), instances=instances,
        metadata=metadata,
    )


# ------------------------------------------------------------------------------------------------------ source, target
@dataclass
class SourceData:
    """The source after transforms, split (and augmentation of its training and validation parts).

    Attributes:
        train: Meta-training classes (relabelled ``0..n-1``; Baseline's classifier has one output per class).
        val: Validation part (model selection).
        test: Held-out test part, not augmented, or ``None``; the target when ``target.domain`` is empty.
        image_shape: (C, H, W) every domain must have (the model's input format).
    """

    train: Domain
    val: Domain
    test: Domain | None
    image_shape: tuple[int, int, int]


def build_source(
    domain: str,
    options: Mapping[str, Any],
    source: SourceConfig,
    split: SplitConfig,
    *,
    seed: int,
    augment: bool = True,
) -> SourceData:
    """Load, transform, merge, split and augment the source.

    Args:
        domain: ``data.domain``.
        options: ``data.options``.
        source: ``meta.source``.
        split: ``meta.split``.
        seed: Seed of the split (``data.split_seed``).
        augment: Add the jittered copies (evaluation, which needs only the test part, skips them).
    """
    parts = [load_domain(domain, options, source.transforms, where="data.domain",
                         transforms_key="meta.source.transforms")]
    for i, extra in enumerate(source.extra):
        key = f"meta.source.extra[{i}]"
        parts.append(load_domain(extra.domain, extra.options, extra.transforms, where=f"{key}.domain",
                                 transforms_key=f"{key}.transforms"))
    merged = merge_domains(parts)
    train, val, test = split_domain(merged, split, seed=seed)
    if augment:
        train = augment_domain(train, source.augment, seed_offset=0)
        val = augment_domain(val, source.augment, seed_offset=1)
    log.info("source %s: %d training classes (%d images), %d validation classes (%d images)%s", merged.name,
             train.num_classes, len(train), val.num_classes, len(val),
             f", {test.num_classes} test classes" if test is not None else "")
    return SourceData(train=train, val=val, test=test, image_shape=merged.image_shape)


@dataclass
class TargetData:
    """The target: support images (and the classes episodes may use), and optionally another query domain.

    Attributes:
        support: Where support (and, without ``query``, query) images come from.
        query: Where query images come from, or ``None``.
        description: Plain data for result files (domains, options, transforms, class counts).
    """

    support: Domain
    query: Domain | None
    description: dict[str, Any]


def _select(domain: Domain, by: str, names: Sequence[str], *, where: str) -> Domain:
    if not names:
        return domain
    items = domain.class_names if by == "class" else domain.groups.get(by)
    if items is None:
        valid = ", ".join(["class", *domain.groups])
        raise EpisodeError(f"{where}.by is {by!r}, which domain {domain.name!r} does not have; valid: {valid}")
    unknown = sorted(set(names) - set(items))
    if unknown:
        raise EpisodeError(
            f"{where}.names lists {unknown[:10]}, not in {domain.name!r}; valid: {sorted(set(items))[:40]}"
        )
    wanted = set(names)
    return domain.select_classes([c for c, v in enumerate(items) if v in wanted])


def build_target(
    target: TargetConfig, *, source_test: Domain | None, image_shape: tuple[int, int, int]
) -> TargetData:
    """Load the target (or take the source's test part) and check it has the model's image format.

    Args:
        target: ``meta.target``.
        source_test: The source's test part (used when ``target.domain`` is empty).
        image_shape: The model's input (C, H, W).

    Raises:
        EpisodeError: No target (empty domain and no source test part), or unknown class names.
        DataFormatError: Target images of another format (the message says which transforms to add).
    """
    if target.domain:
        support = load_domain(target.domain, target.options, target.transforms, where="meta.target.domain",
                              transforms_key="meta.target.transforms")
    elif source_test is not None:
        support = source_test
    else:
        raise EpisodeError(
            "meta.target.domain is empty, which means the source's test split, but meta.split gives the test part no "
            "classes: give it a share (meta.split.fractions: [0.6, 0.2, 0.2]) or names, or set meta.target.domain"
        )
    support = _select(support, target.by, target.names, where="meta.target")
    query = None
    if target.query.domain:
        query = load_domain(target.query.domain, target.query.options, target.query.transforms,
                            where="meta.target.query.domain", transforms_key="meta.target.query.transforms")
    for d in (support, query):
        if d is not None and d.image_shape != tuple(image_shape):
            raise DataFormatError(
                f"target domain {d.name!r} has images of shape {d.image_shape} but the model takes "
                f"{tuple(image_shape)}: "
                "add transforms to meta.target.transforms (or meta.target.query.transforms), e.g. "
                f"[{{name: Resize, size: {image_shape[1]}}}] or [{{name: ToChannels, channels: {image_shape[0]}}}]"
            )
    description = {
        "domain": support.name,
        "options": dict(target.options) if target.domain else {"source_test_split": True},
        "transforms": list(target.transforms),
        "classes": support.num_classes,
        "query_domain": query.name if query is not None else None,
        "query_options": dict(target.query.options) if query is not None else None,
    }
    return TargetData(support=support, query=query, description=description)


class GroupedEpisodes:
    """A fixed episode set whose episodes each take their classes from one group (e.g. one alphabet).

    Episodes are shared out evenly over the groups that have enough classes (in sorted group order, the first
    groups getting one more when the count does not divide); group ``i`` draws its episodes with seed ``seed + i``.

    Attributes:
        sets: ``(group value, EpisodeSet)`` pairs.
        seed: The base seed.
    """

    def __init__(self, sets: Sequence[tuple[str, EpisodeSet]], *, seed: int) -> None:
        self.sets, self.seed = list(sets), seed

    def __len__(self) -> int:
        return sum(len(s) for _, s in self.sets)

    def __iter__(self) -> Iterator[Any]:
        for _, s in self.sets:
            yield from s

    def fingerprint(self) -> str:
        """A short hash of every group's name and episode fingerprint."""
        h = hashlib.sha256()
        for group, s in self.sets:
            h.update(f"{group}\x1f{s.fingerprint()}\x1e".encode())
        return h.hexdigest()[:16]


def target_episodes(target: TargetData, setting: Setting, *, episodes: int, seed: int) -> EpisodeSet | GroupedEpisodes:
    """The fixed evaluation episodes of one setting on the target.

    Classes with too few images for K shots and Q queries are left out (logged); within-group settings use only
    groups with at least N classes.

    Args:
        target: The target data.
        setting: N-way K-shot Q-query (within a group or not).
        episodes: How many.
        seed: Seed of the episode draw (the same seed gives the same episodes on every machine).

    Raises:
        EpisodeError: Too few classes (or no group with enough) for the setting.
    """
    if episodes < 1:
        raise EpisodeError(f"need at least one evaluation episode, got {episodes}")

    def sampler(classes: Sequence[int] | None) -> EpisodeSampler:
        return EpisodeSampler(target.support, ways=setting.ways, shots=setting.shots, queries=setting.queries,
                              classes=classes, query_domain=target.query, drop_small_classes=True)

    if setting.within is None:
        s = sampler(None)
        if len(s.classes) < target.support.num_classes:
            log.info("%s on %s: %d of %d classes have enough images", setting.name, target.support.name,
                     len(s.classes), target.support.num_classes)
        return s.fixed(episodes, seed=seed)
    groups = target.support.groups.get(setting.within)
    if groups is None:
        valid = ", ".join(target.support.groups) or "none"
        raise EpisodeError(
            f"setting {setting.name}: target {target.support.name!r} has no class group {setting.within!r} "
            f"(its groups: {valid})"
        )
    eligible = []
    for value in sorted(set(groups)):
        try:
            eligible.append((value, sampler([c for c, g in enumerate(groups) if g == value])))
        except EpisodeError as exc:
            log.info("setting %s: group %s left out (%s)", setting.name, value, exc)
    if not eligible:
        raise EpisodeError(
            f"setting {setting.name}: no {setting.within} of {target.support.name!r} has {setting.ways} classes with "
            f"{setting.shots} + {setting.queries} images each; lower the ways, shots or queries"
        )
    base, extra = divmod(episodes, len(eligible))
    sets = [(value, s.fixed(base + (i < extra), seed=seed + i)) for i, (value, s) in enumerate(eligible)]
    return GroupedEpisodes([(v, s) for v, s in sets if len(s)], seed=seed)

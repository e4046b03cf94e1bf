"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015): 1,623 handwritten characters of 50 alphabets, 20 drawers each.

Read from the official layout, zipped or unpacked::

    images_background/<Alphabet>/characterNN/<charid:04d>_<drawer:02d>.png    (30 alphabets, 964 characters)
    images_evaluation/...                                                     (20 alphabets, 659 characters)
    images_background_small1/..., images_background_small2/...                (5 alphabets each)

or from ``images_background.npz`` (``images`` bool (964, 20, 105, 105), True = background; row k = character id
k + 1; see ``/work/shared/data/omniglot/README.md``). Classes are characters, ordered by character id, so the
unpacked background set and the npz give the same class order. Images are 105×105 black ink on white; they are
inverted (ink bright on dark, like MNIST) and resized with Pillow's BOX filter.

Also: the 20 one-shot classification runs of Lake et al. (2015), :func:`load_omniglot_runs`.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import (
    FileTree,
    PathLike,
    decode_image,
    require_root,
    resize_stack,
    stack_images,
)
from metaxfer.errors import DataFormatError, DataNotFoundError

__all__ = [
    "BACKGROUND_ALPHABETS",
    "OneShotRun",
    "find_omniglot_npz",
    "load_omniglot",
    "load_omniglot_background",
    "load_omniglot_runs",
    "load_omniglot_small1",
    "load_omniglot_small2",
    "read_omniglot_layout",
    "read_omniglot_npz",
]


#: The background alphabets in character-id order, with their number of characters (the official numbering).
BACKGROUND_ALPHABETS: tuple[tuple[str, int], ...] = (
    ("Arcadian", 26),
    ("Armenian", 41),
    ("Asomtavruli_(Georgian)", 40),
    ("Balinese", 24),
    ("Bengali", 46),
    ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 14),
    ("Braille", 26),
    ("Cyrillic", 33),
    ("Early_Aramaic", 22),
    ("Syriac_(Estrangelo)", 23),
    ("Anglo-Saxon_Futhorc", 29),
    ("Futurama", 26),
    ("Grantha", 43),
    ("Greek", 24),
    ("Gujarati", 48),
    ("Hebrew", 22),
    ("Japanese_(hiragana)", 52),
    ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 16),
    ("Malay_(Jawi_-_Arabic)", 40),
    ("Japanese_(katakana)", 47),
    ("Korean", 40),
    ("Latin", 26),
    ("Alphabet_of_the_Magi", 20),
    ("Mkhedruli_(Georgian)", 41),
    ("Burmese_(Myanmar)", 34),
    ("N_Ko", 33),
    ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 14),
    ("Sanskrit", 42),
    ("Tagalog", 17),
    ("Tifinagh", 55),
)

ORIGIN = (
    "Omniglot comes from https://github.com/brendenlake/omniglot (python/images_background.zip, "
    "images_evaluation.zip, images_background_small1.zip, images_background_small2.zip); keep the zips or unpack them."
)
_RUNS_ORIGIN = (
    "The one-shot runs come from https://github.com/brendenlake/omniglot (python/one-shot-classification/all_runs.zip)."
)
_ENV = "METAXFER_OMNIGLOT"
_NPZ = "images_background.npz"
_DEFAULT_FOLDERS = (Path("../shared/data/omniglot"), Path("/work/shared/data/omniglot"))
_FILE = re.compile(r"(\d+)_(\d+)\.png")
_LICENSE = "MIT (Brenden Lake)"


def _decode(data: bytes, *, name: str, size: int) -> np.ndarray:
    """One Omniglot PNG as (1, size, size) uint8, ink bright on dark."""
    return decode_image(data, name=name, channels=1, size=size, resample=Image.Resampling.BOX, invert=True)


def _domain(
    name: str,
    images: torch.Tensor,
    labels: np.ndarray,
    chars: list[tuple[str, str]],
    drawers: list[str],
    source: str,
    description: str,
) -> Domain:
    return Domain(
        name=name,
        images=images,
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=[f"{a}/{c}" for a, c in chars],
        class_keys=[f"omniglot:{a}/{c}" for a, c in chars],
        groups={"alphabet": [a for a, _ in chars]},
        instances={"drawer": drawers},
        metadata={"source": source, "license": _LICENSE, "description": description},
    )


# --------------------------------------------------------------------------------------------- official layout
def read_omniglot_layout(path: PathLike, *, size: int = 28, name: str = "omniglot") -> Domain:
    """Read one image set in Omniglot's official layout, from a zip or an unpacked folder.

    Args:
        path: ``images_background.zip`` (or any set's zip), or the unpacked ``images_background/`` folder; the files
            must sit at ``.../<Alphabet>/characterNN/<charid>_<drawer>.png``.
        size: Output side in pixels (105 keeps the originals).
        name: The domain's name.

    Returns:
        The domain: one class per character (ordered by character id), group ``alphabet`` per class, instance
        ``drawer`` per image; images uint8 (N, 1, size, size), ink bright on dark.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        DataFormatError: The archive is unreadable, holds no PNGs, a file name is not ``<charid>_<drawer>.png`` or an
            image cannot be decoded (each error names the file).
    """
    with FileTree(path) as tree:
        members: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
        for member in tree.names():
            parts = member.split("/")
            if not member.endswith(".png") or "__MACOSX" in parts or parts[-1].startswith("."):
                continue
            match = _FILE.fullmatch(parts[-1])
            if len(parts) < 3 or match is None:
                raise DataFormatError(
                    f"{tree.label(member)}: expected <Alphabet>/characterNN/<charid>_<drawer>.png (Omniglot's layout)"
                )
            members[parts[-3], parts[-2]].append((int(match[1]), match[2], member))
        if not members:
            raise DataFormatError(
                f"{path}: holds no Omniglot PNGs (<Alphabet>/characterNN/<id>_<drawer>.png). {ORIGIN}"
            )
        chars = sorted(members, key=lambda k: (min(m[0] for m in members[k]), k))
        images, labels, drawers = [], [], []
        for label, char in enumerate(chars):
            for _, drawer, member in sorted(members[char], key=lambda m: m[1]):
                images.append(_decode(tree.read(member), name=tree.label(member), size=size))
                labels.append(label)
                drawers.append(drawer)
    description = f"Omniglot {Path(path).name}: handwritten characters, {len(chars)} classes, ink bright on dark"
    return _domain(name, stack_images(images, dataset=name), np.array(labels), chars, drawers, str(path), description)


# --------------------------------------------------------------------------------------------- npz
def read_omniglot_npz(path: PathLike, *, size: int = 28, name: str = "omniglot") -> Domain:
    """Read the background set from ``images_background.npz``.

    Args:
        path: The npz file: ``images`` bool (964, 20, 105, 105), True = background; ``labels`` (964, 20) = row index.
        size: Output side in pixels.
        name: The domain's name.

    Returns:
        The same domain as :func:`read_omniglot_layout` gives for the unpacked background set (same class order,
        names, alphabets, drawers and pixels).

    Raises:
        DataFormatError: The file is not an npz, or its arrays have the wrong names, types or shapes.
    """
    n_chars = sum(n for _, n in BACKGROUND_ALPHABETS)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("images", "labels") if key in npz.files}
            names = npz.files
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable npz file ({exc})") from None
    if "images" not in arrays:
        raise DataFormatError(f"{path}: expected an array 'images', found {names}")
    white, labels = arrays["images"], arrays.get("labels")
    if white.dtype != np.bool_ or white.ndim != 4 or white.shape[0] != n_chars:
        raise DataFormatError(
            f"{path}: 'images' must be bool of shape ({n_chars}, drawers, H, W) (the background set), "
            f"got {white.dtype} {white.shape}"
        )
    n_drawers = white.shape[1]
    if labels is not None and not np.array_equal(labels, np.broadcast_to(np.arange(n_chars)[:, None], labels.shape)):
        raise DataFormatError(f"{path}: 'labels' must equal the row index (character id - 1) in every column")
    out = np.empty((n_chars, n_drawers, size, size), dtype=np.uint8)
    for k in range(n_chars):  # class by class, to keep the peak memory low
        out[k] = 255 - resize_stack(white[k].astype(np.uint8) * 255, size, resample=Image.Resampling.BOX)
    chars = [(a, f"character{i:02d}") for a, n in BACKGROUND_ALPHABETS for i in range(1, n + 1)]
    return _domain(
        name,
        torch.from_numpy(out.reshape(-1, 1, size, size)),
        np.repeat(np.arange(n_chars), n_drawers),
        chars,
        [f"{d:02d}" for _ in range(n_chars) for d in range(1, n_drawers + 1)],
        str(path),
        "Omniglot background set (30 alphabets, 964 characters, 20 drawers), ink bright on dark",
    )


# --------------------------------------------------------------------------------------------- domains
def _set_source(root: PathLike | None, folder: str, *, npz_ok: bool) -> Path:
    """The unpacked folder, zip or npz holding the image set ``folder`` under ``root``."""
    expected = f"{folder}/ (unpacked) or {folder}.zip" + (f", or {_NPZ}" if npz_ok else "")
    root = require_root(root, dataset="omniglot", expected=expected, origin=ORIGIN)
    if root.is_file():
        if root.suffix == ".npz" and not npz_ok:
            raise DataFormatError(f"{root}: the npz holds only the background set; pass the folder with {folder}.zip")
        return root
    candidates = [root / folder, root / f"{folder}.zip"] + ([root / _NPZ] if npz_ok else [])
    for path in candidates:
        if path.exists():
            return path
    raise DataNotFoundError(f"omniglot: found none of {', '.join(p.name for p in candidates)} in {root}. {ORIGIN}")


def _read_set(path: Path, *, size: int, name: str) -> Domain:
    if path.suffix == ".npz":
        return read_omniglot_npz(path, size=size, name=name)
    return read_omniglot_layout(path, size=size, name=name)


def _set_files(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*.png")) if path.is_dir() else [str(path)]


def load_omniglot(root: PathLike, *, background: bool = True, size: int = 28) -> Domain:
    """Load Omniglot's background or evaluation set.

    Args:
        root: A folder holding ``images_background.zip`` / ``images_evaluation.zip`` or their unpacked folders (or
            ``images_background.npz``), or the npz itself.
        background: The background set (30 alphabets, 964 characters) if True, else the evaluation set (20
            alphabets, 659 characters).
        size: Output side in pixels (default 28; 105 keeps the originals).

    Returns:
        The domain; images uint8 (N, 1, size, size), ink bright on dark; groups ``alphabet``, instances ``drawer``.

    Raises:
        DataNotFoundError: The files are missing (the message says where Omniglot comes from).
        DataFormatError: A file is corrupt or not in Omniglot's layout.
    """
    source = _set_source(root, "images_background" if background else "images_evaluation", npz_ok=background)
    return _read_set(source, size=size, name="omniglot")


def load_omniglot_small1(root: PathLike, *, size: int = 28) -> Domain:
    """Load ``images_background_small1`` (5 alphabets, 136 characters) from a folder holding its zip or folder."""
    return read_omniglot_layout(
        _set_source(root, "images_background_small1", npz_ok=False), size=size, name="omniglot-small1"
    )


def load_omniglot_small2(root: PathLike, *, size: int = 28) -> Domain:
    """Load ``images_background_small2`` (5 alphabets, 156 characters) from a folder holding its zip or folder."""
    return read_omniglot_layout(
        _set_source(root, "images_background_small2", npz_ok=False), size=size, name="omniglot-small2"
    )


def find_omniglot_npz(root: PathLike | None = None) -> Path:
    """Locate ``images_background.npz`` for the default ``omniglot-background`` domain.

    Looks at ``root`` if given, else ``$METAXFER_OMNIGLOT``, else the first existing of ``../shared/data/omniglot``
    (from the current folder) and ``/work/shared/data/omniglot``. Each may be the npz or a folder holding it.

    Raises:
        DataNotFoundError: No npz there; the message says to set ``METAXFER_OMNIGLOT``.
    """
    if root is not None or os.environ.get(_ENV):
        given = Path(root if root is not None else os.environ[_ENV]).expanduser()
        where = "root" if root is not None else f"${_ENV}"
        path = given if given.suffix == ".npz" else given / _NPZ
        if not path.is_file():
            raise DataNotFoundError(f"omniglot-background: {where} = {given}, but {path} does not exist. {ORIGIN}")
        return path
    for folder in _DEFAULT_FOLDERS:  # a relative folder is taken from the current one
        if (folder / _NPZ).is_file():
            return (folder / _NPZ).resolve()
    raise DataNotFoundError(
        f"omniglot-background: no {_NPZ} found; set {_ENV} to the folder holding it (or to the file), e.g. "
        f"export {_ENV}=/data/omniglot. It holds Omniglot's background set as a bool array (964, 20, 105, 105), "
        f"True = background. {ORIGIN}"
    )


def load_omniglot_background(*, root: PathLike | None = None, size: int = 28) -> Domain:
    """The default Omniglot domain: the background set from ``images_background.npz`` (see :func:`find_omniglot_npz`).

    Args:
        root: The npz or its folder; by default found through ``$METAXFER_OMNIGLOT`` or the shared data folder.
        size: Output side in pixels.

    Returns:
        964 classes × 20 drawers, uint8 (19280, 1, size, size), groups ``alphabet``, instances ``drawer``.
    """
    return read_omniglot_npz(find_omniglot_npz(root), size=size, name="omniglot-background")


def _omniglot_files(root: PathLike | None = None, *, background: bool = True, size: int = 28) -> list[str]:
    return _set_files(_set_source(root, "images_background" if background else "images_evaluation", npz_ok=background))


def _small1_files(root: PathLike | None = None, *, size: int = 28) -> list[str]:
    return _set_files(_set_source(root, "images_background_small1", npz_ok=False))


def _small2_files(root: PathLike | None = None, *, size: int = 28) -> list[str]:
    return _set_files(_set_source(root, "images_background_small2", npz_ok=False))


def _background_files(*, root: PathLike | None = None, size: int = 28) -> list[str]:
    return [str(find_omniglot_npz(root))]


# --------------------------------------------------------------------------------------------- one-shot runs
@dataclass
class OneShotRun:
    """One of Lake et al.'s 20-way one-shot classification runs.

    Attributes:
        name: The run's folder name, e.g. ``"run01"``.
        support: uint8 (20, 1, H, W): one image per class (``training/class01.png`` …, in file-name order).
        query: uint8 (20, 1, H, W): the test images (``test/item01.png`` …, in file-name order).
        query_targets: int64 (20,): for each query, the index of its class in ``support``.
    """

    name: str
    support: torch.Tensor
    query: torch.Tensor
    query_targets: torch.Tensor


def load_omniglot_runs(root: PathLike, *, size: int = 28) -> list[OneShotRun]:
    """Load the one-shot classification runs (``runNN/training``, ``runNN/test``, ``runNN/class_labels.txt``).

    Args:
        root: The ``all_runs`` folder (holding ``run01`` … ``run20``) or ``all_runs.zip``.
        size: Output side in pixels.

    Returns:
        The runs, sorted by name; images ink bright on dark like the Omniglot domains.

    Raises:
        DataNotFoundError: ``root`` is missing or holds no ``runNN/class_labels.txt``.
        DataFormatError: A labels line is malformed, names an image that is not in the run, or a query is listed
            twice or not at all; or an image is unreadable.
    """
    root = require_root(
        root, dataset="omniglot runs", expected="run01/ … run20/ (or all_runs.zip)", origin=_RUNS_ORIGIN
    )
    runs = []
    with FileTree(root) as tree:
        names = tree.names()
        label_files = [n for n in names if n.endswith("/class_labels.txt") or n == "class_labels.txt"]
        if not label_files:
            raise DataNotFoundError(f"omniglot runs: no runNN/class_labels.txt under {root}. {_RUNS_ORIGIN}")
        for labels_name in label_files:
            prefix = labels_name.removesuffix("class_labels.txt")
            support = sorted(n for n in names if n.startswith(prefix + "training/") and n.endswith(".png"))
            query = sorted(n for n in names if n.startswith(prefix + "test/") and n.endswith(".png"))
            targets = _run_targets(tree, labels_name, support, query)
            runs.append(
                OneShotRun(
                    name=prefix.rstrip("/").rsplit("/", 1)[-1] or Path(root).stem,
                    support=stack_images(
                        [_decode(tree.read(n), name=tree.label(n), size=size) for n in support],
                        dataset=tree.label(prefix),
                    ),
                    query=stack_images(
                        [_decode(tree.read(n), name=tree.label(n), size=size) for n in query],
                        dataset=tree.label(prefix),
                    ),
                    query_targets=torch.tensor(targets, dtype=torch.int64),
                )
            )
    return sorted(runs, key=lambda r: r.name)


def _run_targets(tree: FileTree, labels_name: str, support: list[str], query: list[str]) -> list[int]:
    """For each query file, the index in ``support`` of the class that ``class_labels.txt`` pairs it with."""
    label = tree.label(labels_name)
    try:
        text = tree.read(labels_name).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{label}: not UTF-8 text ({exc})") from None
    tail = {"/".join(n.split("/")[-2:]): i for i, n in enumerate(support)}
    item = {"/".join(n.split("/")[-2:]): i for i, n in enumerate(query)}
    targets = [-1] * len(query)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DataFormatError(f"{label}, line {number}: expected '<test image> <training image>', got {line!r}")
        q, s = ("/".join(f.replace("\\", "/").split("/")[-2:]) for f in fields)
        if q not in item or s not in tail:
            raise DataFormatError(f"{label}, line {number}: {fields[0]} or {fields[1]} is not an image of this run")
        if targets[item[q]] != -1:
            raise DataFormatError(f"{label}, line {number}: {fields[0]} is listed twice")
        targets[item[q]] = tail[s]
    if -1 in targets:
        raise DataFormatError(f"{label}: no class given for {query[targets.index(-1)]}")
    return targets


# --------------------------------------------------------------------------------------------- registry
for _name, _build, _files, _what in (
    ("omniglot", load_omniglot, _omniglot_files, "Omniglot background/evaluation set from the official zips or npz"),
    ("omniglot-small1", load_omniglot_small1, _small1_files, "Omniglot images_background_small1 (5 alphabets)"),
    ("omniglot-small2", load_omniglot_small2, _small2_files, "Omniglot images_background_small2 (5 alphabets)"),
):
    register_domain(
        DomainSpec(
            name=_name,
            build=_build,
            description=_what,
            source="user path (root=)",
            license=_LICENSE,
            default=False,
            needs_root=True,
            fingerprint_files=_files,
        )
    )
register_domain(
    DomainSpec(
        name="omniglot-background",
        build=load_omniglot_background,
        description="Omniglot background set (964 characters × 20 drawers) from images_background.npz",
        source=f"images_background.npz via ${_ENV} or the shared data folder",
        license=_LICENSE,
        install_hint=f"set {_ENV} to the folder holding images_background.npz",
        default=True,
        needs_root=False,
        fingerprint_files=_background_files,
    )
)

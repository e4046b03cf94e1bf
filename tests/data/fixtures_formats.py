"""Writers of tiny fixtures in each classic dataset's own on-disk format, for the loader tests.

Each function writes real files (IDX, HDF5, LIBSVM bz2, MATLAB v5, PNG/JPEG trees, zips) into a folder and returns
what it wrote as plain arrays, so a test can compare the loader's output with the truth.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

_IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (uint8, int8, or big-endian int16/int32/float32/float64)."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, _IDX_CODES[dtype], array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``compress`` (default: when the name ends in ``.gz``)."""
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_mnist(
    folder: Path, *, n_train: int = 12, n_test: int = 7, num_classes: int = 10, gz: bool = True, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four MNIST files (``train-images-idx3-ubyte.gz`` ...) with random 28×28 digits.

    Returns:
        ``{"train": (images (N, 28, 28) uint8, labels (N,) uint8), "test": (...)}``.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, num_classes, size=n, dtype=np.uint8)
        end = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{end}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{end}", labels)
        out[split] = (images, labels)
    return out


def write_usps_h5(
    path: Path, *, sizes: dict[str, int] | None = None, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``usps.h5``: groups ``train``/``test`` with ``data`` (N, 256) float64 in [0, 1] and ``target`` (N,).

    Returns:
        ``{split: (data, target)}``.
    """
    import h5py

    rng = np.random.default_rng(seed)
    out = {}
    with h5py.File(path, "w") as fh:
        for split, n in (sizes or {"train": 9, "test": 5}).items():
            data = rng.random((n, 256))
            data[:, :8] = 0.0  # exact ends of the range
            data[:, 8] = 1.0
            target = rng.integers(0, 10, size=n)
            fh.create_group(split).create_dataset("data", data=data)
            fh[split].create_dataset("target", data=target)
            out[split] = (data, target)
    return out


def usps_libsvm_text(features: np.ndarray, digits: np.ndarray) -> str:
    """LIBSVM lines ``<digit + 1> idx:val ...``, leaving out zero features as LIBSVM writers do."""
    lines = []
    for row, digit in zip(features, digits, strict=True):
        pairs = " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row) if v != 0)
        lines.append(f"{int(digit) + 1} {pairs}")
    return "\n".join(lines) + "\n"


def write_usps_libsvm(
    folder: Path, *, n_train: int = 8, n_test: int = 4, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``usps.bz2`` and ``usps.t.bz2`` with values in [-1, 1] (some exactly -1, 0 and 1).

    Returns:
        ``{split: (features (N, 256) float in [-1, 1], digits (N,))}``; the values are rounded as written.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, name, n in (("train", "usps.bz2", n_train), ("test", "usps.t.bz2", n_test)):
        features = np.round(rng.uniform(-1, 1, size=(n, 256)), 6)
        features[:, 0], features[:, 1], features[:, 2] = -1.0, 0.0, 1.0
        digits = np.arange(n) % 10
        (folder / name).write_bytes(bz2.compress(usps_libsvm_text(features, digits).encode()))
        out[split] = (features, digits)
    return out


def write_png(path: Path, array: np.ndarray) -> None:
    """Save ``array`` (H, W) bool/uint8 or (H, W, 3) uint8 as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def write_mnist_m(
    folder: Path, *, sizes: dict[str, int] | None = None, side: int = 32, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write ``mnist_m_<split>/`` RGB PNGs and ``mnist_m_<split>_labels.txt`` ("<file> <digit>" lines).

    Returns:
        ``{split: (images (N, side, side, 3) uint8, digits (N,))}`` in the order of the labels file.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (sizes or {"train": 6, "test": 3}).items():
        images = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
        digits = rng.integers(0, 10, size=n)
        lines = []
        for i in range(n):
            write_png(folder / f"mnist_m_{split}" / f"{i:08d}.png", images[i])
            lines.append(f"{i:08d}.png {digits[i]}")
        (folder / f"mnist_m_{split}_labels.txt").write_text("\n".join(lines) + "\n")
        out[split] = (images, digits)
    return out


def write_svhn(path: Path, *, n: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write an SVHN ``*_32x32.mat`` (MATLAB v5): ``X`` (32, 32, 3, n) uint8 and ``y`` (n, 1) in 1–10.

    Returns:
        ``(X, y)`` as written.
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # includes 10 (= digit 0) when n >= 10
    savemat(str(path), {"X": x, "y": y}, format="5")
    return x, y


def omniglot_drawing(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random (side, side) bool drawing, True = white background, False = ink (about 15% ink)."""
    return rng.random((side, side)) > 0.15


def write_omniglot_set(
    target: Path,
    characters: dict[str, list[int]],
    *,
    drawers: int = 3,
    side: int = 20,
    as_zip: bool = True,
    seed: int = 0,
) -> dict[tuple[str, int, int], np.ndarray]:
    """Write one Omniglot image set in the official layout: ``<set>/<Alphabet>/characterNN/<id:04d>_<dd>.png``.

    Args:
        target: ``.../images_background.zip`` (``as_zip``) or the ``.../images_background`` folder; the set name is
            the file or folder name without ``.zip``.
        characters: For each alphabet, its character ids (numbered character01, character02, ... in list order).
        drawers: Drawings per character (drawer 01, 02, ...).
        side: Image side (the real set is 105).
        as_zip: Write a zip archive instead of a folder.

    Returns:
        ``{(alphabet, character id, drawer): drawing}`` with drawings bool (side, side), True = white background.
    """
    rng = np.random.default_rng(seed)
    set_name = target.name.removesuffix(".zip")
    drawings, files = {}, {}
    for alphabet, ids in characters.items():
        for number, char_id in enumerate(ids, start=1):
            for drawer in range(1, drawers + 1):
                drawing = omniglot_drawing(rng, side)
                drawings[alphabet, char_id, drawer] = drawing
                buffer = io.BytesIO()
                Image.fromarray(drawing).save(buffer, format="PNG")  # mode "1", as in the real files
                files[f"{set_name}/{alphabet}/character{number:02d}/{char_id:04d}_{drawer:02d}.png"] = buffer.getvalue()
    if as_zip:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        for name, data in files.items():
            path = target.parent / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return drawings


def write_omniglot_npz(path: Path, *, drawers: int = 2, side: int = 12, seed: int = 0) -> np.ndarray:
    """Write ``images_background.npz`` like the shared one: ``images`` bool (964, drawers, side, side), True =
    background, and ``labels`` (964, drawers) = row index. Returns ``images``."""
    rng = np.random.default_rng(seed)
    images = rng.random((964, drawers, side, side)) > 0.15
    labels = np.repeat(np.arange(964, dtype=np.int64)[:, None], drawers, axis=1)
    np.savez_compressed(path, images=images, labels=labels)
    return images


def write_omniglot_runs(
    folder: Path, *, runs: int = 2, ways: int = 4, side: int = 16, seed: int = 0, as_zip: bool = False
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Write Lake et al.'s one-shot runs: ``runNN/training/classKK.png``, ``runNN/test/itemKK.png`` and
    ``runNN/class_labels.txt`` (``runNN/test/itemKK.png runNN/training/classJJ.png`` lines, in shuffled order).

    Args:
        folder: The ``all_runs`` folder, or the zip to write when ``as_zip`` (members under ``all_runs/``).

    Returns:
        Per run: ``(support drawings (ways, side, side), query drawings, targets (ways,))`` where item k is of class
        ``targets[k]`` (0-based).
    """
    rng = np.random.default_rng(seed)
    files, out = {}, []
    for r in range(1, runs + 1):
        support = np.stack([omniglot_drawing(rng, side) for _ in range(ways)])
        query = np.stack([omniglot_drawing(rng, side) for _ in range(ways)])
        targets = rng.permutation(ways)
        lines = []
        for k in range(ways):
            files[f"run{r:02d}/training/class{k + 1:02d}.png"] = _png(support[k])
            files[f"run{r:02d}/test/item{k + 1:02d}.png"] = _png(query[k])
            lines.append(f"run{r:02d}/test/item{k + 1:02d}.png run{r:02d}/training/class{targets[k] + 1:02d}.png")
        rng.shuffle(lines)
        files[f"run{r:02d}/class_labels.txt"] = ("\n".join(lines) + "\n").encode()
        out.append((support, query, targets))
    if as_zip:
        with zipfile.ZipFile(folder, "w") as zf:
            for name, data in files.items():
                zf.writestr(f"all_runs/{name}", data)
    else:
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    return out


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def colour_jpeg(path: Path, colour: tuple[int, int, int], *, size: tuple[int, int] = (14, 10)) -> None:
    """Save a uniform-colour JPEG (decodes back to ``colour`` within a few levels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG", quality=95)


def write_mini_imagenet(
    folder: Path, *, splits: dict[str, list[str]] | None = None, per_class: int = 2, seed: int = 0
) -> dict[str, list[tuple[str, str, tuple[int, int, int]]]]:
    """Write ``train.csv``/``val.csv``/``test.csv`` ("filename,label") over ``images/`` of uniform-colour JPEGs.

    Returns:
        ``{split: [(filename, wnid, colour), ...]}`` in CSV order.
    """
    rng = np.random.default_rng(seed)
    splits = splits or {
        "train": ["n02110063", "n01532829", "n01749939"],
        "val": ["n01855672"],
        "test": ["n01930112", "n01981276"],
    }
    out = {}
    for split, wnids in splits.items():
        rows = []
        for wnid in wnids:
            for i in range(per_class):
                colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
                name = f"{wnid}{i + 1:08d}.jpg"
                colour_jpeg(folder / "images" / name, colour)
                rows.append((name, wnid, colour))
        text = "filename,label\n" + "".join(f"{n},{w}\n" for n, w, _ in rows)
        (folder / f"{split}.csv").write_text(text)
        out[split] = rows
    return out


def write_cub(
    folder: Path,
    *,
    classes: tuple[str, ...] = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"),
    per_class: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Write a tiny ``CUB_200_2011/`` with its five tables and JPEGs: each image is blue with a red bounding box.

    The first image of each class is in the test split, the others in train.

    Returns:
        One dict per image, in ``images.txt`` order: ``id``, ``path``, ``class`` (0-based), ``train`` and ``box``
        (x, y, w, h).
    """
    rng = np.random.default_rng(seed)
    root = folder / "CUB_200_2011"
    rows = []
    for c, cls in enumerate(classes):
        for i in range(per_class):
            image_id = len(rows) + 1
            w, h = int(rng.integers(30, 40)), int(rng.integers(30, 40))
            box = (int(rng.integers(2, 8)), int(rng.integers(2, 8)), 16, 14)
            pixels = np.zeros((h, w, 3), dtype=np.uint8)
            pixels[..., 2] = 255
            pixels[box[1] : box[1] + box[3], box[0] : box[0] + box[2]] = (255, 0, 0)
            path = f"{cls}/{cls.split('.', 1)[1]}_{image_id:04d}.jpg"
            (root / "images" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "images" / path, format="JPEG", quality=95, subsampling=0)
            rows.append({"id": image_id, "path": path, "class": c, "train": i > 0, "box": box})
    (root / "images.txt").write_text("".join(f"{r['id']} {r['path']}\n" for r in rows))
    (root / "image_class_labels.txt").write_text("".join(f"{r['id']} {r['class'] + 1}\n" for r in rows))
    (root / "classes.txt").write_text("".join(f"{c + 1} {cls}\n" for c, cls in enumerate(classes)))
    (root / "train_test_split.txt").write_text("".join(f"{r['id']} {int(r['train'])}\n" for r in rows))
    (root / "bounding_boxes.txt").write_text(
        "".join(
            f"{r['id']} {float(r['box'][0])} {float(r['box'][1])} {float(r['box'][2])} {float(r['box'][3])}\n"
            for r in rows
        )
    )
    return rows


def write_image_folder(
    folder: Path, classes: dict[str, int], *, side: int = 10, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """Write ``folder/<class>/<k>.png`` RGB images, ``classes[name]`` per class.

    Returns:
        ``{class: [image (side, side, 3) uint8, ...]}`` in file-name order.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, count in classes.items():
        out[name] = []
        for k in range(count):
            image = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
            write_png(folder / name / f"{k:03d}.png", image)
            out[name].append(image)
    return out

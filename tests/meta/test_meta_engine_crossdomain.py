"""The cross-domain data of the ``meta`` method: transforms named in configs, source splits (by class, group, names,
example), merging source domains, jittered copies, settings, and the digits recipe's common format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metaxfer.data import Domain, create_domain
from metaxfer.data.transforms import OptdigitsStyle, Resize
from metaxfer.engine import ConfigError, load_config
from metaxfer.errors import DataFormatError, EpisodeError
from metaxfer.methods.crossdomain import (
    AugmentConfig,
    SplitConfig,
    augment_domain,
    build_source,
    build_target,
    jitter_images,
    merge_domains,
    parse_setting,
    parse_transforms,
    split_domain,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def grouped_domain() -> Domain:
    """12 classes in 4 alphabets (a0..a3), 6 examples each; pixel value = example index, for traceability."""
    labels = torch.arange(12).repeat_interleave(6)
    images = torch.arange(72, dtype=torch.uint8).view(72, 1, 1, 1).expand(72, 1, 4, 4).contiguous()
    return Domain(name="toy", images=images, labels=labels, class_names=[f"c{i}" for i in range(12)],
                  groups={"alphabet": [f"a{i // 3}" for i in range(12)]},
                  instances={"drawer": [str(i % 6) for i in range(72)]},
                  metadata={"source": "test", "license": "none", "description": "toy"})


def test_settings_parse_and_refuse_nonsense():
    assert parse_setting("5w1s", queries=15).name == "5w1s15q"
    s = parse_setting("20w1s1q@alphabet", queries=15)
    assert (s.ways, s.shots, s.queries, s.within) == (20, 1, 1, "alphabet")
    assert s.label == "20-way 1-shot within alphabet"
    for bad in ("5-way", "1w1s", "5w0s", "5w1s0q", "5w1s@"):
        with pytest.raises(ConfigError, match="5w1s|at least"):
            parse_setting(bad, queries=15)


def test_transforms_are_built_from_their_names():
    chain = parse_transforms([{"name": "OptdigitsStyle"}, {"name": "Resize", "size": 28, "mode": "bilinear"}],
                             where="t")
    assert chain.transforms == (OptdigitsStyle(), Resize(28, mode="bilinear"))
    fit = parse_transforms([{"name": "FitToBox", "box": [20, 20], "canvas": 28}], where="t").transforms[0]
    assert fit.box == (20, 20)
    with pytest.raises(ConfigError, match=r"'t\[0\]\.name'.*Did you mean 'Invert'.*Valid transform names"):
        parse_transforms([{"name": "Invrt"}], where="t")
    with pytest.raises(ConfigError, match=r"'t\[1\]' \(Resize\)"):
        parse_transforms([{"name": "Invert"}, {"name": "Resize", "size": 28, "mode": "cubic"}], where="t")
    with pytest.raises(ConfigError, match="must be a mapping with a name"):
        parse_transforms(["Resize"], where="t")


def test_split_by_group_keeps_alphabets_whole_and_relabels():
    d = grouped_domain()
    train, val, test = split_domain(d, SplitConfig(by="alphabet", fractions=[0.5, 0.25, 0.25]), seed=0)
    alphabets = [set(p.groups["alphabet"]) for p in (train, val, test)]
    assert [len(a) for a in alphabets] == [2, 1, 1] and set.union(*alphabets) == {"a0", "a1", "a2", "a3"}
    assert not (alphabets[0] & alphabets[1]) and not (alphabets[1] & alphabets[2])
    assert train.num_classes == 6 and sorted(train.labels.unique().tolist()) == list(range(6))


def test_split_by_names_puts_everything_unlisted_into_training():
    d = grouped_domain()
    split = SplitConfig(by="alphabet", names={"val": ["a1"], "test": ["a3"]})
    train, val, test = split_domain(d, split, seed=0)
    assert set(train.groups["alphabet"]) == {"a0", "a2"} and set(val.groups["alphabet"]) == {"a1"}
    assert test is not None and test.class_names == ["c9", "c10", "c11"]
    with pytest.raises(EpisodeError, match="unknown values"):
        split_domain(d, SplitConfig(by="alphabet", names={"val": ["a9"]}), seed=0)


def test_split_by_example_keeps_every_class_and_never_shares_an_image():
    d = grouped_domain()
    train, val, test = split_domain(d, SplitConfig(by="example", fractions=[0.5, 0.5]), seed=3)
    assert test is None and train.num_classes == val.num_classes == 12
    assert train.class_counts().tolist() == [3] * 12 and val.class_counts().tolist() == [3] * 12
    seen_train = {int(x) for x in train.images[:, 0, 0, 0]}
    seen_val = {int(x) for x in val.images[:, 0, 0, 0]}
    assert not seen_train & seen_val and len(seen_train | seen_val) == 72
    again, _, _ = split_domain(d, SplitConfig(by="example", fractions=[0.5, 0.5]), seed=3)
    assert torch.equal(again.images, train.images)


def test_merging_domains_prefixes_repeated_keys_and_records_the_domain():
    a = grouped_domain()
    b = grouped_domain()
    b.name = "other"
    merged = merge_domains([a, b])
    assert merged.num_classes == 24 and len(merged) == 144
    assert merged.class_keys[:2] == ["c0", "c1"] and merged.class_keys[12:14] == ["other:c0", "other:c1"]
    assert merged.groups["domain"] == ["toy"] * 12 + ["other"] * 12 and "alphabet" in merged.groups
    assert merged.labels[72:].min() == 12
    small = Domain(name="small", images=torch.zeros(2, 1, 2, 2, dtype=torch.uint8), labels=torch.tensor([0, 1]),
                   class_names=["x", "y"])
    with pytest.raises(DataFormatError, match="different image shapes.*Resize"):
        merge_domains([a, small])


def test_jittered_copies_keep_the_originals_and_the_background():
    g = torch.Generator().manual_seed(0)
    white = torch.full((3, 3, 16, 16), 255, dtype=torch.uint8)
    white[:, :, 6:10, 6:10] = 0  # a dark square on white, like an emoji on its background
    copies = jitter_images(white, copies=4, shift=0.1, scale=0.1, rotate=20, generator=g)
    assert copies.shape == (12, 3, 16, 16) and copies.dtype == torch.uint8
    assert (copies[:, :, 0, 0] == 255).all()  # borders continue the white background
    assert not torch.equal(copies[0], white[0])  # they moved
    d = grouped_domain()
    aug = augment_domain(d, AugmentConfig(copies=2, seed=1))
    assert len(aug) == 3 * len(d) and torch.equal(aug.images[: len(d)], d.images)
    assert aug.instances["copy"][: len(d)] == ["0"] * len(d) and aug.instances["drawer"][len(d)] == "0"
    assert torch.equal(aug.labels, d.labels.repeat(3))
    assert torch.equal(augment_domain(d, AugmentConfig(copies=2, seed=1)).images, aug.images)
    assert augment_domain(d, AugmentConfig(copies=0)) is d


def test_digits_recipe_brings_mnist_and_optdigits_to_one_format():
    cfg = load_config(CONFIGS / "meta-digits.yaml")
    mc = cfg.meta
    source = build_source(cfg.data.domain, cfg.data.options, mc.source, mc.split, seed=0)
    assert source.image_shape == (1, 28, 28) and source.test is None
    assert source.train.num_classes == source.val.num_classes == 10
    assert len(source.train) == 4000 and len(source.val) == 1000
    target = build_target(mc.target, source_test=source.test, image_shape=source.image_shape)
    assert target.support.name == "optdigits+Resize" and len(target.support) == 1797
    assert target.support.class_keys == source.train.class_keys  # the same ten digit classes
    # MNIST went through the optdigits preprocessing, then both were enlarged the same way
    upsample = Resize(28, mode="bilinear")
    expected = {x.numpy().tobytes() for x in upsample(OptdigitsStyle()(create_domain("mnist-5k").images))}
    assert all(x.numpy().tobytes() in expected for x in source.train.images[:100])
    assert torch.equal(target.support.images, upsample(create_domain("optdigits").images))

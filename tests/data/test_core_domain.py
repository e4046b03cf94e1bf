"""The Domain dataclass, the registry, and the on-disk domain cache."""

from __future__ import annotations

import pytest
import torch

from metaxfer.data import DOMAINS, Domain, create_domain, list_domains
from metaxfer.data import cache as cache_mod
from metaxfer.data.domain import DomainSpec
from metaxfer.errors import DataFormatError, DataNotFoundError, MissingDependencyError, UnknownNameError
from metaxfer.registry import Registry


def small_domain(n_classes: int = 3, per_class: int = 4) -> Domain:
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    images = (labels.view(-1, 1, 1, 1) * 40 + torch.arange(per_class).repeat(n_classes).view(-1, 1, 1, 1)).to(torch.uint8)
    return Domain(
        name="tiny",
        images=images.expand(-1, 1, 5, 5).contiguous(),
        labels=labels,
        class_names=[f"c{k}" for k in range(n_classes)],
        groups={"g": ["x", "y", "y"][:n_classes]},
        instances={"who": [f"w{i % per_class}" for i in range(n_classes * per_class)]},
        metadata={"source": "test", "license": "MIT", "names": {"en": [f"n{k}" for k in range(n_classes)]}},
    )


def test_registry_unknown_name_lists_valid_and_close_matches() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'alpah'.*Did you mean 'alpha'.*alpha, beta"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha", 3)


def test_create_domain_unknown_name_lists_every_domain() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_domain("no-such-domain")
    for name in DOMAINS.names():
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(images=torch.zeros(12, 1, 5, 5)), "uint8"),
        (dict(images=torch.zeros(12, 2, 5, 5, dtype=torch.uint8)), "1 or 3 channels"),
        (dict(labels=torch.zeros(11, dtype=torch.int64)), "labels must be int64 of shape"),
        (dict(labels=torch.full((12,), 7, dtype=torch.int64)), r"labels must lie in \[0, 3\)"),
        (dict(class_keys=["a", "a", "b"]), "distinct"),
        (dict(groups={"g": ["x"]}), "group 'g' has 1 entries"),
        (dict(instances={"who": ["a"]}), "instance 'who' has 1 entries"),
    ],
)
def test_domain_validation_names_the_problem(change: dict, message: str) -> None:
    base = small_domain()
    fields = dict(
        name=base.name, images=base.images, labels=base.labels, class_names=base.class_names,
        groups=base.groups, instances=base.instances,
    )
    fields.update(change)
    with pytest.raises(DataFormatError, match=message):
        Domain(**fields)


def test_select_classes_relabels_and_carries_per_class_tables() -> None:
    dom = small_domain()
    sub = dom.select_classes([2, 0])
    assert sub.class_names == ["c2", "c0"]
    assert sub.groups["g"] == ["y", "x"]
    assert sub.metadata["names"]["en"] == ["n2", "n0"]
    assert sub.labels.tolist() == [1] * 4 + [0] * 4  # original order of examples kept: class 0 rows come first
    assert torch.equal(sub.images[sub.labels == 0], dom.images[dom.labels == 2])
    assert len(sub.instances["who"]) == len(sub)


def test_cache_round_trip_is_exact(tmp_path) -> None:
    dom = small_domain()
    path = tmp_path / "d.safetensors"
    cache_mod.save_domain(dom, path)
    back = cache_mod.load_domain(path)
    assert torch.equal(back.images, dom.images) and torch.equal(back.labels, dom.labels)
    for field in ("name", "class_names", "class_keys", "groups", "instances", "metadata"):
        assert getattr(back, field) == getattr(dom, field)
    assert not list(tmp_path.glob("*.tmp")), "the atomic write leaves no temporary file"


def test_cached_build_hits_and_rebuilds_when_sources_or_options_change(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("METAXFER_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "source.bin"
    source.write_bytes(b"one")
    calls = []

    def build(**options):
        calls.append(options)
        return small_domain()

    spec = DomainSpec(name="cache-probe", build=build, description="", source="", license="",
                      fingerprint_files=lambda **_: [str(source)])
    cache_mod.cached_build(spec, {})
    cache_mod.cached_build(spec, {})
    assert len(calls) == 1, "second call is served from the cache"
    cache_mod.cached_build(spec, {"size": 8})
    assert len(calls) == 2, "other options are another entry"
    source.write_bytes(b"changed source file")
    cache_mod.cached_build(spec, {})
    assert len(calls) == 3, "a changed source file rebuilds"
    entry = next((tmp_path / "cache" / "domains").glob("cache-probe-*.safetensors"))
    entry.write_bytes(b"corrupt")
    for other in (tmp_path / "cache" / "domains").glob("cache-probe-*.safetensors"):
        other.write_bytes(b"corrupt")
    assert cache_mod.cached_build(spec, {}).name == "tiny"
    assert len(calls) == 4, "a corrupt entry is rebuilt, not an error"


def test_missing_python_module_is_a_clear_error(monkeypatch) -> None:
    spec = DomainSpec(name="needs-module", build=lambda: small_domain(), description="", source="", license="",
                      python_modules=("surely_not_installed_mod",), install_hint="pip install surely-not")
    DOMAINS._entries["needs-module"] = spec
    try:
        with pytest.raises(MissingDependencyError, match="surely_not_installed_mod.*pip install surely-not"):
            create_domain("needs-module")
    finally:
        del DOMAINS._entries["needs-module"]


#: Every domain the foundation issue asks for: package-shipped defaults, and loaders of datasets users have on disk.
DEFAULT_DOMAINS = {
    "mnist-5k", "optdigits", "animal-mnist", "fashion-mnist", "emoji-twemoji", "emoji-openmoji", "emoji-noto",
    "font-glyphs", "digits-printed", "digits-handwriting", "hershey", "omniglot-background",
}
PATH_DOMAINS = {"mnist", "kmnist", "usps", "mnist-m", "svhn", "omniglot", "omniglot-small1", "omniglot-small2",
                "mini-imagenet", "cub", "image-folder"}


def test_list_domains_has_every_domain_of_the_issue() -> None:
    defaults = {s.name for s in list_domains(default_only=True)}
    assert DEFAULT_DOMAINS <= defaults, f"missing default domains: {sorted(DEFAULT_DOMAINS - defaults)}"
    every = {s.name for s in list_domains()}
    assert PATH_DOMAINS <= every, f"missing loaders: {sorted(PATH_DOMAINS - every)}"
    assert "synthetic" in every and "synthetic" not in defaults
    for spec in list_domains():
        assert spec.needs_root == (spec.name in PATH_DOMAINS), spec.name
        assert spec.description and spec.source and spec.license, f"{spec.name} lacks description/source/license"


def test_path_domain_without_root_says_how_to_give_it() -> None:
    with pytest.raises(DataNotFoundError, match="root=PATH"):
        create_domain("svhn", cache=False)

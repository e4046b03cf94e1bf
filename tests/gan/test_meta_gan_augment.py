"""Support-set augmenters (metaxfer.gan.support): every implementation returns uint8 images of the episode's format,
grouped by class with labels 0..N-1, the same for the same seed; augment_episode keeps real shots first; bad input
names the fix; load_augmenter builds augmenters from meta-gan and dagan run folders."""

from __future__ import annotations

import pytest
import torch

from metaxfer.data import Episode, EpisodeSampler, create_domain
from metaxfer.engine import load_config, train
from metaxfer.errors import DataFormatError, EpisodeError, MetaxferError
from metaxfer.gan.support import (
    ClassicAugmenter,
    DAGANAugmenter,
    FinetuneGANAugmenter,
    MetaGANAugmenter,
    ScratchGANAugmenter,
    SupportAugmenter,
    augment_episode,
    load_augmenter,
)
from metaxfer.gan.dagan import DAGANGenerator
from metaxfer.gan.meta_init import MetaInitGAN

SIZE, WAYS, SHOTS = 8, 3, 2


def small_model() -> MetaInitGAN:
    torch.manual_seed(0)
    return MetaInitGAN(image_size=SIZE, latent_dim=4, width=4, d_width=4, inner_steps=2, batch_size=4)


AUGMENTERS = {
    "classic": lambda: ClassicAugmenter(),
    "scratch-gan": lambda: ScratchGANAugmenter(image_size=SIZE, steps=2, latent_dim=4, width=4, d_width=4,
                                               batch_size=4),
    "dagan": lambda: DAGANAugmenter(DAGANGenerator(4, image_size=SIZE, width=4, noise_channels=2).eval()),
    "meta-gan": lambda: MetaGANAugmenter(small_model()),
    "finetune-gan": lambda: FinetuneGANAugmenter(small_model(), steps=3, lr=0.02),
}


@pytest.fixture(scope="module")
def episode() -> Episode:
    domain = create_domain("synthetic", num_classes=6, per_class=6, size=SIZE, seed=0)
    return EpisodeSampler(domain, ways=WAYS, shots=SHOTS, queries=2, seed=0).sample()


@pytest.mark.parametrize("name", sorted(AUGMENTERS))
def test_every_augmenter_returns_grouped_uint8_images_deterministically(name: str, episode: Episode) -> None:
    augmenter = AUGMENTERS[name]()
    assert isinstance(augmenter, SupportAugmenter) and augmenter.name == name
    x, y = augmenter.augment(episode.support_x, episode.support_y, per_class=3,
                             generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and x.shape == (WAYS * 3, 1, SIZE, SIZE)
    assert y.dtype == torch.int64 and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    x2, y2 = augmenter.augment(episode.support_x, episode.support_y, per_class=3,
                               generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = augmenter.augment(episode.support_x, episode.support_y, per_class=3,
                              generator=torch.Generator().manual_seed(1))
    assert not torch.equal(x, x3)
    # one class's images come from that class's shots only: changing class 2's shots leaves classes 0 and 1 alone
    # (the randomness drawn per class is the same, so the first classes' images are identical)
    changed = episode.support_x.clone()
    changed[episode.support_y == 2] = 255 - changed[episode.support_y == 2]
    x4, _ = augmenter.augment(changed, episode.support_y, per_class=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x4[:6], x[:6]) and not torch.equal(x4[6:], x[6:])


def test_classic_augmenter_with_every_change_off_copies_the_shots_in_turn(episode: Episode) -> None:
    still = ClassicAugmenter(shift=0.0, scale=(1.0, 1.0), rotate=0.0, jitter=0.0, blur_prob=0.0, noise=0.0)
    x, _ = still.augment(episode.support_x, episode.support_y, per_class=3, generator=torch.Generator().manual_seed(0))
    shots = episode.support_x.view(WAYS, SHOTS, 1, SIZE, SIZE)
    expected = torch.cat([shots[k, [0, 1, 0]] for k in range(WAYS)])  # shot j % K for image j
    assert (x.int() - expected.int()).abs().max() <= 1  # the identity warp, up to rounding


def test_augment_episode_puts_each_class_real_shots_first(episode: Episode) -> None:
    bigger = augment_episode(episode, AUGMENTERS["meta-gan"](), per_class=2, generator=torch.Generator().manual_seed(0))
    assert bigger.shots == SHOTS + 2 and bigger.ways == WAYS
    assert bigger.support_y.tolist() == [k for k in range(WAYS) for _ in range(SHOTS + 2)]
    for k in range(WAYS):
        rows = bigger.support_x[k * (SHOTS + 2) : k * (SHOTS + 2) + SHOTS]
        assert torch.equal(rows, episode.support_x[k * SHOTS : (k + 1) * SHOTS])
    assert bigger.query_x is episode.query_x and bigger.class_keys == episode.class_keys


def test_augment_episode_weighs_made_images_as_asked(episode: Episode) -> None:
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = augment_episode(episode, AUGMENTERS["classic"](), per_class=2, generator=g())
    assert plain.support_weight is None  # weight 1: no weights at all, every algorithm takes the episode
    light = augment_episode(episode, AUGMENTERS["classic"](), per_class=2, generator=g(), made_weight=0.25)
    assert torch.equal(light.support_x, plain.support_x)
    assert light.support_weight.tolist() == [1.0] * SHOTS + [0.25] * 2 + [1.0] * SHOTS + [0.25] * 2 \
        + [1.0] * SHOTS + [0.25] * 2
    again = augment_episode(light, AUGMENTERS["classic"](), per_class=1, generator=g())  # earlier weights are kept
    assert again.support_weight.tolist()[: SHOTS + 3] == [1.0] * SHOTS + [0.25] * 2 + [1.0]
    assert light.to("cpu").support_weight.tolist() == light.support_weight.tolist()
    for bad in (0.0, -1.0, float("nan"), "0.5"):
        with pytest.raises(EpisodeError, match="made_weight must be a positive number"):
            augment_episode(episode, AUGMENTERS["classic"](), per_class=2, generator=g(), made_weight=bad)


def test_bad_input_says_how_to_fix_it(episode: Episode) -> None:
    augmenter = AUGMENTERS["meta-gan"]()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(DataFormatError, match="uint8"):
        augmenter.augment(episode.support_x.float(), episode.support_y, per_class=2, generator=g)
    with pytest.raises(EpisodeError, match="per_class must be an int >= 1"):
        augmenter.augment(episode.support_x, episode.support_y, per_class=0, generator=g)
    shuffled = torch.tensor([1, 0, 2, 1, 0, 2])
    with pytest.raises(EpisodeError, match="grouped by class.*argsort"):
        augmenter.augment(episode.support_x, shuffled, per_class=2, generator=g)
    with pytest.raises(DataFormatError, match="int64"):
        augmenter.augment(episode.support_x, episode.support_y.int(), per_class=2, generator=g)
    with pytest.raises(DataFormatError, match="match_format"):
        augmenter.augment(torch.zeros(6, 1, 16, 16, dtype=torch.uint8), episode.support_y, per_class=2, generator=g)

    class Broken:
        name = "broken"

        def augment(self, support_x, support_y, *, per_class, generator):
            return support_x.float(), support_y

    with pytest.raises(EpisodeError, match="broken.*expected uint8"):
        augment_episode(episode, Broken(), per_class=2, generator=g)


def test_load_augmenter_from_meta_gan_and_dagan_runs(tmp_path, episode: Episode) -> None:
    data = {"domain": "synthetic", "options": {"num_classes": 8, "per_class": 6, "size": SIZE}, "batch_size": 8}
    common = {"threads": 1, "device": "cpu", "data": data,
              "train": {"steps": 2, "eval_every": 2, "checkpoint_every": 2, "tensorboard": False, "samples": False}}
    for algorithm in ("reptile", "pretrain"):
        cfg = {**common, "method": "meta-gan",
               "metagan": {"algorithm": algorithm, "inner_steps": 1, "tasks_per_batch": 1, "shots": 2,
                           "batch_size": 4, "latent_dim": 4, "width": 4, "d_width": 4, "eval_shots": 2,
                           "eval_classes": 2, "eval_samples": 4, "feature_epochs": 1, "kid_subsets": 2,
                           "eval_inner_steps": 3, "split": {"by": "class", "fractions": [0.5, 0.5]}}}
        train(load_config(cfg), out=tmp_path / algorithm, progress_bar=False)
        augmenter = load_augmenter(tmp_path / algorithm)
        assert type(augmenter) is (FinetuneGANAugmenter if algorithm == "pretrain" else MetaGANAugmenter)
        assert augmenter.steps == 3
        x, y = augmenter.augment(episode.support_x, episode.support_y, per_class=2,
                                 generator=torch.Generator().manual_seed(0))
        assert x.shape == (WAYS * 2, 1, SIZE, SIZE)
    cfg = {**common, "method": "dagan",
           "dagan": {"target_classes": 3, "shots": 2, "width": 4, "d_width": 4, "latent_dim": 4, "noise_channels": 2,
                     "eval_images": 8, "feature_epochs": 1}}
    train(load_config(cfg), out=tmp_path / "dagan", progress_bar=False)
    augmenter = load_augmenter(tmp_path / "dagan")
    assert isinstance(augmenter, DAGANAugmenter) and augmenter.generator.image_shape == (1, SIZE, SIZE)
    x, y = augmenter.augment(episode.support_x, episode.support_y, per_class=3,
                             generator=torch.Generator().manual_seed(0))
    assert x.shape == (WAYS * 3, 1, SIZE, SIZE) and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]

    cfg = {**common, "method": "classifier"}
    train(load_config(cfg), out=tmp_path / "classifier", progress_bar=False)
    with pytest.raises(MetaxferError, match="'meta-gan' runs.*'dagan' runs"):
        load_augmenter(tmp_path / "classifier")

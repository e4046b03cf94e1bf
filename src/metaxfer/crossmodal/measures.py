"""How generated images are measured: R-precision, class and group accuracy of separately trained classifiers, and
FID/KID on domain features.

Everything that judges the generator is trained *apart from it*, on real images of the style being judged, with
its own seeds, and is used only for measuring (:class:`MeasureKit`, built by :func:`build_measure_kit`):

- **class classifier**: a Conv-4 (:class:`~metaxfer.models.Conv4`, batch norm with running statistics) trained on
  the real images of *every* class of the style (seen and unseen: an emoji has one image per style, so a classifier that is to recognise an unseen class must
  have seen its one real image), with strong augmentation (:mod:`~metaxfer.data.augment`). The generator never
  sees the unseen classes' images; the classifier only says which class a generated image looks like. Accuracy is
  reported among the classes of the evaluated set (e.g. the test classes: chance ``1/|set|``) and among all classes.
- **group classifier**: trained on the *seen* classes' images only, to predict their group (emoji subcategory,
  glyph script); it has never seen an unseen class in any form, so "the generated image of an unseen description
  falls in the right group" needs no image of that class. Chance: the share of the commonest group in the set.
- **evaluation encoders** (R-precision): a second :class:`~metaxfer.crossmodal.encoders.JointEmbedding`, trained
  contrastively on the style's real images of every class with their descriptions in every language, from another
  seed than the generator's conditioning encoder.
- **FID / KID**: :func:`metaxfer.metrics.fid_from_features` and :func:`~metaxfer.metrics.kid_from_features` on the
  class classifier's features (its flattened last feature map).

The classification accuracy score (a classifier trained on *generated* images, tested on real ones) needs no kit:
:func:`metaxfer.metrics.classification_accuracy_score`, called by the engine method.

:func:`r_precision` follows AttnGAN: an image retrieves its own description from it and ``candidates − 1`` random
descriptions of other classes (here in the same language), by cosine similarity; R-precision is the share of images
whose own description ranks first (chance ``1/candidates``).

References:
    T. Xu et al. AttnGAN: Fine-Grained Text to Image Generation with Attentional GANs. CVPR 2018 (R-precision);
    S. Ravuri, O. Vinyals. Classification Accuracy Score for Conditional Generative Models. NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

import metaxfer
import metaxfer.crossmodal.encoders as encoders_module
import metaxfer.data.augment as augment_module
import metaxfer.models.conv4 as conv4_module
import metaxfer.models.norm as norm_module
from metaxfer.crossmodal.encoders import ByteTextEncoder, ImageEncoder, JointEmbedding
from metaxfer.crossmodal.pairs import PairSplit, TextImagePairs
from metaxfer.crossmodal.training import PairBatcher, contrastive_batch_loss
from metaxfer.data.augment import augment_images
from metaxfer.data.system import cache_dir
from metaxfer.errors import MetaxferError
from metaxfer.gan.utils import gan_to_uint8, uint8_to_gan
from metaxfer.metrics import fid_from_features, kid_from_features
from metaxfer.models import Conv4

__all__ = [
    "r_precision",
    "MeasureSettings",
    "MeasureKit",
    "train_augmented_classifier",
    "fit_joint_embedding",
    "build_measure_kit",
    "kit_key",
    "measure_images",
]

log = logging.getLogger(__name__)


def r_precision(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_class: torch.Tensor,
    *,
    pool_emb: torch.Tensor,
    pool_class: torch.Tensor,
    candidates: int = 100,
    generator: torch.Generator,
    text_group: torch.Tensor | None = None,
    pool_group: torch.Tensor | None = None,
) -> torch.Tensor:
    """R-precision hits: whether each image ranks its own description first among ``candidates`` descriptions.

    Args:
        image_emb: Embeddings of the (generated) images.
        text_emb: Row ``i``: the embedding of the description image ``i`` was made from.
        text_class: The class of each of those descriptions.
        pool_emb: Embeddings of the descriptions the ``candidates − 1`` mismatched ones are drawn from.
        pool_class: Their classes (a candidate never has the image's class).
        candidates: Descriptions ranked per image, the right one included (100 in AttnGAN).
        generator: Source of the draws.
        text_group: Optional key per row (e.g. a language id): candidates are then drawn only from pool entries with
            the same key in ``pool_group``.
        pool_group: The pool's keys.

    Returns:
        Float tensor (N,) of 1.0 (hit) and 0.0; ties count as misses. Its mean is the R-precision.

    Shape:
        ``image_emb``, ``text_emb`` (N, D); ``pool_emb`` (P, D); class and group tensors (N,) and (P,).

    Raises:
        MetaxferError: Some image has fewer than ``candidates − 1`` eligible mismatched descriptions.
    """
    image_emb = F.normalize(image_emb.float(), dim=1)
    right = (image_emb * F.normalize(text_emb.float(), dim=1)).sum(dim=1)
    pool = F.normalize(pool_emb.float(), dim=1)
    sims = image_emb @ pool.T  # (N, P)
    eligible = pool_class.unsqueeze(0) != text_class.unsqueeze(1)
    if text_group is not None and pool_group is not None:
        eligible &= pool_group.unsqueeze(0) == text_group.unsqueeze(1)
    need = candidates - 1
    if int(eligible.sum(dim=1).min()) < need:
        raise MetaxferError(f"R-precision with {candidates} candidates needs {need} mismatched descriptions per image; "
                            f"some image has only {int(eligible.sum(dim=1).min())}: lower the candidates or widen the pool")
    scores = torch.rand(sims.shape, generator=generator).masked_fill(~eligible, -1.0)
    chosen = scores.topk(need, dim=1).indices
    wrong_best = sims.gather(1, chosen).amax(dim=1)
    return (right > wrong_best).float()


@dataclass
class MeasureSettings:
    """How the measuring networks are trained.

    Attributes:
        classifier_steps: Steps of each classifier (batch ``batch_size``, Adam, cosine decay).
        encoder_steps: Steps of the evaluation encoders.
        batch_size: Images per step.
        lr: Learning rate of the classifiers and encoders.
        width: Width of the classifiers (Conv-4 filters) and of the evaluation image encoder.
        text_width: Width of the evaluation text encoder.
        dim: Embedding size of the evaluation encoders.
        candidates: R-precision candidates.
        seed: Seed of the measuring networks (kept apart from the generator's).
    """

    classifier_steps: int = 600
    encoder_steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 32
    text_width: int = 64
    dim: int = 128
    candidates: int = 100
    seed: int = 12345


@dataclass
class MeasureKit:
    """The measuring networks of one style, and what they compute once.

    Attributes:
        pairs: The style's pairs (real images and every description).
        classifier: Class classifier over every class.
        group_classifier: Group classifier trained on the seen classes only (None without groups).
        group: The grouping's name.
        group_names: The group of each group-classifier output.
        evaluator: The evaluation encoders.
        info: Sanity numbers (accuracy of each network on augmented real images, R-precision of real images).
        pool_emb: The evaluator's embeddings of every description of ``pairs`` (the R-precision candidates).
        pool_lang: The language id of each description.
        real_features: The class classifier's features of every real image (FID/KID).
    """

    pairs: TextImagePairs
    classifier: Conv4
    group_classifier: Conv4 | None
    group: str
    group_names: list[str]
    evaluator: JointEmbedding
    info: dict[str, float] = field(default_factory=dict)
    pool_emb: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    pool_lang: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    real_features: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    def __post_init__(self) -> None:
        lang_id = {x: i for i, x in enumerate(self.pairs.languages)}
        self.pool_emb = self.evaluator.text.encode(self.pairs.texts).cpu()
        self.pool_lang = torch.tensor([lang_id[x] for x in self.pairs.text_lang], dtype=torch.int64)
        self.real_features = _run(self.classifier, self.pairs.images, "forward_features")


def train_augmented_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Conv4:
    """Train a Conv-4 classifier on augmented views of few images per class.

    Args:
        images: uint8 images (N, C, H, W), H = W >= 16.
        labels: Their classes (N,).
        num_classes: Number of outputs.
        steps: Training steps.
        batch_size: Images per step (drawn with replacement, each augmented anew).
        lr: Adam learning rate (cosine decay to 0).
        width: Filters per block.
        seed: Seed of the initialisation, the draws and the augmentation.
        device: Where to train.

    Returns:
        The network in eval mode (batch norm with running statistics).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Conv4(in_channels=images.shape[1], hidden=width, image_size=images.shape[-1], num_classes=num_classes,
                    norm="running").to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    x_all, y_all = uint8_to_gan(images).to(device), labels.to(device)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(x_all), (batch_size,), generator=gen).to(device)
        loss = F.cross_entropy(net(augment_images(x_all[idx], generator=gen)), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def fit_joint_embedding(
    styles: Sequence[TextImagePairs],
    *,
    classes: Sequence[int],
    languages: Sequence[str],
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    dim: int = 128,
    text_width: int = 128,
    image_width: int = 32,
    text_weight: float = 0.5,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> JointEmbedding:
    """Train a pair of encoders contrastively on ``classes`` of ``styles`` (plain loop, for measuring).

    Args:
        styles: Pairs of one or more styles of the same classes.
        classes: Classes to train on.
        languages: Languages of the descriptions used.
        steps: Training steps.
        batch_size: Classes per batch.
        lr: Adam learning rate.
        dim: Embedding size.
        text_width: Text encoder width.
        image_width: Image encoder width.
        text_weight: Weight of the text–text term.
        seed: Seed of the initialisation and the batches.
        device: Where to train.

    Returns:
        The encoders, in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JointEmbedding(ByteTextEncoder(dim=dim, width=text_width),
                               ImageEncoder(channels=styles[0].image_shape[0], dim=dim, width=image_width)).to(device)
    batcher = PairBatcher(styles, classes=classes, languages=languages, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    model.train()
    for _ in range(steps):
        batch = batcher.batch(batcher.draw_classes(batch_size, generator=gen), generator=gen, augment=True)
        loss, _ = contrastive_batch_loss(model, batcher, batch, text_weight=text_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def _image_embeddings(model: JointEmbedding, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model.image(uint8_to_gan(images[s : s + batch_size]).to(device)).cpu()
                      for s in range(0, len(images), batch_size)])


@torch.no_grad()
def _run(net: Conv4, images: torch.Tensor, fn: str = "forward", batch_size: int = 512) -> torch.Tensor:
    device = next(net.parameters()).device
    net.eval()
    return torch.cat([getattr(net, fn)(uint8_to_gan(images[s : s + batch_size]).to(device)).cpu()
                      for s in range(0, len(images), batch_size)])


def kit_key(pairs: TextImagePairs, split: PairSplit, settings: MeasureSettings, group: str) -> str:
    """The hash naming a cached kit: the pairs' images, descriptions and groups, the split, the settings, and the
    source of the modules that train the networks (a code change retrains)."""
    h = hashlib.sha256()
    h.update(metaxfer.__version__.encode())
    for module in (sys.modules[__name__], augment_module, encoders_module, conv4_module, norm_module):
        h.update(inspect.getsource(module).encode())
    h.update(pairs.name.encode())
    h.update(pairs.images.contiguous().numpy().tobytes())
    h.update(pairs.image_class.numpy().tobytes())
    h.update(json.dumps([pairs.texts, pairs.text_class.tolist(), pairs.text_lang, pairs.groups.get(group, [])],
                        ensure_ascii=False).encode())
    h.update(json.dumps([split.train, split.val, split.test, group, dataclasses.asdict(settings)]).encode())
    return h.hexdigest()[:24]


def _save_kit(kit: MeasureKit, settings: MeasureSettings, path: Path) -> None:
    tensors = {f"classifier.{k}": v for k, v in kit.classifier.state_dict().items()}
    tensors.update({f"evaluator.{k}": v for k, v in kit.evaluator.state_dict().items()})
    if kit.group_classifier is not None:
        tensors.update({f"group.{k}": v for k, v in kit.group_classifier.state_dict().items()})
    meta = {"group": kit.group, "group_names": kit.group_names, "info": kit.info,
            "evaluator": kit.evaluator.config, "settings": dataclasses.asdict(settings)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp,
                  metadata={"metaxfer_measure_kit": json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_kit(pairs: TextImagePairs, path: Path, device: torch.device | str) -> MeasureKit:
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["metaxfer_measure_kit"])
    tensors = load_file(str(path))

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    width, side, channels = int(meta["settings"]["width"]), pairs.image_shape[-1], pairs.image_shape[0]
    classifier = Conv4(in_channels=channels, hidden=width, image_size=side, num_classes=pairs.num_classes,
                       norm="running")
    classifier.load_state_dict(part("classifier."))
    group_classifier = None
    if meta["group_names"] and any(k.startswith("group.") for k in tensors):
        group_classifier = Conv4(in_channels=channels, hidden=width, image_size=side,
                                 num_classes=len(meta["group_names"]), norm="running")
        group_classifier.load_state_dict(part("group."))
    evaluator = JointEmbedding.from_config(meta["evaluator"])
    evaluator.load_state_dict(part("evaluator."))
    kit = MeasureKit(pairs=pairs, classifier=classifier.to(device).eval(),
                     group_classifier=None if group_classifier is None else group_classifier.to(device).eval(),
                     group=meta["group"], group_names=list(meta["group_names"]), evaluator=evaluator.to(device).eval())
    kit.info = {k: float(v) for k, v in meta["info"].items()}
    return kit


def build_measure_kit(
    pairs: TextImagePairs,
    split: PairSplit,
    *,
    settings: MeasureSettings,
    group: str = "",
    device: torch.device | str = "cpu",
    cache: bool = True,
) -> MeasureKit:
    """Train the measuring networks of one style (see the module docstring), or load them from the cache.

    The networks are a deterministic function of the pairs, the split and the settings, so they are stored in the
    user cache (``<cache>/measure-kits/``, see :func:`metaxfer.data.system.cache_dir`) and shared by every run that
    measures the same style with the same split: the runs a comparison makes are judged by the very same networks.

    Args:
        pairs: The style's pairs.
        split: The class and language split (the group classifier trains on ``split.train`` only).
        settings: Training settings.
        group: Grouping of the group classifier (``""``: none).
        device: Where to train.
        cache: Read and write the cache.

    Returns:
        The kit, with sanity numbers in ``info``: ``classifier_aug_acc`` (on augmented real images),
        ``group_aug_acc_unseen`` (on augmented images of the unseen classes: the group classifier's own
        generalisation) and ``real_r_precision`` (of the real images of every class with their first description).
    """
    path = cache_dir() / "measure-kits" / f"{pairs.name}-{kit_key(pairs, split, settings, group)}.safetensors"
    with torch.random.fork_rng(devices=[]):  # building networks draws from the global generator: leave it as it was
        if cache and path.exists():
            try:
                return _load_kit(pairs, path, device)
            except (SafetensorError, KeyError, ValueError, OSError, RuntimeError) as exc:
                log.warning("measure kit %s is unreadable (%s); training it again", path, exc)
        kit = _train_kit(pairs, split, settings=settings, group=group, device=device)
    if cache:
        try:
            _save_kit(kit, settings, path)
        except OSError as exc:
            log.warning("could not write the measure kit %s (%s); continuing without it", path, exc)
    return kit


def _train_kit(pairs: TextImagePairs, split: PairSplit, *, settings: MeasureSettings, group: str,
               device: torch.device | str) -> MeasureKit:
    s = settings
    with torch.random.fork_rng(devices=[]):
        classifier = train_augmented_classifier(pairs.images, pairs.image_class, num_classes=pairs.num_classes,
                                                steps=s.classifier_steps, batch_size=s.batch_size, lr=s.lr,
                                                width=s.width, seed=s.seed, device=device)
        group_classifier, group_names = None, []
        if group:
            group_names = sorted({pairs.groups[group][c] for c in split.train})
            gid = {g: i for i, g in enumerate(group_names)}
            idx = torch.tensor(pairs.image_indices(split.train), dtype=torch.int64)
            labels = torch.tensor([gid[pairs.groups[group][int(c)]] for c in pairs.image_class[idx]], dtype=torch.int64)
            if len(group_names) >= 2:
                group_classifier = train_augmented_classifier(pairs.images[idx], labels, num_classes=len(group_names),
                                                              steps=s.classifier_steps, batch_size=s.batch_size,
                                                              lr=s.lr, width=s.width, seed=s.seed + 1, device=device)
        evaluator = fit_joint_embedding([pairs], classes=range(pairs.num_classes), languages=pairs.languages,
                                        steps=s.encoder_steps, batch_size=s.batch_size, lr=s.lr, dim=s.dim,
                                        text_width=s.text_width, image_width=s.width, seed=s.seed + 2, device=device)
    kit = MeasureKit(pairs=pairs, classifier=classifier, group_classifier=group_classifier, group=group,
                     group_names=group_names, evaluator=evaluator)
    kit.info = _sanity(kit, split, settings)
    log.info("measure kit for %s: %s", pairs.name, ", ".join(f"{k}={v:.3f}" for k, v in kit.info.items()))
    return kit


def _sanity(kit: MeasureKit, split: PairSplit, s: MeasureSettings) -> dict[str, float]:
    pairs = kit.pairs
    gen = torch.Generator().manual_seed(s.seed + 3)
    views = gan_to_uint8(augment_images(uint8_to_gan(pairs.images), generator=gen))
    info = {"classifier_aug_acc": float((_run(kit.classifier, views).argmax(1) == pairs.image_class).float().mean())}
    if kit.group_classifier is not None:
        unseen = torch.tensor(pairs.image_indices(list(split.val) + list(split.test)), dtype=torch.int64)
        if len(unseen):
            pred = _run(kit.group_classifier, views[unseen]).argmax(1)
            truth = [pairs.groups[kit.group][int(c)] for c in pairs.image_class[unseen]]
            info["group_aug_acc_unseen"] = sum(kit.group_names[p] == t for p, t in zip(pred.tolist(), truth)) / len(truth)
    described = [c for c in range(pairs.num_classes) if pairs.text_indices([c])]
    first = [pairs.text_indices([c])[0] for c in described]
    image_idx = [pairs.image_indices([c])[0] for c in described]
    if len(described) >= s.candidates:
        hits = _r_precision_of(kit, pairs.images[image_idx], first, generator=gen, candidates=s.candidates)
        info["real_r_precision"] = float(hits.mean())
    return info


def _r_precision_of(kit: MeasureKit, images: torch.Tensor, text_idx: Sequence[int], *, generator: torch.Generator,
                    candidates: int) -> torch.Tensor:
    idx = torch.tensor(list(text_idx), dtype=torch.int64)
    return r_precision(_image_embeddings(kit.evaluator, images), kit.pool_emb[idx], kit.pairs.text_class[idx],
                       pool_emb=kit.pool_emb, pool_class=kit.pairs.text_class, candidates=candidates,
                       generator=generator, text_group=kit.pool_lang[idx], pool_group=kit.pool_lang)


def _sibling_accuracy(logits: torch.Tensor, truth: torch.Tensor, labels: Sequence[str],
                      hits: dict[str, list[Any]]) -> dict[str, float]:
    """Class accuracy among the classes of the image's own group (all the style's classes in it, seen or not): e.g.
    the right skin tone among an emoji's variants when the group is ``base``. Images whose group has one class are
    left out (``None`` in ``hits["sibling"]``); chance is the mean of 1/group size over the images counted."""
    members: dict[str, list[int]] = {}
    for c, g in enumerate(labels):
        members.setdefault(g, []).append(c)
    row_hits: list[float | None] = []
    chances = []
    for row, t in enumerate(truth.tolist()):
        family = members[labels[t]]
        if len(family) < 2:
            row_hits.append(None)
            continue
        pick = family[int(logits[row, family].argmax())]
        row_hits.append(float(pick == t))
        chances.append(1.0 / len(family))
    counted = [h for h in row_hits if h is not None]
    if not counted:
        return {}
    hits["sibling"] = row_hits
    return {"sibling_acc": sum(counted) / len(counted), "sibling_chance": sum(chances) / len(chances),
            "sibling_n": len(counted)}


def measure_images(
    kit: MeasureKit,
    images: torch.Tensor,
    text_idx: Sequence[int],
    *,
    classes: Sequence[int],
    candidates: int = 100,
    fid: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure images generated from descriptions of the kit's pairs.

    Args:
        kit: The style's measuring networks.
        images: uint8 images (N, C, H, W), image ``i`` made from description ``text_idx[i]`` of ``kit.pairs``.
        text_idx: Indices into ``kit.pairs.texts``.
        classes: The evaluated set of classes (class accuracy is among these; FID compares with their real images).
        candidates: R-precision candidates (lowered to what the pool allows, and reported as ``rp_candidates``).
        fid: Also compute FID and KID (against the real images of ``classes``).
        seed: Seed of the R-precision draws and the KID subsets.

    Returns:
        Plain data: ``n``, ``class_acc``, ``class_top5``, ``class_acc_all``, ``class_chance``, ``group_acc``,
        ``group_chance``, ``sibling_acc``, ``sibling_chance``, ``sibling_n`` (class accuracy among the classes of
        the image's own group, e.g. the right skin tone among an emoji's variants: :func:`_sibling_accuracy`),
        ``r_precision``, ``rp_candidates``, ``fid``, ``kid`` (where available), ``lang`` (per language:
        ``{"class_acc", "r_precision", "n"}``) and the per-image hits ``hits`` (``class``, ``group``, ``sibling``,
        ``rp``: lists of 0.0/1.0, ``None`` where an image is not counted) for intervals.

    Shape:
        ``images`` (N, C, H, W), ``text_idx`` N entries.
    """
    pairs = kit.pairs
    if len(images) != len(text_idx) or len(images) == 0:
        raise MetaxferError(f"measure_images got {len(images)} images for {len(text_idx)} descriptions")
    cls = torch.tensor(sorted({int(c) for c in classes}), dtype=torch.int64)
    idx = torch.tensor(list(text_idx), dtype=torch.int64)
    truth = pairs.text_class[idx]
    outside = set(truth.tolist()) - set(cls.tolist())
    if outside:
        raise MetaxferError(f"measure_images: descriptions of classes {sorted(outside)[:5]} outside the evaluated set")
    features = _run(kit.classifier, images, "forward_features")
    with torch.no_grad():
        logits = kit.classifier.forward_head(features)
    out: dict[str, Any] = {"n": len(images), "class_chance": 1.0 / len(cls)}
    position = torch.full((pairs.num_classes,), -1, dtype=torch.int64)
    position[cls] = torch.arange(len(cls))
    local = logits[:, cls]
    class_hits = (local.argmax(1) == position[truth]).float()
    out["class_acc"] = float(class_hits.mean())
    top = local.topk(min(5, len(cls)), dim=1).indices
    out["class_top5"] = float((top == position[truth].unsqueeze(1)).any(dim=1).float().mean())
    out["class_acc_all"] = float((logits.argmax(1) == truth).float().mean())
    hits: dict[str, list[float]] = {"class": class_hits.tolist()}
    if kit.group_classifier is not None:
        names = [pairs.groups[kit.group][int(c)] for c in truth]
        pred = _run(kit.group_classifier, images).argmax(1).tolist()
        group_hits = [float(kit.group_names[p] == t) for p, t in zip(pred, names)]
        out["group_acc"] = sum(group_hits) / len(group_hits)
        counts = Counter(pairs.groups[kit.group][int(c)] for c in cls.tolist())
        out["group_chance"] = max(counts.values()) / len(cls)
        hits["group"] = group_hits
    if kit.group:
        out.update(_sibling_accuracy(logits, truth, pairs.groups[kit.group], hits))
    gen = torch.Generator().manual_seed(seed)
    lang_counts = Counter(pairs.text_lang)
    usable = min(candidates, min(lang_counts[pairs.text_lang[i]] for i in text_idx) - 1)
    rp = _r_precision_of(kit, images, text_idx, generator=gen, candidates=usable)
    out["r_precision"], out["rp_candidates"] = float(rp.mean()), usable
    hits["rp"] = rp.tolist()
    per_lang: dict[str, dict[str, float]] = {}
    for lang in dict.fromkeys(pairs.text_lang[i] for i in text_idx):
        rows = torch.tensor([k for k, i in enumerate(text_idx) if pairs.text_lang[i] == lang])
        per_lang[lang] = {"class_acc": float(class_hits[rows].mean()), "r_precision": float(rp[rows].mean()),
                          "n": len(rows)}
    out["lang"] = per_lang
    if fid:
        real = kit.real_features[torch.tensor(pairs.image_indices(cls.tolist()), dtype=torch.int64)].double()
        if len(real) >= 2 and len(features) >= 2:
            out["fid"] = fid_from_features(real, features.double())
            out["kid"] = kid_from_features(real, features.double(), subsets=20, seed=seed).mean
    out["hits"] = hits
    return out

"""Training pieces of the text-to-image layer: batches of (image, description) pairs, the contrastive step of the
encoders, a functional GAN inner loop (fine-tuning and Reptile's tasks) and Reptile's outer update.

- :class:`PairBatcher` draws batches of distinct classes with one image (from one of several styles of the same
  classes) and one or two descriptions each, from seeded generators;
- :func:`contrastive_batch_loss` is one step of the joint embedding (:mod:`metaxfer.crossmodal.encoders`);
- :func:`adapt_gan` trains a generator and a discriminator *from given parameter dictionaries* for a number of
  steps with :func:`torch.func.functional_call` and the functional Adam of :mod:`metaxfer.text.optim` (no module is
  copied or changed): the adaptation of a trained generator to a new style from K images (plain fine-tuning), and
  the inner loop of Reptile;
- :func:`reptile_surrogate` turns adapted parameters into a loss whose SGD step with learning rate ε is Reptile's
  outer update ``θ ← θ + ε (φ − θ)``, so the engine's optimisers apply it (as :class:`metaxfer.meta.Reptile` does).

References:
    A. Nichol, J. Achiam, J. Schulman. On First-Order Meta-Learning Algorithms. 2018; L. Clouâtre, M. Demers.
    FIGR: Few-shot Image Generation with Reptile. 2019 (Reptile over GAN parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from metaxfer.crossmodal.encoders import JointEmbedding, contrastive_loss, encode_bytes
from metaxfer.crossmodal.losses import t2i_discriminator_loss, t2i_generator_loss
from metaxfer.crossmodal.pairs import TextImagePairs
from metaxfer.data.augment import augment_images
from metaxfer.errors import MetaxferError
from metaxfer.gan.objectives import Objective
from metaxfer.gan.utils import randn, uint8_to_gan
from metaxfer.text.optim import OptimizerSpec, init_optimizer_state, optimizer_update

__all__ = [
    "PairBatcher",
    "Batch",
    "contrastive_batch_loss",
    "NetState",
    "net_state",
    "bind",
    "adapt_gan",
    "reptile_surrogate",
    "lerp_buffers",
]


def _index_matrix(groups: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded (C, max) matrix of the indices of each class and the count per class."""
    width = max((len(g) for g in groups), default=0)
    matrix = torch.zeros(len(groups), max(width, 1), dtype=torch.int64)
    for c, members in enumerate(groups):
        if members:
            matrix[c, : len(members)] = torch.tensor(members, dtype=torch.int64)
    return matrix, torch.tensor([len(g) for g in groups], dtype=torch.int64)


@dataclass
class Batch:
    """One batch of pairs.

    Attributes:
        images: Float images in [-1, 1] (B, C, H, W) on the batcher's device.
        texts: Indices (B,) into the batcher's ``texts`` of one description per image.
        texts2: Indices (B,) of a second description of the same class, in another language where there is one.
        classes: The classes (B,), all distinct.
    """

    images: torch.Tensor
    texts: torch.Tensor
    texts2: torch.Tensor
    classes: torch.Tensor


class PairBatcher:
    """Batches of (image, description) pairs of chosen classes, from one or more styles of the same classes.

    Args:
        styles: Pairs of one or more styles with the same class keys (e.g. Twemoji and Noto); descriptions are taken
            from the first.
        classes: The classes that may be drawn (e.g. the seen classes).
        languages: The languages whose descriptions may be drawn.
        device: Where batches go.

    Attributes:
        texts: The usable descriptions (strings), indexed by :attr:`Batch.texts`.
        text_index: Their indices in the first style's ``texts``, int64 (T,).
        text_class: Their classes, int64 (T,).
    """

    def __init__(self, styles: Sequence[TextImagePairs], *, classes: Sequence[int], languages: Sequence[str],
                 device: torch.device | str = "cpu") -> None:
        if not styles:
            raise MetaxferError("PairBatcher needs at least one style")
        first = styles[0]
        for other in styles[1:]:
            if other.class_keys != first.class_keys or other.image_shape != first.image_shape:
                raise MetaxferError(f"styles {first.name!r} and {other.name!r} differ in classes or image shape; "
                                    "use styles of the same classes, built at the same size")
        self.classes = torch.tensor(sorted(int(c) for c in classes), dtype=torch.int64)
        if len(self.classes) < 2:
            raise MetaxferError(f"PairBatcher needs at least 2 classes, got {len(self.classes)}")
        self.device = torch.device(device)
        chosen = first.text_indices(self.classes.tolist(), languages)
        self.text_index = torch.tensor(chosen, dtype=torch.int64)
        self.texts = [first.texts[i] for i in chosen]
        self.text_lang = [first.text_lang[i] for i in chosen]
        self.text_class = first.text_class[chosen]
        per_class: list[list[int]] = [[] for _ in range(first.num_classes)]
        for j, c in enumerate(self.text_class.tolist()):
            per_class[c].append(j)
        missing = [first.class_keys[c] for c in self.classes.tolist() if not per_class[c]]
        if missing:
            raise MetaxferError(f"classes {missing[:5]} have no description in languages {list(languages)}")
        self._texts, self._text_counts = _index_matrix(per_class)
        self.images = torch.cat([uint8_to_gan(s.images) for s in styles]).to(self.device).contiguous()
        offsets = [0]
        for s in styles[:-1]:
            offsets.append(offsets[-1] + len(s.image_class))
        self.num_styles = len(styles)
        self._images: list[tuple[torch.Tensor, torch.Tensor]] = []
        for s, off in zip(styles, offsets):
            groups = [[off + i for i in s.image_indices([c])] for c in range(s.num_classes)]
            self._images.append(_index_matrix(groups))
        for s, (_, counts) in zip(styles, self._images):
            empty = [s.class_keys[c] for c in self.classes.tolist() if counts[c] == 0]
            if empty:
                raise MetaxferError(f"style {s.name!r} has no image of classes {empty[:5]}")

    def _pick(self, matrix: torch.Tensor, counts: torch.Tensor, classes: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
        pos = (torch.rand(len(classes), generator=generator) * counts[classes]).long()
        return matrix[classes, pos]

    def draw_classes(self, n: int, *, generator: torch.Generator, among: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` distinct classes drawn uniformly from ``among`` (default: all of the batcher's)."""
        pool = self.classes if among is None else among
        return pool[torch.randperm(len(pool), generator=generator)[: min(n, len(pool))]]

    def batch(self, classes: torch.Tensor, *, generator: torch.Generator, style: int | None = None,
              augment: bool = False) -> Batch:
        """Images and descriptions of ``classes`` (distinct).

        Args:
            classes: Class indices (B,), each at most once.
            generator: Source of the choices (of style, image, descriptions and augmentation).
            style: Draw every image from this style (index into ``styles``); None draws a style per image.
            augment: Apply :func:`~metaxfer.data.augment.augment_images`.

        Returns:
            The batch.
        """
        if style is None:
            styles = torch.randint(self.num_styles, (len(classes),), generator=generator)
        else:
            styles = torch.full((len(classes),), int(style), dtype=torch.int64)
        picks = torch.empty(len(classes), dtype=torch.int64)
        for s in range(self.num_styles):
            rows = torch.nonzero(styles == s).flatten()
            if len(rows):
                matrix, counts = self._images[s]
                picks[rows] = self._pick(matrix, counts, classes[rows], generator)
        texts = self._pick(self._texts, self._text_counts, classes, generator)
        # a second description: another draw, moved on by one where the class has another one
        second = self._pick(self._texts, self._text_counts, classes, generator)
        same = (second == texts) & (self._text_counts[classes] > 1)
        if bool(same.any()):
            pos = (self._texts[classes] == texts.unsqueeze(1)).long().argmax(dim=1)
            nxt = (pos + 1) % self._text_counts[classes]
            second = torch.where(same, self._texts[classes, nxt], second)
        images = self.images[picks.to(self.device)]
        if augment:
            images = augment_images(images, generator=generator)
        return Batch(images=images, texts=texts, texts2=second, classes=classes)


def contrastive_batch_loss(model: JointEmbedding, batcher: PairBatcher, batch: Batch, *,
                           text_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """The joint embedding's loss on one batch (:func:`~metaxfer.crossmodal.encoders.contrastive_loss`).

    Args:
        model: The encoders.
        batcher: Where the batch's descriptions come from.
        batch: One batch of distinct classes.
        text_weight: Weight of the term between two descriptions of each class.

    Returns:
        ``(loss, metrics)``.
    """
    device = next(model.parameters()).device
    max_len = model.text.max_len
    t1 = model.text(encode_bytes([batcher.texts[i] for i in batch.texts.tolist()], max_len=max_len).to(device))
    t2 = None
    if text_weight > 0:
        t2 = model.text(encode_bytes([batcher.texts[i] for i in batch.texts2.tolist()], max_len=max_len).to(device))
    return contrastive_loss(t1, model.image(batch.images.to(device)), scale=model.scale(), text_emb2=t2,
                            text_weight=text_weight)


# ---------------------------------------------------------------------------------------------------- functional GAN
@dataclass
class NetState:
    """A network's parameters and buffers as plain dictionaries (detached tensors)."""

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]

    def clone(self) -> NetState:
        return NetState({k: v.detach().clone() for k, v in self.params.items()},
                        {k: v.detach().clone() for k, v in self.buffers.items()})


def net_state(module: nn.Module) -> NetState:
    """A detached copy of ``module``'s parameters and buffers."""
    return NetState({k: v.detach().clone() for k, v in module.named_parameters()},
                    {k: v.detach().clone() for k, v in module.named_buffers()})


def bind(module: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> Callable[..., Any]:
    """``module``'s forward with other parameters and buffers (batch-norm statistics update ``buffers`` in place)."""
    return lambda *args: functional_call(module, (params, buffers), args)


def adapt_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    g_start: NetState,
    d_start: NetState,
    next_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    objective: Objective,
    optimizer: OptimizerSpec,
    wrong_weight: float = 0.5,
    interpolation_weight: float = 0.0,
    match: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    match_weight: float = 0.0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    freeze_d: Sequence[str] = (),
    rng: torch.Generator | None = None,
) -> tuple[NetState, NetState, list[dict[str, float]]]:
    """Train a text-conditional GAN from given parameters, functionally: one discriminator then one generator
    update per step, each with a fresh functional optimiser state.

    The modules supply the architecture only; their own weights and modes are left as they were (the forward passes
    run in training mode, so batch norm uses and updates batch statistics in the returned buffers).

    Args:
        generator: A :class:`~metaxfer.crossmodal.networks.TextConditionalGenerator`.
        discriminator: A :class:`~metaxfer.crossmodal.networks.MatchingDiscriminator`.
        g_start: The generator's starting parameters and buffers (not modified).
        d_start: The discriminator's.
        next_batch: ``next_batch(step) -> (real images in [-1, 1], description embeddings)`` of distinct classes.
        steps: Updates of each network.
        objective: The GAN objective.
        optimizer: The functional optimiser of both networks (e.g. Adam with β₁ = 0.5).
        wrong_weight: Matching-aware weight (:func:`~metaxfer.crossmodal.losses.matching_aware_d_loss`).
        interpolation_weight: GAN-INT weight.
        match: Optional ``match(images, texts) -> (N,) similarity`` added to the generator's loss as
            ``match_weight · mean(1 − similarity)``.
        match_weight: Its weight.
        augment: Differentiable augmentation of the discriminator's input (real and generated images).
        freeze_d: Prefixes of discriminator parameter names that stay fixed (FreezeD: e.g. ``("body.body.",)``
            keeps the image layers and adapts only the scoring head and the description projection).
        rng: Source of noise.

    Returns:
        ``(g_state, d_state, metrics)``: the adapted states and one metrics dict per step.
    """
    g_state, d_state = g_start.clone(), d_start.clone()
    g_opt, d_opt = init_optimizer_state(optimizer, g_state.params), init_optimizer_state(optimizer, d_state.params)
    history: list[dict[str, float]] = []
    modes = (generator.training, discriminator.training)
    generator.train()
    discriminator.train()
    try:
        for step in range(steps):
            real, texts = next_batch(step)
            g_leaves = {k: v.detach().requires_grad_(True) for k, v in g_state.params.items()}
            d_leaves = {k: v.detach().requires_grad_(not k.startswith(tuple(freeze_d)))
                        for k, v in d_state.params.items()}
            g = bind(generator, g_leaves, g_state.buffers)
            fake = g(randn(len(texts), generator.latent_dim, generator=rng, device=texts.device), texts)
            d_loss, d_metrics = t2i_discriminator_loss(bind(discriminator, d_leaves, d_state.buffers), real, texts,
                                                       fake, objective=objective, wrong_weight=wrong_weight,
                                                       augment=augment, rng=rng)
            names = [k for k, v in d_leaves.items() if v.requires_grad]
            grads = torch.autograd.grad(d_loss, [d_leaves[k] for k in names], allow_unused=True)
            d_params, d_opt, _ = optimizer_update(optimizer, d_state.params, dict(zip(names, grads)), d_opt)
            d_state = NetState(d_params, d_state.buffers)
            d_frozen = bind(discriminator, d_state.params, d_state.buffers)
            g_loss, g_metrics = t2i_generator_loss(g, d_frozen, texts, latent_dim=generator.latent_dim,
                                                   objective=objective, fake=fake,
                                                   interpolation_weight=interpolation_weight, augment=augment,
                                                   rng=rng)
            if match is not None and match_weight > 0:
                similarity = match(fake, texts)
                g_loss = g_loss + match_weight * (1 - similarity).mean()
                g_metrics["match"] = float(similarity.detach().mean())
            names = list(g_leaves)
            grads = torch.autograd.grad(g_loss, [g_leaves[k] for k in names], allow_unused=True)
            g_params, g_opt, _ = optimizer_update(optimizer, g_state.params, dict(zip(names, grads)), g_opt)
            g_state = NetState(g_params, g_state.buffers)
            history.append({**{f"d/{k}": v for k, v in d_metrics.items()}, **{f"g/{k}": v for k, v in g_metrics.items()}})
    finally:
        generator.train(modes[0])
        discriminator.train(modes[1])
    return g_state, d_state, history


def reptile_surrogate(module: nn.Module, adapted: dict[str, torch.Tensor]) -> torch.Tensor:
    """``½ Σ ‖θ − φ‖²`` over ``module``'s parameters θ and adapted parameters φ: its gradient is ``θ − φ``, so an SGD
    step with learning rate ε is Reptile's update ``θ ← θ + ε (φ − θ)``.

    Args:
        module: The network being meta-learnt.
        adapted: Its parameters after the task's inner loop (same names).

    Returns:
        Scalar tensor.
    """
    theta = dict(module.named_parameters())
    missing = set(theta) ^ set(adapted)
    if missing:
        raise MetaxferError(f"reptile_surrogate: adapted parameters differ from the module's: {sorted(missing)[:5]}")
    return 0.5 * sum(((theta[k] - adapted[k].detach()) ** 2).sum() for k in theta)


@torch.no_grad()
def lerp_buffers(module: nn.Module, adapted: dict[str, torch.Tensor], *, weight: float) -> None:
    """Move ``module``'s floating-point buffers (batch-norm statistics) a fraction ``weight`` towards ``adapted``;
    integer buffers (batch counters) are copied."""
    for name, buf in module.named_buffers():
        new = adapted[name]
        if buf.is_floating_point():
            buf.lerp_(new.to(buf.dtype), weight)
        else:
            buf.copy_(new)

"""MetaGAN: a few-shot classifier whose discriminator also tells real images from generated ones (N real classes and
a "fake" class), trained together with a task-conditioned generator whose samples sharpen the class boundaries.

The discriminator is the few-shot learner itself: a ProtoNet (real-class logits ``−‖f(x) − p_k‖²``) or a MAML
classifier (the adapted head's logits). A learned scalar ``b`` is the logit of the fake class, so over N + 1 classes

    p(fake | x) = exp(b) / (exp(b) + Σ_k exp(l_k(x))),

i.e. an image is judged fake when it is far from every class (its real-class logits are all below ``b``).
Per task the losses are those of semi-supervised GANs (Salimans et al. 2016), as in MetaGAN:

* discriminator: ``L_sup + λ · L_unsup`` with ``L_sup`` = cross-entropy over the N real classes on the query images
  and ``L_unsup = −E_real log(1 − p(fake|x)) − E_G log p(fake|G(z))``;
* generator: ``−E_G log(1 − p(fake|G(z)))`` (non-saturating) plus ``μ`` times feature matching
  ``‖E_real f(x) − E_G f(G(z))‖²``.

The generator is conditioned on the task: each fake image of class k is drawn from ``G(z, c_k)`` with ``c_k`` the
(L2-normalised, detached) mean support feature of class k — the class prototype.

How it fits :class:`~metaxfer.meta.base.MetaAlgorithm`: the generator has its own optimiser (Adam, β₁ = 0.5) whose
moments are buffers of this module, and its parameters do not require gradients, so the outer optimiser (the
algorithm's own in :meth:`~metaxfer.meta.base.MetaAlgorithm.outer_step`, or the training engine's) never sees them.
:meth:`MetaGAN.meta_loss` computes the generator's gradient on the meta-batch with :func:`torch.autograd.grad`,
applies the generator's update in place, and returns the discriminator's loss (fakes detached); the outer
optimiser then updates the classifier and ``b``. Everything is in ``state_dict()`` (generator weights, its Adam
moments and step count), so checkpoints and exact resume need nothing more. Call :meth:`meta_loss` once per outer
step in training mode; in eval mode it leaves the generator alone.

References:
    R. Zhang, T. Che, Z. Ghahramani, Y. Bengio, Y. Song. MetaGAN: An Adversarial Approach to Few-Shot Learning.
    NeurIPS 2018; T. Salimans et al. Improved Techniques for Training GANs. NeurIPS 2016; J. Snell, K. Swersky,
    R. Zemel. Prototypical Networks. NeurIPS 2017; C. Finn, P. Abbeel, S. Levine. MAML. ICML 2017.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metaxfer.data.episodes import Episode
from metaxfer.errors import EpisodeError
from metaxfer.gan.meta_init import adam_update_
from metaxfer.gan.networks import DCGANGenerator
from metaxfer.meta.base import MetaAlgorithm, MetaOutput, register_algorithm
from metaxfer.meta.common import Task, accuracy, as_episode_list, embed_tasks, prototypes
from metaxfer.meta.protonet import squared_distances
from metaxfer.models.norm import NormPlan

__all__ = [
    "LEARNERS",
    "MetaGAN",
    "TaskConditionedGenerator",
    "with_fake_class",
    "fake_log_prob",
    "real_log_prob",
    "metagan_d_loss",
    "metagan_g_loss",
]

#: The few-shot learners MetaGAN's discriminator can be.
LEARNERS: tuple[str, ...] = ("protonet", "maml")


# ---------------------------------------------------------------------------------------------------- the formulas
def with_fake_class(real_logits: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """Append the fake class's logit ``b`` to the N real-class logits.

    Args:
        real_logits: (..., N).
        fake_logit: Scalar tensor ``b``.

    Returns:
        (..., N + 1) logits; the last column is the fake class.
    """
    return torch.cat([real_logits, fake_logit.expand(*real_logits.shape[:-1], 1).to(real_logits.dtype)], dim=-1)


def fake_log_prob(real_logits: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """``log p(fake | x) = b − logsumexp([l_1, …, l_N, b])``. Shape: (..., N) → (...)."""
    return fake_logit - torch.logsumexp(with_fake_class(real_logits, fake_logit), dim=-1)


def real_log_prob(real_logits: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """``log(1 − p(fake | x)) = logsumexp(l) − logsumexp([l, b])``. Shape: (..., N) → (...)."""
    return torch.logsumexp(real_logits, dim=-1) - torch.logsumexp(with_fake_class(real_logits, fake_logit), dim=-1)


def metagan_d_loss(
    query_logits: torch.Tensor,
    query_y: torch.Tensor,
    fake_logits: torch.Tensor,
    fake_logit: torch.Tensor,
    *,
    unsup_weight: float = 1.0,
    real_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The discriminator's (few-shot classifier's) loss of one task.

    Args:
        query_logits: Real-class logits of the real query images.
        query_y: Their labels in [0, N).
        fake_logits: Real-class logits of the generated images.
        fake_logit: The fake class's logit ``b``.
        unsup_weight: ``λ``.
        real_logits: Real-class logits of the real images of the unsupervised term (default: ``query_logits``).

    Returns:
        ``(loss, terms)``: ``loss = sup + λ · unsup``; terms ``sup``, ``unsup``, ``p_fake_real`` and ``p_fake_fake``
        (mean fake-class probability of real and generated images), detached.

    Shape:
        ``query_logits`` (Q, N), ``query_y`` (Q,), ``fake_logits`` (M, N).
    """
    real = query_logits if real_logits is None else real_logits
    sup = F.cross_entropy(query_logits, query_y)
    unsup = -real_log_prob(real, fake_logit).mean() - fake_log_prob(fake_logits, fake_logit).mean()
    loss = sup + unsup_weight * unsup
    with torch.no_grad():
        terms = {"sup": sup.detach(), "unsup": unsup.detach(),
                 "p_fake_real": fake_log_prob(real, fake_logit).exp().mean(),
                 "p_fake_fake": fake_log_prob(fake_logits, fake_logit).exp().mean()}
    return loss, terms


def metagan_g_loss(
    fake_logits: torch.Tensor,
    fake_logit: torch.Tensor,
    *,
    real_features: torch.Tensor,
    fake_features: torch.Tensor,
    fm_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The generator's loss of one task: ``−E log(1 − p(fake|G(z))) + μ ‖E f(x) − E f(G(z))‖²``.

    Args:
        fake_logits: Real-class logits of the generated images (with the generator's graph).
        fake_logit: ``b``.
        real_features: Features of real images (detached inside).
        fake_features: Features of the generated images.
        fm_weight: ``μ``, the weight of feature matching.

    Returns:
        ``(loss, terms)`` with terms ``adv`` and ``fm``, detached.

    Shape:
        ``fake_logits`` (M, N); features (R, D) and (M, D).
    """
    adv = -real_log_prob(fake_logits, fake_logit).mean()
    fm = (real_features.detach().mean(0) - fake_features.mean(0)).square().sum()
    return adv + fm_weight * fm, {"adv": adv.detach(), "fm": fm.detach()}


# ---------------------------------------------------------------------------------------------------- the generator
class TaskConditionedGenerator(nn.Module):
    """A DCGAN generator fed with noise and a projected class prototype: ``G(z, c) = DCGAN([z, W c])``.

    Args:
        feature_dim: Size of the prototypes (the learner's features).
        latent_dim: Size of ``z``.
        condition_dim: Size of the projected prototype.
        image_size: Side the network generates at (even, >= 8).
        channels: Output channels.
        width: DCGAN width.

    Shape:
        ``z`` (M, latent_dim), ``condition`` (M, feature_dim) → images (M, channels, size, size) in [0, 1] (the
        learners' input range); ``size`` defaults to ``image_size``.
    """

    def __init__(self, *, feature_dim: int, latent_dim: int = 32, condition_dim: int = 16, image_size: int = 28,
                 channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.latent_dim, self.feature_dim = latent_dim, feature_dim
        self.project = nn.Linear(feature_dim, condition_dim)
        self.net = DCGANGenerator(latent_dim + condition_dim, image_size=image_size, channels=channels, width=width)
        self.image_shape = self.net.image_shape

    def forward(self, z: torch.Tensor, condition: torch.Tensor, *, size: int | None = None) -> torch.Tensor:
        """Images in [0, 1], resized to ``size`` × ``size`` (area averaging down, bilinear up) when given."""
        c = self.project(F.normalize(condition, dim=-1))
        x = (self.net(torch.cat([z, c], dim=1)) + 1) / 2
        if size is None or size == x.shape[-1]:
            return x
        return F.interpolate(x, size=(size, size), mode="area" if size < x.shape[-1] else "bilinear",
                             align_corners=None if size < x.shape[-1] else False)


class _GeneratorAdam(nn.Module):
    """Adam for the generator, its moments and step count kept as buffers (so ``state_dict`` checkpoints them)."""

    def __init__(self, params: Sequence[nn.Parameter], *, lr: float, betas: tuple[float, float]) -> None:
        super().__init__()
        self.lr, self.betas = lr, betas
        self.count = len(params)
        for i, p in enumerate(params):
            self.register_buffer(f"exp_avg_{i}", torch.zeros_like(p))
            self.register_buffer(f"exp_avg_sq_{i}", torch.zeros_like(p))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def apply_(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        self.step += 1
        adam_update_(params, grads, [getattr(self, f"exp_avg_{i}") for i in range(self.count)],
                     [getattr(self, f"exp_avg_sq_{i}") for i in range(self.count)], step=int(self.step),
                     lr=self.lr, betas=self.betas, eps=1e-8)


class _Features(nn.Module):
    """A view whose ``forward`` is the backbone's ``forward_features`` (for :func:`functional_call`); not a copy."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor, norm: NormPlan | None = None) -> torch.Tensor:
        return self.backbone.forward_features(x, norm=norm)


# ---------------------------------------------------------------------------------------------------- the algorithm
@register_algorithm("metagan")
class MetaGAN(MetaAlgorithm):
    """MetaGAN with a ProtoNet or (first-order by default) MAML discriminator.

    Args:
        backbone: The learner's backbone: without a head for ``protonet``, with ``ways`` outputs for ``maml``
            (:func:`~metaxfer.meta.create_algorithm` builds the right one).
        learner: ``protonet`` or ``maml``.
        g_image_size: Side the generator draws at; its images are resized to the episodes' side (area averaging
            down, bilinear up), so any square episode works.
        channels: Their channels (default: the backbone's first convolution's input channels, else 1).
        latent_dim: Generator noise size.
        condition_dim: Size of the projected prototype the generator sees.
        g_width: Generator width.
        g_lr: Generator learning rate (its own Adam).
        g_beta1: Generator Adam β₁.
        fakes_per_class: Generated images per class and task (default: the episode's shots).
        unsup_weight: ``λ``, weight of the real/fake term in the discriminator loss (0.3: with 1 the term
            dominated the first outer steps and slowed the classifier down on small problems).
        fm_weight: ``μ``, weight of feature matching in the generator loss.
        inner_lr: MAML inner step size.
        inner_steps: MAML inner steps during meta-training.
        eval_inner_steps: MAML inner steps in :meth:`predict` (default: ``inner_steps``).
        first_order: First-order MAML (default) or second order.
        seed: Seed of the generated images used by :meth:`predict` (MAML learner).
        **kwargs: Outer-loop options of :class:`~metaxfer.meta.base.MetaAlgorithm`.

    Metrics of :meth:`meta_loss`: ``loss`` / ``acc`` (N-way query cross-entropy and accuracy), ``d_loss``,
    ``unsup``, ``p_fake_real`` / ``p_fake_fake`` (mean fake-class probability of real queries and of generated
    images), ``g_loss``, ``g_adv``, ``g_fm``.
    """

    batched: ClassVar[bool] = True  # meta_loss sees the whole meta-batch: one generator update per call
    separable: ClassVar[bool] = False
    parallel_tasks: ClassVar[bool] = False

    def __init__(
        self,
        backbone: nn.Module,
        *,
        learner: str = "protonet",
        g_image_size: int = 28,
        channels: int | None = None,
        latent_dim: int = 32,
        condition_dim: int = 16,
        g_width: int = 16,
        g_lr: float = 2e-4,
        g_beta1: float = 0.5,
        fakes_per_class: int | None = None,
        unsup_weight: float = 0.3,
        fm_weight: float = 1.0,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = True,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, **kwargs)
        if learner not in LEARNERS:
            raise ValueError(f"MetaGAN learner must be one of {', '.join(LEARNERS)}, got {learner!r}")
        head = int(getattr(backbone, "num_classes", 0))
        if learner == "maml" and not head:
            raise ValueError("MetaGAN with learner='maml' needs a backbone with a head of `ways` outputs "
                             "(create_algorithm('metagan', learner='maml', ways=N) builds one)")
        if learner == "protonet" and head:
            raise ValueError("MetaGAN with learner='protonet' uses features only: build the backbone with "
                             "num_classes=0")
        if inner_steps < 1 or (fakes_per_class is not None and fakes_per_class < 1):
            raise ValueError(f"need inner_steps >= 1 and fakes_per_class >= 1, got {inner_steps}, {fakes_per_class}")
        self.learner = learner
        self.fakes_per_class = fakes_per_class
        self.unsup_weight, self.fm_weight = float(unsup_weight), float(fm_weight)
        self.inner_lr, self.inner_steps = float(inner_lr), int(inner_steps)
        self.eval_inner_steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
        self.first_order = bool(first_order)
        self.seed = int(seed)
        if channels is None:
            conv = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
            channels = conv.in_channels if conv is not None else 1
        self.fake_logit = nn.Parameter(torch.zeros((), **self._factory()))
        self.generator = TaskConditionedGenerator(
            feature_dim=int(backbone.num_features), latent_dim=latent_dim, condition_dim=condition_dim,
            image_size=g_image_size, channels=channels, width=g_width,
        ).to(**self._factory())
        self.generator.requires_grad_(False)  # updated by its own optimiser below, never by the outer one
        self.g_optimizer = _GeneratorAdam(list(self.generator.parameters()), lr=g_lr, betas=(g_beta1, 0.999))

    @classmethod
    def backbone_head(cls, *, ways: int, options: dict[str, Any]) -> dict[str, Any]:
        return {"num_classes": ways if options.get("learner", "protonet") == "maml" else 0}

    # ------------------------------------------------------------------------------------------------ pieces
    def task(self, episode: Episode) -> Task:
        c, h, w = (int(v) for v in episode.support_x.shape[1:])
        if c != self.generator.image_shape[0] or h != w:
            raise EpisodeError(
                f"MetaGAN's generator makes square images with {self.generator.image_shape[0]} channel(s) but the "
                f"episode's are {c}×{h}×{w}: build it with channels={c} (meta.options: {{channels: {c}}}) and "
                "square images"
            )
        return super().task(episode)

    def _to_input(self, images01: torch.Tensor) -> torch.Tensor:
        """Generator output in [0, 1] → the learner's input (the algorithm's normalisation applied)."""
        if self.normalize is None:
            return images01
        mean = torch.as_tensor(self.normalize[0], dtype=images01.dtype, device=images01.device).view(-1, 1, 1)
        std = torch.as_tensor(self.normalize[1], dtype=images01.dtype, device=images01.device).view(-1, 1, 1)
        return (images01 - mean) / std

    def _run(self, parts: Sequence[torch.Tensor], *, params: dict[str, torch.Tensor] | None, features: bool
             ) -> list[torch.Tensor]:
        """Backbone outputs for each part; the first part is the support set (its statistics in ``support`` mode)."""
        net: nn.Module = _Features(self.backbone) if features else self.backbone
        named = params if params is not None else dict(self.backbone.named_parameters())
        call_params = {(f"backbone.{n}" if features else n): p for n, p in named.items()}

        def call(x: torch.Tensor, plan: NormPlan | None) -> torch.Tensor:
            return functional_call(net, call_params, (x,), {"norm": plan}, strict=False)

        mode = getattr(self.backbone, "norm_mode", None)
        if mode == "transductive":
            return [call(p, NormPlan(1)) for p in parts]
        sizes = [p.shape[0] for p in parts]
        out = call(torch.cat(list(parts)), NormPlan(1, sizes[0]) if mode == "support" else None)
        return list(out.split(sizes))

    def _real_logits(self, parts: Sequence[torch.Tensor], *, support_y: torch.Tensor, ways: int,
                     params: dict[str, torch.Tensor] | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Real-class logits and features of every part (prototype distances or the head's outputs)."""
        feats = self._run(parts, params=params, features=True)
        if self.learner == "protonet":
            protos = prototypes(feats[0].unsqueeze(0), support_y.unsqueeze(0), ways)
            logits = [-squared_distances(f.unsqueeze(0), protos)[0] for f in feats]
        else:
            logits = self._run(parts, params=params, features=False)
        return logits, feats

    def _fakes(self, task: Task, g_params: dict[str, torch.Tensor], *, per_class: int,
               rng: torch.Generator | None) -> torch.Tensor:
        """``per_class`` generated images per class, grouped by class, conditioned on the class prototypes."""
        with torch.no_grad():
            feats = self._run([task.support_x], params=None, features=True)[0]
            protos = prototypes(feats.unsqueeze(0), task.support_y.unsqueeze(0), task.ways)[0]
        cond = protos.repeat_interleave(per_class, dim=0)
        ref = self.reference
        z = torch.randn(cond.shape[0], self.generator.latent_dim, generator=rng, device=ref.device, dtype=ref.dtype) \
            if rng is None or rng.device == ref.device else \
            torch.randn(cond.shape[0], self.generator.latent_dim, generator=rng).to(ref.device, ref.dtype)
        images = functional_call(self.generator, g_params, (z, cond), {"size": int(task.support_x.shape[-1])})
        return self._to_input(images)

    def _adapt(self, task: Task, fakes: torch.Tensor, *, steps: int, create_graph: bool) -> dict[str, torch.Tensor]:
        """MAML learner: gradient steps on the support set's loss plus the real/fake term on ``fakes``."""
        params = dict(self.backbone.named_parameters())
        for _ in range(steps):
            logits, _ = self._real_logits([task.support_x, fakes], support_y=task.support_y, ways=task.ways,
                                          params=params)
            loss, _ = metagan_d_loss(logits[0], task.support_y, logits[1], self.fake_logit,
                                     unsup_weight=self.unsup_weight)
            names = list(params)
            grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
            params = {n: params[n] - self.inner_lr * g for n, g in zip(names, grads, strict=True)}
        return params

    # ------------------------------------------------------------------------------------------------ training
    def meta_loss(self, episodes: Episode | Sequence[Episode]) -> MetaOutput:
        """The discriminator's meta-batch loss; in training mode the generator is updated here too (see the module
        docstring)."""
        self._require_meta_training()
        eps = as_episode_list(episodes)
        g_leaves = {n: p.detach().requires_grad_(True) for n, p in self.generator.named_parameters()}
        d_losses: list[torch.Tensor] = []
        g_total: torch.Tensor | float = 0.0
        logs: list[dict[str, torch.Tensor]] = []
        for e in eps:
            task = self.task(e)
            per_class = self.fakes_per_class or e.shots
            fakes = self._fakes(task, g_leaves, per_class=per_class, rng=None)
            params = None
            if self.learner == "maml":
                params = self._adapt(task, fakes.detach(), steps=self.inner_steps, create_graph=not self.first_order)
            logits, feats = self._real_logits([task.support_x, task.query_x, fakes.detach()], support_y=task.support_y,
                                              ways=task.ways, params=params)
            d_loss, terms = metagan_d_loss(logits[1], task.query_y, logits[2], self.fake_logit,
                                           unsup_weight=self.unsup_weight)
            # the generator's loss: its fakes scored by the (adapted) discriminator, whose weights get no gradient
            frozen = {n: p.detach() for n, p in (params or dict(self.backbone.named_parameters())).items()}
            g_logits, g_feats = self._real_logits([task.support_x, fakes], support_y=task.support_y, ways=task.ways,
                                                  params=frozen)
            g_loss, g_terms = metagan_g_loss(g_logits[1], self.fake_logit.detach(),
                                             real_features=torch.cat([feats[0], feats[1]]), fake_features=g_feats[1],
                                             fm_weight=self.fm_weight)
            d_losses.append(d_loss)
            g_total = g_total + g_loss
            logs.append({"loss": terms["sup"], "acc": torch.tensor(accuracy(logits[1].detach(), task.query_y)),
                         "d_loss": d_loss.detach(), "unsup": terms["unsup"], "p_fake_real": terms["p_fake_real"],
                         "p_fake_fake": terms["p_fake_fake"], "g_loss": g_loss.detach(), "g_adv": g_terms["adv"],
                         "g_fm": g_terms["fm"]})
        g_mean = g_total / len(eps)
        if self.training:
            grads = torch.autograd.grad(g_mean, list(g_leaves.values()))  # type: ignore[arg-type]
            self.g_optimizer.apply_(list(self.generator.parameters()), grads)
        metrics = {k: float(torch.stack([m[k].float() for m in logs]).mean()) for k in logs[0]}
        return MetaOutput(torch.stack(d_losses).mean(), metrics)

    # ------------------------------------------------------------------------------------------------ testing
    def predict(self, episode: Episode) -> torch.Tensor:
        """N-way query logits (the fake class is not a prediction); the MAML learner adapts on the support set and
        generated images drawn with ``seed``."""
        task = self.task(episode)
        if self.learner == "protonet":
            with torch.no_grad():
                return self._real_logits([task.support_x, task.query_x], support_y=task.support_y,
                                         ways=task.ways)[0][1]
        rng = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            fakes = self._fakes(task, dict(self.generator.named_parameters()),
                                per_class=self.fakes_per_class or episode.shots, rng=rng)
        with torch.enable_grad():
            params = self._adapt(task, fakes, steps=self.eval_inner_steps, create_graph=False)
        with torch.no_grad():
            params = {n: p.detach() for n, p in params.items()}
            return self._real_logits([task.support_x, task.query_x], support_y=task.support_y, ways=task.ways,
                                     params=params)[0][1]

    def predict_batch(self, episodes: Sequence[Episode]) -> list[torch.Tensor]:
        if self.learner == "protonet" and len(episodes) > 1:
            with torch.no_grad():
                batch = self.task_batch(as_episode_list(episodes))
                fs, fq = embed_tasks(self.backbone, batch)
                return list((-squared_distances(fq, prototypes(fs, batch.support_y, batch.ways))).unbind(0))
        return [self.predict(e) for e in episodes]

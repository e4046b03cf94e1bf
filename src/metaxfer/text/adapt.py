"""Training and adaptation of the translation model, as functions over parameter dictionaries.

* :func:`adapt` — the one inner loop: a few optimiser steps from given parameters, through
  :func:`torch.func.functional_call` (no module copies). :func:`adapt_tasks` runs it for several tasks at once under
  :func:`torch.func.vmap` (the meta-batch of MAML/Reptile). :func:`fine_tune` is it on the K pairs of a new language
  pair; training from scratch is fine-tuning from a fresh initialisation.
* :class:`JointTrainer` — multilingual training on the meta-training pairs (optionally with an adversarial language
  discriminator, :mod:`metaxfer.text.adversary`).
* :class:`MetaTrainer` — first-order MAML and Reptile over language pairs: each task is one pair.

Optimisers are functional (:mod:`metaxfer.text.optim`), so every trainer's whole state is a flat
``{name: tensor}`` dictionary (:meth:`state_dict`) and every ``step()`` returns a dictionary of floats.

References:
    Gu, Wang, Chen, Cho, Li, "Meta-Learning for Low-Resource Neural Machine Translation", EMNLP 2018.
    Finn, Abbeel, Levine, "Model-Agnostic Meta-Learning", ICML 2017 (first-order variant, section 5.2).
    Nichol, Achiam, Schulman, "On First-Order Meta-Learning Algorithms" (Reptile), 2018.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from metaxfer.errors import EpisodeError, MetaxferError
from metaxfer.text.adversary import AdversaryConfig, LanguageAdversary
from metaxfer.text.corpora import ParallelCorpus
from metaxfer.text.optim import OptimizerSpec, Params, init_optimizer_state, leaves, optimizer_update, parameters_of
from metaxfer.text.sampling import PairSampler
from metaxfer.text.tokenizer import PAD, Tokenizer, TranslationBatch, encode_pairs

__all__ = [
    "sequence_loss",
    "translation_loss",
    "adapt",
    "adapt_tasks",
    "fine_tune",
    "PairSampler",
    "JointTrainer",
    "MetaConfig",
    "MetaTrainer",
]

# ----------------------------------------------------------------------------------------------------- losses
def sequence_loss(logits: torch.Tensor, tgt_out: torch.Tensor, *,
                  label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level cross-entropy of decoder logits (B, T, V) against ``tgt_out`` (B, T), padding ignored.

    Returns:
        ``(loss, {"loss", "token_acc"})``.
    """
    loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, label_smoothing=label_smoothing)
    with torch.no_grad():
        real = tgt_out != PAD
        acc = ((logits.argmax(-1) == tgt_out) & real).sum() / real.sum().clamp(min=1)
    return loss, {"loss": float(loss.detach()), "token_acc": float(acc)}


def translation_loss(
    model: nn.Module, params: Params, batch: TranslationBatch, *, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """:func:`sequence_loss` of ``batch`` under ``params`` (differentiable w.r.t. ``params``)."""
    logits = functional_call(model, params, (batch.src, batch.tgt_in))
    return sequence_loss(logits, batch.tgt_out, label_smoothing=label_smoothing)


def adapt(
    model: nn.Module,
    params: Params,
    batches: TranslationBatch | Callable[[int], TranslationBatch],
    *,
    steps: int,
    optimizer: OptimizerSpec,
    label_smoothing: float = 0.0,
    callback: Callable[[int, Params], None] | None = None,
) -> tuple[Params, list[float]]:
    """Run ``steps`` optimiser steps from ``params`` (the inner loop of MAML/Reptile, and fine-tuning).

    The module's own weights are never touched: the forward pass runs through ``functional_call``. Dropout follows
    the module's train/eval mode.

    Args:
        model: The architecture.
        params: Starting parameters (not modified).
        batches: One batch used at every step, or ``batches(step) -> batch``.
        steps: Number of steps (0 returns ``params`` unchanged).
        optimizer: The inner optimiser (its state starts fresh).
        label_smoothing: Label smoothing of the loss.
        callback: ``callback(step, params)`` after each step (``step`` counts from 1), e.g. to evaluate.

    Returns:
        ``(adapted_params, losses)``: the losses before each step.
    """
    state = init_optimizer_state(optimizer, params)
    losses: list[float] = []
    current = dict(params)
    for i in range(steps):
        batch = batches(i) if callable(batches) else batches
        leaf = leaves(current)
        loss, _ = translation_loss(model, leaf, batch, label_smoothing=label_smoothing)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise MetaxferError(f"the loss became {value} at inner step {i}: lower the learning rate "
                                f"({optimizer.kind} lr={optimizer.lr}) or clip gradients (clip_norm)")
        grads = torch.autograd.grad(loss, list(leaf.values()))
        current, state, _ = optimizer_update(optimizer, current, dict(zip(leaf, grads)), state)
        losses.append(value)
        if callback is not None:
            callback(i + 1, current)
    return current, losses


def _pure_loss(model: nn.Module, label_smoothing: float, params: Params, src: torch.Tensor, tgt_in: torch.Tensor,
               tgt_out: torch.Tensor) -> torch.Tensor:
    logits = functional_call(model, params, (src, tgt_in))
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, label_smoothing=label_smoothing)


def _task_grads(model: nn.Module, params: Params, batch: TranslationBatch,
                label_smoothing: float) -> tuple[Params, torch.Tensor]:
    """Per-task gradients and losses: ``params`` and ``batch`` carry a leading task dimension."""
    fn = vmap(grad_and_value(partial(_pure_loss, model, label_smoothing)), randomness="different")
    with warnings.catch_warnings():  # torch has no batching rule for CPU flash attention yet: a slower path, same maths
        warnings.filterwarnings("ignore", message=".*performance drop.*")
        grads, loss = fn({k: v.detach() for k, v in params.items()}, batch.src, batch.tgt_in, batch.tgt_out)
    return grads, loss.detach()


def adapt_tasks(
    model: nn.Module,
    params: Params,
    batches: TranslationBatch | Callable[[int], TranslationBatch],
    *,
    tasks: int,
    steps: int,
    optimizer: OptimizerSpec,
    label_smoothing: float = 0.0,
    callback: Callable[[int, Params], None] | None = None,
) -> tuple[Params, torch.Tensor]:
    """:func:`adapt` for several tasks at once, from the same ``params``, vectorised with :func:`torch.func.vmap`.

    Args:
        model: The architecture.
        params: Shared starting parameters (not modified).
        batches: Stacked batches (tensors (T, B, L), see ``TranslationBatch.stack``), one for every step or
            ``batches(step)``.
        tasks: T.
        steps: Inner steps.
        optimizer: Inner optimiser (per-task state; gradient clipping is per task).
        label_smoothing: Label smoothing of the loss.
        callback: ``callback(step, params)`` after each step, with the stacked parameters.

    Returns:
        ``(adapted, losses)``: parameters with a leading task dimension, and losses (steps, T) before each step.

    Raises:
        MetaxferError: A loss is not finite.
    """
    current = {k: v.detach().unsqueeze(0).expand(tasks, *v.shape).clone() for k, v in params.items()}
    state = init_optimizer_state(optimizer, current)
    losses = []
    for i in range(steps):
        batch = batches(i) if callable(batches) else batches
        grads, loss = _task_grads(model, current, batch, label_smoothing)
        if not bool(torch.isfinite(loss).all()):
            raise MetaxferError(f"an inner loss became {loss.tolist()} at inner step {i}: lower the learning rate "
                                f"({optimizer.kind} lr={optimizer.lr}) or clip gradients (clip_norm)")
        current, state, _ = optimizer_update(optimizer, current, grads, state, per_task=True)
        losses.append(loss)
        if callback is not None:
            callback(i + 1, current)
    return current, torch.stack(losses) if losses else torch.zeros(0, tasks)


def fine_tune(
    model: nn.Module,
    params: Params,
    tokenizer: Tokenizer,
    corpus: ParallelCorpus,
    *,
    steps: int,
    optimizer: OptimizerSpec = OptimizerSpec(),
    batch_size: int = 32,
    label_smoothing: float = 0.1,
    seed: int = 0,
    callback: Callable[[int, Params], None] | None = None,
) -> tuple[Params, list[float]]:
    """Adapt ``params`` to the K pairs of ``corpus`` (all of them per step when K ≤ ``batch_size``, else random
    mini-batches). The model is in train mode (dropout on) during the call and restored afterwards.

    Returns:
        ``(params, losses)`` as :func:`adapt`.

    Raises:
        EpisodeError: The corpus is empty.
        UnknownNameError: The tokenizer has no tag for the corpus's target language.
    """
    if len(corpus) == 0:
        raise EpisodeError(f"cannot fine-tune on {corpus.name}: it has no pairs")
    device = next(iter(params.values())).device
    data = encode_pairs(tokenizer, corpus.sources, corpus.targets, corpus.tgt_lang,
                        max_len=int(model.max_len)).to(device)
    gen = torch.Generator().manual_seed(seed)

    def draw(_: int) -> TranslationBatch:
        return data.index(torch.randperm(len(corpus), generator=gen)[:batch_size].to(device))

    with _train_mode(model):
        return adapt(model, params, draw if len(corpus) > batch_size else data, steps=steps, optimizer=optimizer,
                     label_smoothing=label_smoothing, callback=callback)


@contextlib.contextmanager
def _train_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.train()
    try:
        yield
    finally:
        model.train(was_training)


def _prefixed(prefix: str, d: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in d.items()}


def _unprefixed(prefix: str, d: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in d.items() if k.startswith(prefix + ".")}


class _Trainer:
    """What every trainer shares: parameters, optimiser state, a sampler, an iteration count, and the flat tensor
    state built from them (plus any ``_parts()`` with their own ``state_dict``)."""

    params: Params
    opt_state: dict[str, torch.Tensor]
    sampler: PairSampler
    iteration: int

    def _parts(self) -> dict[str, LanguageAdversary | PairSampler]:
        return {"sampler": self.sampler}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything needed to resume, as a flat dictionary of tensors (``params.*``, ``opt.*``, ``sampler.*``,
        ``iteration``, and ``adversary.*`` when there is one)."""
        out = {**_prefixed("params", self.params), **_prefixed("opt", self.opt_state),
               "iteration": torch.tensor(self.iteration, dtype=torch.long)}
        for name, part in self._parts().items():
            out.update(_prefixed(name, part.state_dict()))
        return out

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`."""
        self.params = _unprefixed("params", state)
        self.opt_state = _unprefixed("opt", state)
        self.iteration = int(state["iteration"])
        for name, part in self._parts().items():
            part.load_state_dict(_unprefixed(name, state))


# ---------------------------------------------------------------------------------------------- joint training
class JointTrainer(_Trainer):
    """Multilingual training on all meta-training pairs at once (one batch mixes languages uniformly).

    Args:
        model: The architecture (its weights give the initial parameters unless ``params`` is given).
        sampler: Batches of the meta-training pairs.
        optimizer: Optimiser of the translation model.
        batch_size: Pairs per step.
        label_smoothing: Label smoothing of the loss.
        adversary: Optional adversarial language discriminator on the encoder states.
        params: Initial parameters.
    """

    def __init__(self, model: nn.Module, sampler: PairSampler, *, optimizer: OptimizerSpec = OptimizerSpec(),
                 batch_size: int = 64, label_smoothing: float = 0.1, adversary: AdversaryConfig | None = None,
                 params: Params | None = None) -> None:
        self.model, self.sampler, self.spec = model, sampler, optimizer
        self.batch_size, self.label_smoothing = batch_size, label_smoothing
        self.params = dict(params) if params is not None else parameters_of(model)
        self.opt_state = init_optimizer_state(optimizer, self.params)
        self.adversary = (LanguageAdversary(adversary, d_model=int(model.d_model),
                                            n_languages=len(sampler.tokenizer.languages),
                                            seed=int(torch.randint(2**31, (1,), generator=sampler.generator)))
                          if adversary is not None else None)
        self.iteration = 0

    def step(self) -> dict[str, float]:
        """One optimiser step on a mixed-language batch.

        Returns:
            ``{"loss", "token_acc", "grad_norm"}``, plus ``"d_loss", "d_acc", "adv_loss"`` with an adversary.
        """
        self.model.train()
        batch = self.sampler.batch(self.batch_size)
        leaf = leaves(self.params)
        logits, memory, keep = functional_call(self.model, leaf, (batch.src, batch.tgt_in), {"return_memory": True})
        loss, metrics = sequence_loss(logits, batch.tgt_out, label_smoothing=self.label_smoothing)
        total = loss
        if self.adversary is not None:
            adv_loss, adv_metrics = self.adversary.step(memory, keep, batch.lang, iteration=self.iteration)
            total = loss + adv_loss
            metrics.update(adv_metrics)
        value = float(total.detach())
        if not math.isfinite(value):
            raise MetaxferError(f"joint training loss became {value} at step {self.iteration}: lower the learning "
                                f"rate ({self.spec.lr}) or set clip_norm")
        grads = torch.autograd.grad(total, list(leaf.values()))
        self.params, self.opt_state, metrics["grad_norm"] = optimizer_update(
            self.spec, self.params, dict(zip(leaf, grads)), self.opt_state)
        self.iteration += 1
        return metrics

    def _parts(self) -> dict[str, LanguageAdversary | PairSampler]:
        parts: dict[str, LanguageAdversary | PairSampler] = {"sampler": self.sampler}
        if self.adversary is not None:
            parts["adversary"] = self.adversary
        return parts


# ---------------------------------------------------------------------------------------------- meta-learning
@dataclass(frozen=True)
class MetaConfig:
    """Settings of first-order MAML / Reptile over language pairs.

    Attributes:
        algorithm: ``"fomaml"`` (inner steps on a support batch, outer gradient = query gradient at the adapted
            parameters) or ``"reptile"`` (inner steps on fresh batches, outer update towards the adapted parameters).
        inner_steps: Inner steps per task.
        inner: Inner optimiser (a fresh state per task); by default Adam with β₁ = 0, as in the Reptile paper, close
            to the Adam fine-tuning used after meta-training.
        outer: Outer optimiser; for Reptile its "gradient" is ``θ - mean(φ)``, so SGD with ``lr=ε`` is the
            original interpolation ``θ + ε (mean(φ) - θ)``.
        support_size: Pairs per inner batch.
        query_size: Pairs in the query batch (FO-MAML).
        meta_batch: Tasks (language pairs) per outer step.
        label_smoothing: Label smoothing of every loss.
    """

    algorithm: Literal["fomaml", "reptile"] = "fomaml"
    inner_steps: int = 3
    inner: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(kind="adam", lr=1e-3, betas=(0.0, 0.98)))
    outer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(kind="adam", lr=1e-3))
    support_size: int = 32
    query_size: int = 32
    meta_batch: int = 4
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if self.algorithm not in ("fomaml", "reptile"):
            raise ValueError(f"algorithm must be 'fomaml' or 'reptile', not {self.algorithm!r}")
        if self.inner_steps < 1 or self.meta_batch < 1:
            raise ValueError("inner_steps and meta_batch must be at least 1")


class MetaTrainer(_Trainer):
    """First-order MAML or Reptile where each task is one language pair.

    The ``meta_batch`` tasks of a step are adapted in parallel: their inner loops run under
    :func:`torch.func.vmap` over stacked copies of the parameters (one per task), which is the same maths as adapting
    them one after the other, faster.

    Args:
        model: The architecture (its weights are the initial meta-parameters unless ``params`` is given).
        sampler: The meta-training pairs.
        config: Algorithm settings.
        params: Initial meta-parameters.
    """

    def __init__(self, model: nn.Module, sampler: PairSampler, *, config: MetaConfig = MetaConfig(),
                 params: Params | None = None) -> None:
        self.model, self.sampler, self.config = model, sampler, config
        self.params = dict(params) if params is not None else parameters_of(model)
        self.opt_state = init_optimizer_state(config.outer, self.params)
        self.iteration = 0

    def step(self) -> dict[str, float]:
        """One outer update over ``meta_batch`` language pairs drawn uniformly.

        FO-MAML: ``θ ← outer(θ, mean_t ∇L_query_t(φ_t))``; Reptile: ``θ ← outer(θ, θ - mean_t φ_t)``, where
        ``φ_t`` are the parameters after the inner loop on task t.

        Returns:
            ``{"loss", "support_loss", "query_loss", "grad_norm"}``: ``support_loss`` before adaptation,
            ``query_loss`` after it (FO-MAML: on the query batch; Reptile: the last inner loss); ``loss`` is
            ``query_loss``; all averaged over tasks.
        """
        self.model.train()
        cfg = self.config
        langs = [self.sampler.random_language() for _ in range(cfg.meta_batch)]
        common = dict(tasks=cfg.meta_batch, steps=cfg.inner_steps, optimizer=cfg.inner,
                      label_smoothing=cfg.label_smoothing)
        if cfg.algorithm == "fomaml":
            support, query = self.sampler.tasks(langs, support=cfg.support_size, query=cfg.query_size)
            fast, losses = adapt_tasks(self.model, self.params, support, **common)
            q_grads, q_loss = _task_grads(self.model, fast, query, cfg.label_smoothing)
            outer_grad = {k: g.mean(0) for k, g in q_grads.items()}
            query_loss = float(q_loss.mean())
        else:
            fast, losses = adapt_tasks(self.model, self.params,
                                       lambda _: self.sampler.batches(langs, cfg.support_size), **common)
            outer_grad = {k: self.params[k] - fast[k].mean(0) for k in self.params}
            query_loss = float(losses[-1].mean())
        if not math.isfinite(query_loss):
            raise MetaxferError(f"{cfg.algorithm} query loss became {query_loss} at step {self.iteration}: lower the "
                                f"inner learning rate ({cfg.inner.lr}) or the outer one ({cfg.outer.lr})")
        self.params, self.opt_state, norm = optimizer_update(cfg.outer, self.params, outer_grad, self.opt_state)
        self.iteration += 1
        return {"loss": query_loss, "support_loss": float(losses[0].mean()), "query_loss": query_loss,
                "grad_norm": norm}

"""An adversarial (GAN-style) language discriminator on the encoder states.

The discriminator D reads the mean of the encoder states over the phrase (the language-tag position left out) and
guesses the target language. Each training step alternates:

* **D step** — ``L_D = CE(D(pool(memory).detach()), language)``: D learns to tell the languages apart;
* **encoder term** — ``L_adv = KL(uniform ‖ D(pool(memory)))``, weighted by λ and added to the translation loss:
  the encoder is pushed to states from which D cannot tell the target language (a language-independent encoding of the
  English phrase), while the language tag still reaches the decoder through its start token.

The KL-to-uniform ("confusion") objective is used instead of a reversed gradient because it is bounded below by 0,
which keeps the minimax stable. Whether the term helps transfer is measured by the ``joint-adv`` method of
:mod:`metaxfer.text.compare`.

References:
    Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016. Tzeng et al., "Simultaneous Deep
    Transfer Across Domains and Tasks", ICCV 2015 (the confusion loss). Lample et al., "Unsupervised Machine
    Translation Using Monolingual Corpora Only", ICLR 2018 (a language discriminator on encoder states).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metaxfer.text.optim import OptimizerSpec, init_optimizer_state, leaves, optimizer_update, parameters_of

__all__ = ["AdversaryConfig", "LanguageDiscriminator", "pool_states", "confusion_loss", "LanguageAdversary"]


@dataclass(frozen=True)
class AdversaryConfig:
    """Settings of the language adversary.

    Attributes:
        weight: λ, the weight of the encoder's confusion term in the total loss.
        hidden: Hidden width of the discriminator.
        optimizer: The discriminator's optimiser.
        d_steps: Discriminator updates per training step.
        warmup: Steps during which only D trains (the confusion term is off), so the encoder first learns to
            translate.
    """

    weight: float = 0.1
    hidden: int = 128
    optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(kind="adam", lr=1e-3))
    d_steps: int = 1
    warmup: int = 0


class LanguageDiscriminator(nn.Module):
    """Two-layer MLP: pooled encoder state (B, D) → language logits (B, L)."""

    def __init__(self, *, d_model: int, n_languages: int, hidden: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, n_languages)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(pooled)))


def pool_states(memory: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of the encoder states over the real tokens after the language tag.

    Shape:
        memory (B, S, D), keep (B, S) bool → (B, D).
    """
    mask = keep.clone()
    mask[:, 0] = False
    w = mask.to(memory.dtype).unsqueeze(-1)
    return (memory * w).sum(1) / w.sum(1).clamp(min=1.0)


def confusion_loss(logits: torch.Tensor) -> torch.Tensor:
    """``KL(uniform ‖ softmax(logits))`` averaged over rows: 0 exactly when every language looks equally likely."""
    n = logits.shape[-1]
    return (-logits.log_softmax(-1).mean(-1) - math.log(n)).mean()


class LanguageAdversary:
    """The discriminator, its parameters and optimiser state, and the alternating update.

    Args:
        config: Settings.
        d_model: Width of the encoder states.
        n_languages: Number of language classes (the tokenizer's languages; labels are ``TranslationBatch.lang``).
        seed: Seed of the discriminator's initialisation.
    """

    def __init__(self, config: AdversaryConfig, *, d_model: int, n_languages: int, seed: int = 0) -> None:
        self.config = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.disc = LanguageDiscriminator(d_model=d_model, n_languages=n_languages, hidden=config.hidden)
        self.params = parameters_of(self.disc)
        self.opt_state = init_optimizer_state(config.optimizer, self.params)

    def step(self, memory: torch.Tensor, keep: torch.Tensor, labels: torch.Tensor, *,
             iteration: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Update D on detached states, then return the encoder's weighted confusion term.

        Args:
            memory: Encoder states (B, S, D), still attached to the encoder's graph.
            keep: Source mask (B, S).
            labels: Target-language index of each row (B,).
            iteration: The training step (for the warm-up).

        Returns:
            ``(λ · L_adv, {"d_loss", "d_acc", "adv_loss"})``; the term is differentiable w.r.t. ``memory`` only
            (0 during the warm-up).
        """
        pooled = pool_states(memory, keep)
        labels = labels.to(pooled.device)
        d_loss = torch.zeros(())
        d_acc = 0.0
        for _ in range(self.config.d_steps):
            leaf = leaves(self.params)
            logits = functional_call(self.disc, leaf, (pooled.detach(),))
            d_loss = F.cross_entropy(logits, labels)
            d_acc = float((logits.argmax(-1) == labels).float().mean())
            grads = torch.autograd.grad(d_loss, list(leaf.values()))
            self.params, self.opt_state, _ = optimizer_update(self.config.optimizer, self.params,
                                                              dict(zip(leaf, grads)), self.opt_state)
        frozen = {k: v.detach() for k, v in self.params.items()}
        adv = confusion_loss(functional_call(self.disc, frozen, (pooled,)))
        weight = self.config.weight if iteration >= self.config.warmup else 0.0
        return weight * adv, {"d_loss": float(d_loss.detach()), "d_acc": d_acc, "adv_loss": float(adv.detach())}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``params.*`` and ``opt.*`` tensors."""
        return {**{f"params.{k}": v for k, v in self.params.items()},
                **{f"opt.{k}": v for k, v in self.opt_state.items()}}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`."""
        self.params = {k[7:]: v for k, v in state.items() if k.startswith("params.")}
        self.opt_state = {k[4:]: v for k, v in state.items() if k.startswith("opt.")}

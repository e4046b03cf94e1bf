"""``translation``: cross-lingual initialisation of a small translation model, trained through the engine.

The ``translation:`` config section picks the initialisation (``init``: ``joint`` multilingual training, optionally
with the adversarial language discriminator, or ``fomaml`` / ``reptile`` meta-learning over language pairs), the
language split, the model size and the algorithm's settings. The method wraps :class:`metaxfer.text.JointTrainer` /
:class:`metaxfer.text.MetaTrainer`: their functional optimiser state, sampler generator and discriminator go into the
engine's checkpoints (so a run resumes exactly), and the parameters live in the ``model`` module.

Evaluation (the headline ``eval/chrf``): for each validation language, fine-tune the current parameters on
``eval_k`` pairs of its support pool for ``eval_steps`` steps, translate its first ``eval_pairs`` held-out phrases and
score them; the same draw every time, so evaluations are comparable across steps. The validation languages never
train the initialisation; the test languages are loaded only to keep the phrase split identical to
:func:`metaxfer.text.compare.run_comparison`'s and are not touched here (``metaxfer translate`` and
``benchmarks/translation_results.py`` use them).

With several processes (``torchrun``, :mod:`metaxfer.engine.distributed`) each process trains on its share of
``batch_size`` pairs (joint) or ``meta_batch`` tasks (``fomaml`` / ``reptile``), drawn from a stream of its own
(``Distributed.rank_stream``: the shared sampler state stays equal on every process, so rank 0's checkpoint resumes on
any number of processes), then the processes average their parameters and optimiser states, weighted by their
shares. The trainers update their parameters themselves, so this averages after the step instead of all-reducing
gradients before it: for SGD (Reptile's recipe) that is the same update as one process with the whole batch; for
Adam it averages the per-process updates (and moments), a close variant.

The engine's ``train.lr`` is the learning rate of the joint optimiser (``init: joint``) or of the outer optimiser
(``fomaml`` / ``reptile``), and ``train.grad_clip`` (0: off) clips its gradient norm. The engine's learning-rate
schedules and ``train.amp`` do not apply: the optimisers are the functional ones of :mod:`metaxfer.text.optim`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metaxfer.engine.checkpoint import load_checkpoint, resolve_checkpoint
from metaxfer.engine.config import ExperimentConfig, config_to_dict, load_config, option
from metaxfer.engine.methods import Method, Step, StepOutput, register_method
from metaxfer.engine.runs import Run
from metaxfer.errors import MetaxferError
from metaxfer.text.adapt import JointTrainer, MetaConfig, MetaTrainer, fine_tune
from metaxfer.text.adversary import AdversaryConfig
from metaxfer.text.compare import evaluate_pair
from metaxfer.text.corpora import load_corpora
from metaxfer.text.metrics import mean_ci
from metaxfer.text.optim import OptimizerSpec, Params, parameters_of
from metaxfer.text.sampling import PairSampler
from metaxfer.text.splits import LanguageSplit, TransferSplit, build_transfer_split, sample_pairs
from metaxfer.text.tokenizer import Tokenizer, filter_by_length
from metaxfer.text.transformer import Seq2SeqTransformer, expand_vocab

__all__ = ["TranslationConfig", "TranslationMethod", "TranslationModel", "load_translation_model",
           "load_translation_split"]

log = logging.getLogger(__name__)

_EVAL_SEED = 7919


@dataclass
class TranslationConfig:
    """The ``translation:`` section of the ``translation`` method."""

    init: str = option("joint", choices=("joint", "fomaml", "reptile"), help="how the initialisation is learnt")
    adversary: bool = option(False, help="joint only: add the adversarial language discriminator")
    adversary_weight: float = option(0.1, ge=0.0, help="λ of the discriminator's confusion loss")
    train_languages: list[str] = option(
        default_factory=lambda: ["fr", "es", "it", "pt", "ca", "ro", "nl", "sv", "da", "pl", "cs", "ru", "uk", "bg",
                                 "el"], help="meta-training target languages (CLDR codes)")
    val_languages: list[str] = option(default_factory=lambda: ["nb", "sk"],
                                      help="validation languages (eval/chrf), never trained on")
    test_languages: list[str] = option(default_factory=lambda: ["de", "sl", "hr", "hy", "ka"],
                                       help="unseen test languages, held out")
    sources: list[str] = option(default_factory=lambda: ["cldr"], help="corpus sources (CORPUS_SOURCES)")
    d_model: int = option(64, ge=8, help="model width")
    heads: int = option(4, ge=1, help="attention heads")
    encoder_layers: int = option(2, ge=1, help="encoder blocks")
    decoder_layers: int = option(2, ge=1, help="decoder blocks")
    ff_dim: int = option(256, ge=8, help="feed-forward width")
    dropout: float = option(0.0, ge=0.0, lt=1.0, help="dropout")
    max_len: int = option(40, ge=8, help="longest sequence in tokens (longer pairs are left out)")
    batch_size: int = option(32, ge=1, help="joint: pairs per step")
    label_smoothing: float = option(0.1, ge=0.0, lt=1.0, help="label smoothing of every loss")
    outer_optimizer: str = option("adam", choices=("adam", "sgd"),
                                  help="optimiser of joint training or of the meta-learner's outer loop")
    inner_steps: int = option(1, ge=1, help="fomaml / reptile: inner steps per task")
    inner_lr: float = option(1e-3, gt=0.0, help="fomaml / reptile: inner Adam learning rate (β₁ = 0)")
    support_size: int = option(16, ge=1, help="fomaml / reptile: pairs per inner batch")
    query_size: int = option(16, ge=1, help="fomaml: pairs per query batch")
    meta_batch: int = option(4, ge=1, help="fomaml / reptile: tasks (language pairs) per outer step")
    eval_k: int = option(16, ge=1, help="validation: adaptation pairs per language")
    eval_steps: int = option(25, ge=1, help="validation: fine-tuning steps")
    eval_lr: float = option(1e-3, gt=0.0, help="validation: fine-tuning Adam learning rate")
    eval_pairs: int = option(40, ge=1, help="validation: held-out phrases scored per language")
    beam_size: int = option(1, ge=1, help="validation: 1 for greedy decoding")


def load_translation_split(tc: TranslationConfig, *, seed: int) -> tuple[TransferSplit, Tokenizer]:
    """Load the corpora of the section's languages, leave out pairs longer than ``max_len`` and split them.

    Args:
        tc: The ``translation:`` section.
        seed: Salt of the phrase split (``data.split_seed``).

    Returns:
        The checked split and the byte tokenizer of the meta-training languages.

    Raises:
        UnknownNameError: An unknown language code or corpus source.
        LeakageError: The split leaks (should not happen; it is checked).
    """
    languages = LanguageSplit.of(train=tc.train_languages, val=tc.val_languages, test=tc.test_languages)
    tokenizer = Tokenizer(languages=list(languages.train))
    probe = tokenizer.add_languages(languages.val + languages.test)
    corpora = load_corpora(languages.train + languages.val + languages.test, sources=tuple(tc.sources))
    corpora = {x: filter_by_length(c, probe, max_len=tc.max_len) for x, c in corpora.items()}
    return build_transfer_split(corpora, languages, seed=seed), tokenizer


@register_method("translation")
class TranslationMethod(Method):
    """Joint, FO-MAML or Reptile initialisation of a :class:`~metaxfer.text.Seq2SeqTransformer` over English → X
    pairs.

    Metrics: ``train/loss`` (joint: the batch loss; meta: the query loss after adaptation), ``train/token_acc`` or
    ``train/support_loss`` / ``train/query_loss``, ``train/grad_norm``; ``eval/chrf`` (the headline), ``eval/bleu``,
    ``eval/exact`` and ``eval/chrf_<lang>`` on the validation languages after fine-tuning.
    """

    section = "translation"
    Config = TranslationConfig
    headline = ("eval/chrf", "max")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        tc: TranslationConfig = self.method_cfg
        if cfg.train.schedule != "constant" or cfg.train.warmup_steps:
            log.warning("translation: train.schedule and train.warmup_steps do not apply (the functional optimisers "
                        "use a constant learning rate, train.lr)")
        self.split, self.tokenizer = load_translation_split(tc, seed=cfg.data.split_seed)
        self.full_tokenizer = self.tokenizer.add_languages(self.split.languages.val)
        model_args = dict(d_model=tc.d_model, heads=tc.heads, encoder_layers=tc.encoder_layers,
                          decoder_layers=tc.decoder_layers, ff_dim=tc.ff_dim, dropout=tc.dropout, max_len=tc.max_len)
        model = Seq2SeqTransformer(vocab_size=self.tokenizer.vocab_size, **model_args).to(device)
        self.eval_model = Seq2SeqTransformer(vocab_size=self.full_tokenizer.vocab_size, **model_args).to(device)
        self.sampler = PairSampler(self.tokenizer, list(self.split.meta_train().values()), max_len=tc.max_len,
                                   seed=cfg.seed, device=device)
        outer = OptimizerSpec(kind=tc.outer_optimizer, lr=cfg.train.lr,  # type: ignore[arg-type]
                              clip_norm=cfg.train.grad_clip or None, weight_decay=cfg.train.weight_decay)
        self.trainer: JointTrainer | MetaTrainer
        shard = (self.dist.shard(tc.batch_size, what="translation.batch_size") if tc.init == "joint"
                 else self.dist.shard(tc.meta_batch, what="translation.meta_batch"))
        self._share = shard.share
        if tc.init == "joint":
            adversary = AdversaryConfig(weight=tc.adversary_weight) if tc.adversary else None
            self.trainer = JointTrainer(model, self.sampler, optimizer=outer, batch_size=shard.size,
                                        label_smoothing=tc.label_smoothing, adversary=adversary)
        else:
            if tc.adversary:
                log.warning("translation.adversary applies to init=joint only; ignored for %s", tc.init)
            self.trainer = MetaTrainer(model, self.sampler, config=MetaConfig(
                algorithm=tc.init, inner_steps=tc.inner_steps,  # type: ignore[arg-type]
                inner=OptimizerSpec(kind="adam", lr=tc.inner_lr, betas=(0.0, 0.98)), outer=outer,
                support_size=tc.support_size, query_size=tc.query_size, meta_batch=shard.size,
                label_smoothing=tc.label_smoothing))
        self.modules = {"model": model}
        self.optimizers = {}
        log.info("translation (%s): %s", tc.init, self.split.languages.describe())

    # ------------------------------------------------------------------------------------------------- training
    def steps(self) -> list[Step]:
        return [Step("train", self.train_step)]

    def train_step(self, iteration: int) -> StepOutput:
        """One trainer step; the new parameters are copied into the ``model`` module (what checkpoints hold).

        With several processes: each steps on its own slice, then the parameters and optimiser states are averaged.
        """
        with self.dist.rank_stream(self.sampler.generator):
            metrics = self.trainer.step()
        if self.dist.enabled:
            state = self.trainer.state_dict()
            floats = [state[k] for k in sorted(state) if k.startswith(("params.", "opt.", "adversary."))]
            self.dist.average_(floats, self._share, what="the average of the translation model over the processes")
            self.trainer.load_state_dict(state)
        self._sync_module()
        return StepOutput(None, {k: float(v) for k, v in metrics.items()}, share=self._share)

    def _sync_module(self) -> None:
        with torch.no_grad():
            for name, p in self.modules["model"].named_parameters():
                p.copy_(self.trainer.params[name])

    # ----------------------------------------------------------------------------------------------- evaluation
    def adapted_init(self) -> Params:
        """The current parameters with tags for the validation languages (the mean of the training tags)."""
        return expand_vocab(parameters_of(self.modules["model"]), new_size=self.full_tokenizer.vocab_size,
                            init_from=self.tokenizer.tag_ids())

    def evaluate(self) -> dict[str, float]:
        tc: TranslationConfig = self.method_cfg
        langs = list(self.split.languages.val)
        if not langs:
            return {}
        init = self.adapted_init()
        per_lang: dict[str, dict[str, float]] = {}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for i, lang in enumerate(langs):
                gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + _EVAL_SEED * (i + 1))
                pool = self.split.support_pool(lang)
                support = sample_pairs(pool, min(tc.eval_k, len(pool)), generator=gen)
                held_out = self.split.evaluation(lang)
                held_out = held_out.subset(range(min(tc.eval_pairs, len(held_out))))
                params, _ = fine_tune(self.eval_model, init, self.full_tokenizer, support, steps=tc.eval_steps,
                                      optimizer=OptimizerSpec(kind="adam", lr=tc.eval_lr), batch_size=32,
                                      label_smoothing=tc.label_smoothing, seed=self.cfg.seed)
                per_lang[lang] = evaluate_pair(self.eval_model, self.full_tokenizer, params, held_out,
                                               beam_size=tc.beam_size)
        out = {m: mean_ci([s[m] for s in per_lang.values()]).mean for m in ("chrf", "bleu", "exact")}
        out.update({f"chrf_{x}": s["chrf"] for x, s in per_lang.items()})
        return out

    # ---------------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The trainer's state except the parameters (those are the ``model`` module's), plus the tokenizer and the
        model's constructor arguments as plain data (what ``metaxfer translate`` rebuilds the model from)."""
        trainer = {k: v for k, v in self.trainer.state_dict().items() if not k.startswith("params.")}
        return {"trainer": trainer, "tokenizer": self.tokenizer.state_dict(),
                "model_config": dict(self.modules["model"].config)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        params = {f"params.{k}": v.detach().clone() for k, v in self.modules["model"].named_parameters()}
        trainer = {k: v.to(self.device) if k.startswith("opt.") else v for k, v in state["trainer"].items()}
        self.trainer.load_state_dict({**params, **trainer})
        if Tokenizer.from_state_dict(state["tokenizer"]) != self.tokenizer:
            raise MetaxferError("the checkpoint's tokenizer differs from the one this config builds: the corpora or "
                                "translation.train_languages changed since the run started; start a new run")


# ------------------------------------------------------------------------------------------- trained models
@dataclass
class TranslationModel:
    """A trained ``translation`` run, ready to adapt to a new pair.

    Attributes:
        model: The architecture (its weights are not used; ``params`` are).
        params: The checkpoint's parameters.
        tokenizer: The run's tokenizer (tags of the meta-training languages).
        config: The run's resolved config.
        checkpoint: The checkpoint folder loaded.
        step: Its training step.
    """

    model: Seq2SeqTransformer
    params: Params
    tokenizer: Tokenizer
    config: ExperimentConfig
    checkpoint: Path
    step: int

    def with_language(self, lang: str) -> tuple[Seq2SeqTransformer, Params, Tokenizer]:
        """Model, parameters and tokenizer that have a tag for ``lang``: the run's own when it was a meta-training
        language, else with a new tag initialised as the mean of the meta-training tags."""
        if lang in self.tokenizer.languages:
            return self.model, dict(self.params), self.tokenizer
        full = self.tokenizer.add_languages([lang])
        params = expand_vocab(self.params, new_size=full.vocab_size, init_from=self.tokenizer.tag_ids())
        model = Seq2SeqTransformer.from_config({**self.model.config, "vocab_size": full.vocab_size})
        return model.to(next(iter(params.values())).device), params, full


def load_translation_model(run_dir: str | Path, *, checkpoint: str = "best",
                           device: str | torch.device = "cpu") -> TranslationModel:
    """Load a ``translation`` run's checkpoint (no corpus is read).

    Args:
        run_dir: The run folder of ``metaxfer train configs/translation-*.yaml``.
        checkpoint: ``"best"`` (highest validation chrF; the newest when none is marked), ``"last"``, or a
            checkpoint folder.
        device: Where the parameters go.

    Returns:
        The loaded model.

    Raises:
        RunError: ``run_dir`` is not a run folder.
        CheckpointError: The run has no checkpoint, or it belongs to another config.
        MetaxferError: The run is not a ``translation`` run.
    """
    run = Run.open(run_dir)
    cfg = load_config(run.config_path)
    if cfg.method != "translation":
        raise MetaxferError(f"{run_dir} is a {cfg.method!r} run; metaxfer translate needs a run of "
                            f"configs/translation-*.yaml (method: translation)")
    path, _ = resolve_checkpoint(run.checkpoints, checkpoint)
    ckpt = load_checkpoint(path, config=config_to_dict(cfg))
    method_state = ckpt.state["method"]
    model = Seq2SeqTransformer.from_config(dict(method_state["model_config"])).to(device)
    params = {k: v.to(device) for k, v in ckpt.state["modules"]["model"].items()}
    return TranslationModel(model=model, params=params, tokenizer=Tokenizer.from_state_dict(method_state["tokenizer"]),
                            config=cfg, checkpoint=path, step=ckpt.step)

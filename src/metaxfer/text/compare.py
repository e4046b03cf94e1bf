"""The transfer experiment: initialise on the meta-training pairs, adapt to each unseen pair from K examples, and
compare methods on the same pairs with confidence intervals.

Methods (:data:`INITIALIZERS`):

=============  ====================================================================================================
``scratch``    a fresh random initialisation, fine-tuned on the K pairs
``joint``      multilingual joint training on the meta-training pairs, then fine-tuning
``joint-adv``  the same with the adversarial language discriminator on the encoder states
``fomaml``     first-order MAML over language pairs, then fine-tuning
``reptile``    Reptile over language pairs, then fine-tuning
=============  ====================================================================================================

Protocol. The initialisations see the same number of training pairs (``pretrain_pairs``: a Reptile step with 4
tasks × 5 inner steps × 32 pairs counts 640). Test languages get a new tag token, initialised as the mean of the
meta-training tags. For every method and K, the number of fine-tuning steps is chosen among ``finetune_steps`` by the
mean chrF on the validation languages (with one candidate, or no validation language, it is simply used); the test
pairs are then adapted with that many steps and scored once. Every
method adapts from the *same* K pairs of a test language (one draw per seed), so methods can be compared pair by pair
(:func:`~metaxfer.text.metrics.paired_difference`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from metaxfer.errors import MetaxferError
from metaxfer.registry import Registry
from metaxfer.text.adapt import JointTrainer, MetaConfig, MetaTrainer, fine_tune
from metaxfer.text.adversary import AdversaryConfig
from metaxfer.text.corpora import ParallelCorpus, load_corpora
from metaxfer.text.decoding import translate
from metaxfer.text.metrics import MeanCI, mean_ci, paired_difference, score_all
from metaxfer.text.optim import OptimizerSpec, Params, parameters_of
from metaxfer.text.sampling import PairSampler
from metaxfer.text.splits import LanguageSplit, TransferSplit, build_transfer_split, sample_pairs
from metaxfer.text.tokenizer import Tokenizer, filter_by_length
from metaxfer.text.transformer import Seq2SeqTransformer, expand_vocab

__all__ = [
    "ComparisonConfig",
    "ComparisonResult",
    "INITIALIZERS",
    "Initializer",
    "evaluate_pair",
    "prepare_split",
    "run_comparison",
]

log = logging.getLogger(__name__)


@dataclass
class ComparisonConfig:
    """Settings of one comparison (see the module docstring).

    Attributes:
        train_languages: Meta-training target languages.
        val_languages: Validation languages (fine-tuning length is chosen on them).
        test_languages: Unseen test languages.
        sources: Corpus sources (:data:`~metaxfer.text.packaged.CORPUS_SOURCES`).
        methods: Methods to compare (:data:`INITIALIZERS`).
        ks: Numbers of adaptation pairs.
        draws: K-pair draws per test language (each is scored; pair means average them).
        model: Keyword arguments of :class:`~metaxfer.text.transformer.Seq2SeqTransformer` (``vocab_size`` is set).
        pretrain_pairs: Training pairs every initialisation may process.
        joint_batch: Batch size of joint training.
        joint_optimizer: Optimiser of joint training.
        adversary: The discriminator of ``joint-adv``.
        fomaml: Settings of ``fomaml``.
        reptile: Settings of ``reptile``.
        finetune_optimizer: Optimiser of fine-tuning (all methods).
        finetune_steps: Candidate fine-tuning lengths, chosen per method and K on the validation languages.
        finetune_batch: Batch size of fine-tuning when K is larger.
        eval_pairs: Most pairs scored per language (the first ones of its evaluation split).
        beam_size: 1 for greedy decoding.
        phrase_fractions: Train / val / test shares of each pair's phrases.
        seed: Seed of everything.
    """

    train_languages: Sequence[str] = ("fr", "es", "it", "pt", "ca", "ro", "nl", "sv", "da", "pl", "cs", "ru", "uk",
                                      "bg", "tr", "hu", "fi", "el")
    val_languages: Sequence[str] = ("nb", "sk")
    test_languages: Sequence[str] = ("de", "sl", "hr", "hy", "ka", "he")
    sources: Sequence[str] = ("cldr",)
    methods: Sequence[str] = ("scratch", "joint", "joint-adv", "fomaml", "reptile")
    ks: Sequence[int] = (16, 64, 256)
    draws: int = 1
    model: dict[str, Any] = field(default_factory=lambda: dict(d_model=128, heads=4, encoder_layers=2,
                                                               decoder_layers=2, ff_dim=512, dropout=0.0, max_len=48))
    pretrain_pairs: int = 200_000
    joint_batch: int = 64
    joint_optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(kind="adam", lr=1e-3))
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)
    fomaml: MetaConfig = field(default_factory=lambda: MetaConfig(algorithm="fomaml"))
    reptile: MetaConfig = field(default_factory=lambda: MetaConfig(
        algorithm="reptile", inner_steps=5, inner=OptimizerSpec(kind="adam", lr=1e-3, betas=(0.0, 0.98)),
        outer=OptimizerSpec(kind="sgd", lr=0.5, clip_norm=None)))
    finetune_optimizer: OptimizerSpec = field(default_factory=lambda: OptimizerSpec(kind="adam", lr=1e-3))
    finetune_steps: Sequence[int] = (25, 50, 100, 200)
    finetune_batch: int = 32
    eval_pairs: int = 200
    beam_size: int = 1
    phrase_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 0


#: An initialiser: ``fn(model, sampler, config, progress) -> params``; ``model`` is freshly initialised with the
#: meta-training vocabulary, ``progress(step, metrics)`` is called as it trains.
Initializer = Callable[[Seq2SeqTransformer, PairSampler, ComparisonConfig, Callable[[int, dict[str, float]], None]],
                       Params]
INITIALIZERS: Registry[Initializer] = Registry("transfer method")


def _run(trainer: JointTrainer | MetaTrainer, steps: int, progress: Callable[[int, dict[str, float]], None]) -> Params:
    for i in range(steps):
        progress(i, trainer.step())
    return trainer.params


@INITIALIZERS.register("scratch")
def _scratch(model: Seq2SeqTransformer, sampler: PairSampler, cfg: ComparisonConfig, progress: Any) -> Params:
    return parameters_of(model)


@INITIALIZERS.register("joint")
def _joint(model: Seq2SeqTransformer, sampler: PairSampler, cfg: ComparisonConfig, progress: Any) -> Params:
    trainer = JointTrainer(model, sampler, optimizer=cfg.joint_optimizer, batch_size=cfg.joint_batch)
    return _run(trainer, max(1, cfg.pretrain_pairs // cfg.joint_batch), progress)


@INITIALIZERS.register("joint-adv")
def _joint_adv(model: Seq2SeqTransformer, sampler: PairSampler, cfg: ComparisonConfig, progress: Any) -> Params:
    trainer = JointTrainer(model, sampler, optimizer=cfg.joint_optimizer, batch_size=cfg.joint_batch,
                           adversary=cfg.adversary)
    return _run(trainer, max(1, cfg.pretrain_pairs // cfg.joint_batch), progress)


def _meta_pairs_per_step(m: MetaConfig) -> int:
    if m.algorithm == "fomaml":
        return m.meta_batch * (m.inner_steps * m.support_size + m.query_size)
    return m.meta_batch * m.inner_steps * m.support_size


@INITIALIZERS.register("fomaml")
def _fomaml(model: Seq2SeqTransformer, sampler: PairSampler, cfg: ComparisonConfig, progress: Any) -> Params:
    trainer = MetaTrainer(model, sampler, config=cfg.fomaml)
    return _run(trainer, max(1, cfg.pretrain_pairs // _meta_pairs_per_step(cfg.fomaml)), progress)


@INITIALIZERS.register("reptile")
def _reptile(model: Seq2SeqTransformer, sampler: PairSampler, cfg: ComparisonConfig, progress: Any) -> Params:
    trainer = MetaTrainer(model, sampler, config=cfg.reptile)
    return _run(trainer, max(1, cfg.pretrain_pairs // _meta_pairs_per_step(cfg.reptile)), progress)


def evaluate_pair(model: Seq2SeqTransformer, tokenizer: Tokenizer, params: Params, corpus: ParallelCorpus, *,
                  beam_size: int = 1) -> dict[str, float]:
    """Translate the sources of ``corpus`` with ``params`` and score them: ``{"chrf", "bleu", "exact"}``."""
    hyps = translate(model, tokenizer, corpus.sources, corpus.tgt_lang, beam_size=beam_size, params=params)
    return score_all(hyps, corpus.targets, corpus.tgt_lang)


@dataclass
class ComparisonResult:
    """Scores of a comparison.

    Attributes:
        config: The settings (as plain data).
        languages: The language split, described.
        scores: ``scores[method][k][lang]`` → ``{"chrf", "bleu", "exact"}`` on the test languages (mean over draws).
        chosen_steps: ``chosen_steps[method][k]``: the fine-tuning length picked on the validation languages.
        validation: ``validation[method][k][steps]``: mean validation chrF of each candidate length.
        pretrain: ``pretrain[method]``: seconds and the last training metrics.
        seconds: Total wall time.
    """

    config: dict[str, Any]
    languages: str
    scores: dict[str, dict[int, dict[str, dict[str, float]]]]
    chosen_steps: dict[str, dict[int, int]]
    validation: dict[str, dict[int, dict[int, float]]]
    pretrain: dict[str, dict[str, Any]]
    seconds: float = 0.0

    def summary(self, method: str, k: int, metric: str = "chrf") -> MeanCI:
        """Mean over the test languages with a 95 % interval."""
        return mean_ci([s[metric] for s in self.scores[method][k].values()])

    def versus(self, method: str, baseline: str, k: int, metric: str = "chrf") -> MeanCI:
        """Paired difference ``method - baseline`` over the test languages."""
        langs = sorted(self.scores[method][k])
        return paired_difference([self.scores[method][k][x][metric] for x in langs],
                                 [self.scores[baseline][k][x][metric] for x in langs])

    def table(self, metrics: Sequence[str] = ("chrf", "bleu", "exact"), baseline: str = "scratch") -> str:
        """A plain-text table: one row per method and K, mean ± 95 % CI over the test languages, and the paired
        chrF difference to ``baseline``."""
        head = f"{'method':<10} {'K':>4} {'steps':>5} " + " ".join(f"{m:>13}" for m in metrics)
        head += f"  {'Δ chrF vs ' + baseline:>18}"
        lines = [head, "-" * len(head)]
        for method in self.scores:
            for k in self.scores[method]:
                cells = " ".join(f"{str(self.summary(method, k, m)):>13}" for m in metrics)
                delta = (str(self.versus(method, baseline, k)) if baseline in self.scores and method != baseline
                         else "")
                lines.append(f"{method:<10} {k:>4} {self.chosen_steps[method][k]:>5} {cells}  {delta:>18}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)


def prepare_split(cfg: ComparisonConfig) -> tuple[TransferSplit, Tokenizer]:
    """Load the corpora, split languages and phrases, and build the byte tokenizer of the meta-training languages
    (pairs too long for ``cfg.model["max_len"]`` are left out)."""
    languages = LanguageSplit.of(train=cfg.train_languages, val=cfg.val_languages, test=cfg.test_languages)
    tokenizer = Tokenizer(languages=list(languages.train))
    probe = tokenizer.add_languages(languages.val + languages.test)
    max_len = int(cfg.model.get("max_len", 64))
    corpora = load_corpora(languages.train + languages.val + languages.test, sources=tuple(cfg.sources))
    corpora = {x: filter_by_length(c, probe, max_len=max_len) for x, c in corpora.items()}
    split = build_transfer_split(corpora, languages, fractions=cfg.phrase_fractions, seed=cfg.seed)
    return split, tokenizer


def run_comparison(cfg: ComparisonConfig, *, report: Callable[[str], None] = log.info) -> ComparisonResult:
    """Run the whole comparison (see the module docstring).

    Args:
        cfg: Settings.
        report: Where progress lines go (``logging`` by default).

    Returns:
        The scores.

    Raises:
        UnknownNameError: An unknown method or language.
        MetaxferError: Training diverged.
    """
    start = time.time()
    methods = [m for m in cfg.methods if INITIALIZERS.get(m)]
    split, tokenizer = prepare_split(cfg)
    report(split.languages.describe())
    full = tokenizer.add_languages(split.languages.val + split.languages.test)
    train_tags = tokenizer.tag_ids()
    sampler_args = dict(max_len=int(cfg.model.get("max_len", 64)), seed=cfg.seed)
    model_args = {k: v for k, v in cfg.model.items() if k != "vocab_size"}
    adapt_model = Seq2SeqTransformer(vocab_size=full.vocab_size, **model_args)

    inits: dict[str, Params] = {}
    pretrain: dict[str, dict[str, Any]] = {}
    for method in methods:
        t0 = time.time()
        torch.manual_seed(cfg.seed)
        model = Seq2SeqTransformer(vocab_size=tokenizer.vocab_size, **model_args)
        sampler = PairSampler(tokenizer, list(split.meta_train().values()), **sampler_args)
        last: dict[str, float] = {}

        def progress(step: int, metrics: dict[str, float], _method: str = method) -> None:
            last.update(metrics)
            if step % 100 == 0:
                report(f"  {_method} step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))

        params = INITIALIZERS.get(method)(model, sampler, cfg, progress)
        inits[method] = expand_vocab(params, new_size=full.vocab_size, init_from=train_tags)
        pretrain[method] = {"seconds": round(time.time() - t0, 1), "last": dict(last)}
        report(f"{method}: initialised in {time.time() - t0:.0f}s")

    val_langs, test_langs = list(split.languages.val), list(split.languages.test)
    evaluation = {x: split.evaluation(x).subset(range(min(cfg.eval_pairs, len(split.evaluation(x)))))
                  for x in val_langs + test_langs}
    candidates = sorted(set(cfg.finetune_steps))

    def adapt_and_score(method: str, lang: str, k: int, steps: Sequence[int]) -> dict[int, dict[str, float]]:
        """Scores after each of ``steps`` fine-tuning steps, averaged over ``cfg.draws`` draws of K pairs."""
        out: dict[int, dict[str, float]] = {s: {} for s in steps}
        for draw in range(cfg.draws):
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + draw * 7919 + k)
            support = sample_pairs(split.support_pool(lang), k, generator=gen)

            def callback(step: int, params: Params) -> None:
                if step in out:
                    got = evaluate_pair(adapt_model, full, params, evaluation[lang], beam_size=cfg.beam_size)
                    for metric, value in got.items():
                        out[step][metric] = out[step].get(metric, 0.0) + value / cfg.draws

            fine_tune(adapt_model, inits[method], full, support, steps=max(steps), optimizer=cfg.finetune_optimizer,
                      batch_size=cfg.finetune_batch, seed=cfg.seed + draw, callback=callback)
        return out

    chosen: dict[str, dict[int, int]] = {m: {} for m in methods}
    validation: dict[str, dict[int, dict[int, float]]] = {m: {} for m in methods}
    scores: dict[str, dict[int, dict[str, dict[str, float]]]] = {m: {} for m in methods}
    for method in methods:
        for k in cfg.ks:
            if val_langs and len(candidates) > 1:
                runs = [adapt_and_score(method, x, k, candidates) for x in val_langs]
                validation[method][k] = {s: sum(r[s]["chrf"] for r in runs) / len(runs) for s in candidates}
                chosen[method][k] = max(candidates, key=validation[method][k].__getitem__)
            else:
                chosen[method][k] = candidates[-1]
            steps = chosen[method][k]
            scores[method][k] = {x: adapt_and_score(method, x, k, [steps])[steps] for x in test_langs}
            test_chrf = mean_ci([v["chrf"] for v in scores[method][k].values()])
            report(f"{method} K={k}: {steps} fine-tuning steps (validation chrF by steps: "
                   f"{ {s: round(v, 1) for s, v in validation[method].get(k, {}).items()} }), test chrF {test_chrf}")
    if not scores:
        raise MetaxferError("no method was run: give at least one of " + ", ".join(INITIALIZERS.names()))
    config = asdict(cfg)
    return ComparisonResult(config, split.languages.describe(), scores, chosen, validation, pretrain,
                            seconds=round(time.time() - start, 1))

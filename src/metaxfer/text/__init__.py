"""Cross-lingual transfer for translation: parallel corpora from installed packages or the user's files, language
and phrase splits without leakage, a small byte-level Transformer, and training from scratch, joint multilingual
training (optionally with an adversarial language discriminator), first-order MAML and Reptile over language pairs,
fine-tuning, and chrF / BLEU / exact-match scoring with confidence intervals. See ``docs/translation.md``.

Layers (each uses only those above it):

``scripts``      language codes (CLDR) and writing systems
``packaged``     English → X phrase sources shipped in packages (registry ``CORPUS_SOURCES``)
``corpora``      ParallelCorpus, cleaning rules, packaged and file loaders (TSV, Moses)
``splits``       language splits (seen / unseen scripts), phrase splits, leakage checks, K-pair draws
``tokenizer``    bytes (+ learnt characters) + language tags; TranslationBatch
``transformer``  Seq2SeqTransformer
``decoding``     greedy and beam search, translate()
``metrics``      chrF, BLEU, exact match; mean ± 95 % CI, paired differences
``optim``        functional Adam / SGD over parameter dictionaries
``sampling``     PairSampler
``adversary``    the language discriminator
``adapt``        adapt / adapt_tasks / fine_tune, JointTrainer, MetaTrainer
``compare``      the method comparison
"""

from metaxfer.text.adapt import (
    JointTrainer,
    MetaConfig,
    MetaTrainer,
    adapt,
    adapt_tasks,
    fine_tune,
    translation_loss,
)
from metaxfer.text.adversary import AdversaryConfig, LanguageAdversary, LanguageDiscriminator
from metaxfer.text.compare import INITIALIZERS, ComparisonConfig, ComparisonResult, run_comparison
from metaxfer.text.corpora import (
    ParallelCorpus,
    available_languages,
    load_corpora,
    load_corpus,
    read_moses,
    read_tsv,
    write_tsv,
)
from metaxfer.text.decoding import beam_search, greedy_decode, translate
from metaxfer.text.metrics import TEXT_METRICS, MeanCI, mean_ci, paired_difference, score_all
from metaxfer.text.optim import OptimizerSpec, parameters_of
from metaxfer.text.packaged import CORPUS_SOURCES
from metaxfer.text.sampling import PairSampler
from metaxfer.text.splits import (
    LanguageSplit,
    TransferSplit,
    build_transfer_split,
    check_no_leakage,
    sample_pairs,
    split_languages,
    split_phrases,
)
from metaxfer.text.tokenizer import Tokenizer, TranslationBatch, encode_pairs, filter_by_length
from metaxfer.text.transformer import Seq2SeqTransformer, expand_vocab

__all__ = [
    "AdversaryConfig",
    "CORPUS_SOURCES",
    "ComparisonConfig",
    "ComparisonResult",
    "INITIALIZERS",
    "JointTrainer",
    "LanguageAdversary",
    "LanguageDiscriminator",
    "LanguageSplit",
    "MeanCI",
    "MetaConfig",
    "MetaTrainer",
    "OptimizerSpec",
    "PairSampler",
    "ParallelCorpus",
    "Seq2SeqTransformer",
    "TEXT_METRICS",
    "Tokenizer",
    "TransferSplit",
    "TranslationBatch",
    "adapt",
    "adapt_tasks",
    "available_languages",
    "beam_search",
    "build_transfer_split",
    "check_no_leakage",
    "encode_pairs",
    "expand_vocab",
    "filter_by_length",
    "fine_tune",
    "greedy_decode",
    "load_corpora",
    "load_corpus",
    "mean_ci",
    "paired_difference",
    "parameters_of",
    "read_moses",
    "read_tsv",
    "run_comparison",
    "sample_pairs",
    "score_all",
    "split_languages",
    "split_phrases",
    "translate",
    "translation_loss",
    "write_tsv",
]

"""A small end-to-end cross-lingual transfer comparison: scratch vs joint vs FO-MAML vs Reptile (and, with
``--adversary``, joint training with the adversarial language discriminator) on unseen English → X pairs.

Sizes are cut so that the whole run takes under 10 minutes on 2 busy CPU cores; the full-size comparison uses
:class:`metaxfer.text.compare.ComparisonConfig`'s defaults.

    .venv/bin/python benchmarks/translation_quick.py [--pretrain-pairs 48000] [--ks 16 64] [--adversary]

Prints the language split, progress, then a table: per method and K, chrF / BLEU / exact match as mean ± 95 % CI
over the unseen test pairs, the paired chrF difference to training from scratch, and the paired differences to joint
training. Measured results are in docs/translation.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from metaxfer.text.adapt import MetaConfig
from metaxfer.text.compare import ComparisonConfig, run_comparison
from metaxfer.text.optim import OptimizerSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-pairs", type=int, default=16_000, help="training pairs per initialisation")
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--ff-dim", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=40)
    parser.add_argument("--eval-pairs", type=int, default=40)
    parser.add_argument("--steps", type=int, nargs="+", default=[50],
                        help="fine-tuning lengths; with several, each method and K picks one on the validation pairs")
    parser.add_argument("--adversary", action="store_true", help="also run joint-adv (the language discriminator)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the full result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("metaxfer.text.corpora").setLevel(logging.WARNING)
    methods = ["scratch", "joint", *(["joint-adv"] if args.adversary else []), "fomaml", "reptile"]
    cfg = ComparisonConfig(
        train_languages=("fr", "es", "it", "pt", "ca", "ro", "nl", "sv", "da", "pl", "cs", "ru", "uk", "bg", "el"),
        val_languages=("nb", "sk"),
        test_languages=("de", "sl", "hr", "hy", "ka"),
        methods=methods,
        ks=tuple(args.ks),
        model=dict(d_model=args.d_model, heads=4, encoder_layers=2, decoder_layers=2, ff_dim=args.ff_dim,
                   dropout=0.0, max_len=args.max_len),
        pretrain_pairs=args.pretrain_pairs,
        joint_batch=32,
        fomaml=MetaConfig(algorithm="fomaml", inner_steps=1, support_size=16, query_size=16, meta_batch=4,
                          inner=OptimizerSpec(kind="adam", lr=1e-3, betas=(0.0, 0.98)),
                          outer=OptimizerSpec(kind="adam", lr=2e-3)),
        reptile=MetaConfig(algorithm="reptile", inner_steps=3, support_size=16, meta_batch=4,
                           inner=OptimizerSpec(kind="adam", lr=2e-3, betas=(0.0, 0.98)),
                           outer=OptimizerSpec(kind="sgd", lr=1.0, clip_norm=None)),
        finetune_optimizer=OptimizerSpec(kind="adam", lr=1e-3),
        finetune_steps=tuple(args.steps),
        finetune_batch=32,
        eval_pairs=args.eval_pairs,
        seed=args.seed,
    )
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    start = time.time()
    result = run_comparison(cfg, report=print)
    print()
    print(result.table())
    print("\npaired Δ chrF vs joint (does meta-learning or the discriminator add to multilingual training?)")
    for method in result.scores:
        if method not in ("scratch", "joint"):
            print("  " + "   ".join(f"{method} - joint, K={k}: {result.versus(method, 'joint', k)}" for k in cfg.ks))
    print(f"\ntotal {time.time() - start:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=1, default=str))


if __name__ == "__main__":
    main()

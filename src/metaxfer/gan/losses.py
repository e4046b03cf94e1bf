"""Pure GAN loss functions: tensors in, a scalar tensor out, no state and no networks.

Every adversarial loss takes the discriminator's raw outputs (logits for the minimax, non-saturating and
least-squares objectives; unbounded critic scores for hinge and Wasserstein) of any shape — one score per image
``(N,)`` or a patch map ``(N, 1, h, w)`` — and averages over all elements. Each objective's formula is one line.

Example:
    >>> import torch
    >>> real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    >>> round(float(hinge_d_loss(real, fake)), 3)  # relu(1 - 2) + relu(1 - 1)
    0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "minimax_d_loss",
    "minimax_g_loss",
    "nonsaturating_g_loss",
    "least_squares_d_loss",
    "least_squares_g_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
    "auxiliary_class_loss",
    "cycle_consistency_loss",
    "identity_loss",
    "task_consistency_loss",
]


# ---------------------------------------------------------------------------------------------------- minimax family
def minimax_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss of the original GAN: ``-log D(x) - log(1 - D(G(z)))`` with ``D = sigmoid(logit)``.

    Computed stably as ``softplus(-real) + softplus(fake)``; also the discriminator loss of the non-saturating GAN.

    Args:
        real: Discriminator logits on real images.
        fake: Discriminator logits on generated images.

    Returns:
        Scalar tensor: the two means added.

    Shape:
        ``real`` and ``fake``: any shape (e.g. (N,) or (N, 1, h, w)); they need not match.

    References:
        I. Goodfellow et al. Generative Adversarial Nets. NeurIPS 2014.
    """
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Generator loss of the original minimax game: minimise ``log(1 - D(G(z)))`` = ``-softplus(fake)``.

    Its gradient vanishes when the discriminator confidently rejects the samples (early in training);
    :func:`nonsaturating_g_loss` is the usual fix.

    Args:
        fake: Discriminator logits on generated images.

    Returns:
        Scalar tensor (never positive).

    Shape:
        ``fake``: any shape.

    References:
        I. Goodfellow et al. Generative Adversarial Nets. NeurIPS 2014.
    """
    return -F.softplus(fake).mean()


def nonsaturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: minimise ``-log D(G(z))`` = ``softplus(-fake)``.

    Args:
        fake: Discriminator logits on generated images.

    Returns:
        Scalar tensor (never negative).

    Shape:
        ``fake``: any shape.

    References:
        I. Goodfellow et al. Generative Adversarial Nets. NeurIPS 2014 (section 3).
    """
    return F.softplus(-fake).mean()


# ---------------------------------------------------------------------------------------------------- least squares
def least_squares_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss with targets 1 (real) and 0 (fake): ``½(D(x) - 1)² + ½D(G(z))²``.

    Args:
        real: Discriminator outputs on real images (no sigmoid).
        fake: Discriminator outputs on generated images.

    Returns:
        Scalar tensor.

    Shape:
        ``real`` and ``fake``: any shape.

    References:
        X. Mao et al. Least Squares Generative Adversarial Networks. ICCV 2017 (the 0-1-1 coding).
    """
    return 0.5 * (real - 1).square().mean() + 0.5 * fake.square().mean()


def least_squares_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss: ``½(D(G(z)) - 1)²``.

    Args:
        fake: Discriminator outputs on generated images.

    Returns:
        Scalar tensor.

    Shape:
        ``fake``: any shape.

    References:
        X. Mao et al. Least Squares Generative Adversarial Networks. ICCV 2017.
    """
    return 0.5 * (fake - 1).square().mean()


# ---------------------------------------------------------------------------------------------------- hinge
def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss: ``relu(1 - D(x)) + relu(1 + D(G(z)))``.

    Args:
        real: Critic scores on real images.
        fake: Critic scores on generated images.

    Returns:
        Scalar tensor.

    Shape:
        ``real`` and ``fake``: any shape.

    References:
        J. H. Lim, J. C. Ye. Geometric GAN. 2017; T. Miyato et al. Spectral Normalization for GANs. ICLR 2018.
    """
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: ``-D(G(z))`` (the same as the Wasserstein generator loss).

    Args:
        fake: Critic scores on generated images.

    Returns:
        Scalar tensor.

    Shape:
        ``fake``: any shape.

    References:
        T. Miyato et al. Spectral Normalization for Generative Adversarial Networks. ICLR 2018.
    """
    return -fake.mean()


# ---------------------------------------------------------------------------------------------------- Wasserstein
def wasserstein_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``D(G(z)) - D(x)`` (the negated estimate of the Wasserstein-1 distance).

    Needs a Lipschitz constraint on the critic: add :func:`metaxfer.gan.utils.gradient_penalty` (WGAN-GP).

    Args:
        real: Critic scores on real images.
        fake: Critic scores on generated images.

    Returns:
        Scalar tensor.

    Shape:
        ``real`` and ``fake``: any shape.

    References:
        M. Arjovsky, S. Chintala, L. Bottou. Wasserstein GAN. ICML 2017; I. Gulrajani et al. Improved Training of
        Wasserstein GANs. NeurIPS 2017.
    """
    return fake.mean() - real.mean()


def wasserstein_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss: ``-D(G(z))``.

    Args:
        fake: Critic scores on generated images.

    Returns:
        Scalar tensor.

    Shape:
        ``fake``: any shape.

    References:
        M. Arjovsky, S. Chintala, L. Bottou. Wasserstein GAN. ICML 2017.
    """
    return -fake.mean()


# ---------------------------------------------------------------------------------------------------- auxiliary terms
def auxiliary_class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The auxiliary-classifier (AC-GAN) term: cross-entropy of the discriminator's class head.

    Args:
        class_logits: Class logits from the discriminator's auxiliary head.
        labels: The true (real images) or requested (generated images) classes.

    Returns:
        Scalar tensor: mean cross-entropy.

    Shape:
        ``class_logits``: (N, num_classes); ``labels``: (N,) int64.

    References:
        A. Odena, C. Olah, J. Shlens. Conditional Image Synthesis with Auxiliary Classifier GANs. ICML 2017.
    """
    return F.cross_entropy(class_logits, labels)


def cycle_consistency_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency loss ``|F(G(x)) - x|₁`` (mean absolute error).

    Args:
        reconstructed: The image after a round trip through both translators.
        real: The original image.

    Returns:
        Scalar tensor; zero exactly when the round trip gives back the input.

    Shape:
        Both (N, C, H, W).

    References:
        J.-Y. Zhu et al. Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks. ICCV 2017.
    """
    return F.l1_loss(reconstructed, real)


def identity_loss(mapped: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Identity-mapping loss ``|G(y) - y|₁``: a translator fed an image already in its output domain should keep it.

    Args:
        mapped: The translator applied to images of its own output domain.
        real: Those images.

    Returns:
        Scalar tensor (mean absolute error).

    Shape:
        Both (N, C, H, W).

    References:
        J.-Y. Zhu et al. ICCV 2017 (section 5.2), after Y. Taigman et al. Unsupervised Cross-Domain Image
        Generation. ICLR 2017.
    """
    return F.l1_loss(mapped, real)


def task_consistency_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CyCADA's semantic (task) consistency term: a fixed classifier should give a translated image its label.

    ``class_logits`` are the fixed source classifier's outputs on the translated images; ``labels`` are the true
    labels of the untranslated images when known, otherwise the classifier's own predictions on them.

    Args:
        class_logits: Logits of the frozen task classifier on translated images.
        labels: The classes the translation must keep.

    Returns:
        Scalar tensor: mean cross-entropy.

    Shape:
        ``class_logits``: (N, num_classes); ``labels``: (N,) int64.

    References:
        J. Hoffman et al. CyCADA: Cycle-Consistent Adversarial Domain Adaptation. ICML 2018 (semantic loss).
    """
    return F.cross_entropy(class_logits, labels)

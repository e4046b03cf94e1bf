"""``classifier``: a small CNN trained with cross-entropy on one domain's train split, evaluated on its test split.

The smallest complete method: it is the tiny recipe (``configs/tiny.yaml``) that checks the engine end to end, and a
plain supervised baseline for transfer experiments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metaxfer.data.domain import Domain, create_domain
from metaxfer.engine.config import ExperimentConfig, option
from metaxfer.engine.methods import Method, Step, StepOutput, register_method
from metaxfer.engine.optim import optimizer_for
from metaxfer.errors import MetaxferError

__all__ = ["ClassifierConfig", "SmallCNN", "EpochSampler", "stratified_split", "Classifier"]

log = logging.getLogger(__name__)


@dataclass
class ClassifierConfig:
    """The ``model:`` section of the ``classifier`` method."""

    width: int = option(16, ge=1, help="channels of the first block (doubled in each further block)")
    blocks: int = option(2, ge=1, le=4, help="conv-batchnorm-relu-maxpool blocks")
    dropout: float = option(0.0, ge=0.0, lt=1.0, help="dropout before the linear head")
    eval_batch_size: int = option(512, ge=1, help="examples per evaluation batch")
    sample_classes: int = option(8, ge=1, help="rows (predicted classes) in the sample picture")


class SmallCNN(nn.Module):
    """``blocks`` × (3×3 conv, batch norm, ReLU, 2×2 max-pool), a 4×4 adaptive average pool and a linear head.

    Args:
        in_channels: Image channels.
        num_classes: Outputs.
        width: Channels of the first block, doubled per block.
        blocks: Number of blocks.
        dropout: Dropout probability before the head.

    Shape:
        - Input: (N, in_channels, H, W), float.
        - Output: (N, num_classes) logits.
    """

    def __init__(self, *, in_channels: int, num_classes: int, width: int = 16, blocks: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for b in range(blocks):
            out = width * 2**b
            layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c * 16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def stratified_split(labels: torch.Tensor, *, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split example indices into train and test, taking ``test_fraction`` of every class (at least one from each
    class with two or more examples).

    Args:
        labels: int64 (N,).
        test_fraction: Share of each class put in the test split.
        seed: Seed of the shuffle.

    Returns:
        ``(train_indices, test_indices)``, each sorted.
    """
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(test_fraction * len(idx)))
        k = min(max(k, 1 if len(idx) >= 2 else 0), len(idx) - 1) if len(idx) else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


class EpochSampler:
    """Batches of indices in a new random order each epoch, from a seeded generator; resumable mid-epoch.

    Args:
        n: Number of examples.
        batch_size: Indices per batch (the last, short batch of an epoch is dropped; a batch is never larger
            than ``n``).
        generator: Source of the permutations; its state is checkpointed by the engine.
    """

    def __init__(self, n: int, *, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, min(batch_size, n), generator
        self.perm: torch.Tensor | None = None
        self.position = 0
        self.epoch = 0

    def next(self) -> torch.Tensor:
        """The next batch of indices, shape (batch_size,)."""
        if self.perm is None or self.position + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.position = 0
            self.epoch += 1
        batch = self.perm[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self.perm, "position": self.position, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perm, self.position, self.epoch = state["perm"], int(state["position"]), int(state["epoch"])


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(127.5).sub_(1.0)


@register_method("classifier")
class Classifier(Method):
    """Supervised classification of one domain with :class:`SmallCNN`.

    Metrics: ``train/loss``, ``train/acc``; ``eval/loss``, ``eval/acc`` on the held-out split (the headline).
    Samples: one row per predicted class, showing test images the network puts in that class.
    """

    section = "model"
    Config = ClassifierConfig
    headline = ("eval/acc", "max")

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        super().__init__(cfg, device=device)
        mc: ClassifierConfig = self.method_cfg
        domain = create_domain(cfg.data.domain, **cfg.data.options)
        train_idx, test_idx = stratified_split(domain.labels, test_fraction=cfg.data.test_fraction,
                                               seed=cfg.data.split_seed)
        if len(train_idx) == 0 or len(test_idx) == 0:
            raise MetaxferError(f"domain {domain.name!r} is too small to split: {len(domain)} images; use more data or "
                                "another data.test_fraction")
        self.domain: Domain = domain
        self.train_x = _to_float(domain.images[train_idx]).to(device)
        self.train_y = domain.labels[train_idx].to(device)
        self.test_images = domain.images[test_idx]
        self.test_x = _to_float(self.test_images).to(device)
        self.test_y = domain.labels[test_idx].to(device)
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.sampler = EpochSampler(len(train_idx), batch_size=cfg.data.batch_size, generator=self.data_generator)
        net = SmallCNN(in_channels=domain.image_shape[0], num_classes=domain.num_classes, width=mc.width,
                       blocks=mc.blocks, dropout=mc.dropout).to(device)
        self.modules = {"net": net}
        self.optimizers = {"net": optimizer_for(net.parameters(), cfg.train)}
        log.info("classifier on %s: %d train / %d test images", domain.describe(), len(train_idx), len(test_idx))

    def steps(self) -> list[Step]:
        return [Step("train", self.train_step, optimizer="net")]

    def train_step(self, iteration: int) -> StepOutput:
        """One cross-entropy step on the next batch (with several processes: on this process's slice of it)."""
        shard = self.dist.shard(self.sampler.batch_size, what="data.batch_size")
        idx = shard.take(self.sampler.next()).to(self.device)
        logits = self.modules["net"](self.train_x[idx])
        y = self.train_y[idx]
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return StepOutput(loss, {"loss": float(loss.detach()), "acc": float(acc)}, share=shard.share)

    @torch.no_grad()
    def _predict(self) -> tuple[torch.Tensor, float]:
        net, bs = self.modules["net"], self.method_cfg.eval_batch_size
        logits = torch.cat([net(self.test_x[i : i + bs]).float() for i in range(0, len(self.test_x), bs)])
        return logits, float(F.cross_entropy(logits, self.test_y))

    def evaluate(self) -> dict[str, float]:
        logits, loss = self._predict()
        return {"loss": loss, "acc": float((logits.argmax(1) == self.test_y).float().mean())}

    def samples(self) -> torch.Tensor:
        logits, _ = self._predict()
        pred = logits.argmax(1).cpu()
        cols = self.sample_columns
        blank = torch.zeros_like(self.test_images[:1])
        rows = []
        for c in range(min(self.method_cfg.sample_classes, self.domain.num_classes)):
            chosen = self.test_images[pred == c][:cols]
            rows.append(torch.cat([chosen, blank.expand(cols - len(chosen), -1, -1, -1)]))
        return torch.cat(rows)

    def generators(self) -> dict[str, torch.Generator]:
        return {"data": self.data_generator}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])

"""Few-shot episodes: the ``Episode`` dataclass, a seeded N-way K-shot sampler, class splits, fixed episode sets.

An episode is N classes drawn from a domain, K labelled *support* examples and Q *query* examples of each. A
cross-domain episode takes its support set from one domain and its query set from another with the same classes
(matched by ``Domain.class_keys``), e.g. Twemoji support and OpenMoji queries.

Sampling is vectorised over classes and seeded by a ``torch.Generator``: the same seed gives the same episodes on
every machine, which is what makes fixed evaluation sets (:class:`EpisodeSet`) comparable across runs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from metaxfer.data.domain import Domain
from metaxfer.errors import EpisodeError

__all__ = ["Episode", "EpisodeSampler", "EpisodeSet", "ClassSplit", "split_classes"]


@dataclass
class Episode:
    """One N-way K-shot episode.

    Attributes:
        support_x: uint8 (N*K, C, H, W), grouped by class: the first K rows are class 0, and so on.
        support_y: int64 (N*K,), episode labels in [0, N).
        query_x: uint8 (N*Q, C, H, W), grouped by class like the support set.
        query_y: int64 (N*Q,).
        classes: int64 (N,), the support domain's class index of each episode label.
        class_keys: The N classes' stable keys (shared by both domains of a cross-domain episode).
        domain: Name of the domain the support set comes from.
        query_domain: Name of the domain the query set comes from (equal to ``domain`` within one domain).
        support_weight: float (N*K,) weight of each support image, or ``None`` (all weigh 1). Set by
            :func:`metaxfer.gan.support.augment_episode` to weigh generated images less than the real shots; only
            algorithms with ``weighted_support`` (ProtoNets: weighted class means) accept it.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor
    class_keys: list[str]
    domain: str
    query_domain: str
    support_weight: torch.Tensor | None = None

    @property
    def ways(self) -> int:
        return int(self.classes.numel())

    @property
    def shots(self) -> int:
        return self.support_y.numel() // max(1, self.ways)

    @property
    def queries(self) -> int:
        return self.query_y.numel() // max(1, self.ways)

    def to(self, device: torch.device | str) -> Episode:
        """The same episode with its tensors on ``device``."""
        return Episode(
            support_x=self.support_x.to(device),
            support_y=self.support_y.to(device),
            query_x=self.query_x.to(device),
            query_y=self.query_y.to(device),
            classes=self.classes,
            class_keys=self.class_keys,
            domain=self.domain,
            query_domain=self.query_domain,
            support_weight=None if self.support_weight is None else self.support_weight.to(device),
        )


@dataclass(frozen=True)
class ClassSplit:
    """Disjoint lists of class indices for meta-training, validation and testing."""

    train: list[int]
    val: list[int]
    test: list[int]

    def __getitem__(self, name: str) -> list[int]:
        if name not in ("train", "val", "test"):
            raise KeyError(f"split {name!r} does not exist; use 'train', 'val' or 'test'")
        return getattr(self, name)


def split_classes(
    domain: Domain,
    *,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    by: str = "class",
    names: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> ClassSplit:
    """Split a domain's classes into train/val/test, by class or by a group (e.g. whole alphabets).

    Args:
        domain: The domain whose classes are split.
        fractions: Shares of train, val and test (of classes, or of groups when ``by`` names a group). The rounding
            keeps every share with a positive fraction non-empty when there are enough items.
        by: ``"class"``, or the name of a grouping in ``domain.groups`` (e.g. ``"alphabet"``) so that no group is
            shared between splits.
        names: Instead of fractions, the group values (or class names when ``by="class"``) of each split, e.g.
            ``{"train": ["Latin", "Greek"], "val": [...], "test": [...]}``; unlisted items are left out.
        seed: Seed of the shuffle behind a fractional split.

    Returns:
        The class indices of each split, each sorted.

    Raises:
        EpisodeError: Unknown grouping or name, bad fractions, or too few classes/groups for the split.
    """
    if by == "class":
        item_of_class = list(domain.class_names)
    elif by in domain.groups:
        item_of_class = list(domain.groups[by])
    else:
        valid = ", ".join(["class", *domain.groups]) or "class"
        raise EpisodeError(f"cannot split domain {domain.name!r} by {by!r}: valid choices are {valid}")
    items = sorted(set(item_of_class))
    if names is not None:
        unknown = sorted({v for vals in names.values() for v in vals} - set(items))
        if unknown:
            raise EpisodeError(
                f"split of {domain.name!r} by {by!r} names unknown values {unknown[:10]}; valid values: {items[:40]}"
            )
        extra = set(names) - {"train", "val", "test"}
        if extra:
            raise EpisodeError(f"split names must be train/val/test, got {sorted(extra)}")
        chosen = {k: set(names.get(k, ())) for k in ("train", "val", "test")}
        overlap = (chosen["train"] & chosen["val"]) | (chosen["train"] & chosen["test"]) | (chosen["val"] & chosen["test"])
        if overlap:
            raise EpisodeError(f"split of {domain.name!r}: {sorted(overlap)} appear in more than one split")
    else:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            raise EpisodeError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
        g = torch.Generator().manual_seed(seed)
        order = [items[i] for i in torch.randperm(len(items), generator=g).tolist()]
        counts = _share_counts(len(order), fractions)
        if any(f > 0 and c == 0 for f, c in zip(fractions, counts)):
            raise EpisodeError(
                f"domain {domain.name!r} has {len(items)} {'classes' if by == 'class' else by + ' groups'}, too few "
                f"for the fractions {fractions}: use fewer splits or a domain with more"
            )
        a, b = counts[0], counts[0] + counts[1]
        chosen = {"train": set(order[:a]), "val": set(order[a:b]), "test": set(order[b:])}
    out = {k: sorted(c for c, item in enumerate(item_of_class) if item in v) for k, v in chosen.items()}
    return ClassSplit(**out)


def _share_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``n * fractions``, giving one item to each positive share first when possible."""
    raw = [n * f for f in fractions]
    counts = [int(math.floor(r)) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


class _ClassIndex:
    """Per-class example indices of one domain as a padded matrix, for vectorised sampling."""

    def __init__(self, domain: Domain, classes: Sequence[int]) -> None:
        labels = domain.labels
        order = torch.argsort(labels, stable=True)
        counts_all = torch.bincount(labels, minlength=domain.num_classes)
        starts = torch.cumsum(counts_all, 0) - counts_all
        cls = torch.as_tensor(list(classes), dtype=torch.int64)
        self.counts = counts_all[cls]
        width = int(self.counts.max()) if len(cls) else 0
        pos = torch.arange(width).unsqueeze(0)
        valid = pos < self.counts.unsqueeze(1)
        gather = (starts[cls].unsqueeze(1) + pos).clamp(max=max(0, len(order) - 1))
        self.matrix = torch.where(valid, order[gather] if len(order) else gather, torch.full_like(gather, -1))
        self.invalid = ~valid

    def draw(self, rows: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """``k`` distinct example indices from each class row in ``rows``: shape (len(rows), k)."""
        scores = torch.rand(len(rows), self.matrix.shape[1], generator=generator)
        scores.masked_fill_(self.invalid[rows], 2.0)
        picks = torch.topk(scores, k, dim=1, largest=False, sorted=True).indices
        return torch.gather(self.matrix[rows], 1, picks)


class EpisodeSampler:
    """Draws N-way K-shot Q-query episodes from a domain (or across two domains).

    Args:
        domain: Where support (and, by default, query) examples come from.
        ways: N, classes per episode.
        shots: K, support examples per class.
        queries: Q, query examples per class.
        classes: Class indices of ``domain`` episodes may use (e.g. ``split.train``); default all.
        query_domain: Take queries from this domain instead; its classes are matched to ``domain``'s by
            ``class_keys`` and only classes present in both are used.
        drop_small_classes: Leave out classes with too few examples instead of raising.
        seed: Seed of the sampler's own generator (used when :meth:`sample` is given none).

    Raises:
        EpisodeError: N exceeds the classes available, or a class has fewer than K+Q examples (K and Q separately
            across two domains) and ``drop_small_classes`` is False.

    Example:
        >>> sampler = EpisodeSampler(domain, ways=5, shots=1, queries=15, classes=split.train, seed=0)
        >>> episode = sampler.sample()
    """

    def __init__(
        self,
        domain: Domain,
        *,
        ways: int,
        shots: int,
        queries: int,
        classes: Sequence[int] | None = None,
        query_domain: Domain | None = None,
        drop_small_classes: bool = False,
        seed: int = 0,
    ) -> None:
        if ways < 1 or shots < 1 or queries < 0:
            raise EpisodeError(f"need ways >= 1, shots >= 1, queries >= 0; got ways={ways}, shots={shots}, queries={queries}")
        self.domain = domain
        self.query_domain = query_domain
        self.ways, self.shots, self.queries = ways, shots, queries
        self.generator = torch.Generator().manual_seed(seed)
        classes = list(range(domain.num_classes)) if classes is None else [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < domain.num_classes]
        if bad:
            raise EpisodeError(f"class indices {bad[:5]} are outside domain {domain.name!r} (0..{domain.num_classes - 1})")
        if query_domain is not None:
            qpos = {k: i for i, k in enumerate(query_domain.class_keys)}
            classes = [c for c in classes if domain.class_keys[c] in qpos]
            q_classes = [qpos[domain.class_keys[c]] for c in classes]
        else:
            q_classes = classes
        s_counts = domain.class_counts()
        need_s = shots if query_domain is not None else shots + queries
        small = [c for c in classes if int(s_counts[c]) < need_s]
        if query_domain is not None:
            q_counts = query_domain.class_counts()
            small_q = {c for c, qc in zip(classes, q_classes) if int(q_counts[qc]) < queries}
            small = sorted(set(small) | small_q)
        if small and not drop_small_classes:
            names = [domain.class_names[c] for c in small[:5]]
            raise EpisodeError(
                f"{len(small)} class(es) of {domain.name!r} (e.g. {names}) have fewer than the "
                f"{'K=' + str(shots) + ' support / Q=' + str(queries) + ' query' if query_domain is not None else 'K+Q=' + str(need_s)}"
                " examples an episode needs: lower shots/queries, or pass drop_small_classes=True to leave them out"
            )
        small_set = set(small)
        keep = [i for i, c in enumerate(classes) if c not in small_set]
        self.classes = torch.tensor([classes[i] for i in keep], dtype=torch.int64)
        self._q_classes = torch.tensor([q_classes[i] for i in keep], dtype=torch.int64)
        if len(self.classes) < ways:
            raise EpisodeError(
                f"{ways}-way episodes need {ways} classes but only {len(self.classes)} are available in "
                f"{domain.name!r}{' with a match in ' + repr(query_domain.name) if query_domain is not None else ''}"
                f"{' after dropping small classes' if small else ''}: lower ways or use more classes"
            )
        self._support_index = _ClassIndex(domain, self.classes.tolist())
        self._query_index = _ClassIndex(query_domain, self._q_classes.tolist()) if query_domain is not None else None
        self._support_y = torch.arange(ways).repeat_interleave(shots)
        self._query_y = torch.arange(ways).repeat_interleave(queries)

    # ----------------------------------------------------------------- indices
    def sample_indices(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw one episode as indices: (class rows (N,), support indices (N*K,), query indices (N*Q,)).

        Class rows index ``self.classes``; example indices index the support and query domains.
        """
        g = generator if generator is not None else self.generator
        rows = torch.randperm(len(self.classes), generator=g)[: self.ways]
        if self._query_index is None:
            picked = self._support_index.draw(rows, self.shots + self.queries, g)
            support, query = picked[:, : self.shots], picked[:, self.shots :]
        else:
            support = self._support_index.draw(rows, self.shots, g)
            query = self._query_index.draw(rows, self.queries, g)
        return rows, support.reshape(-1), query.reshape(-1)

    def episode_from_indices(self, rows: torch.Tensor, support: torch.Tensor, query: torch.Tensor) -> Episode:
        """Materialise the episode that :meth:`sample_indices` described."""
        qdom = self.query_domain if self.query_domain is not None else self.domain
        classes = self.classes[rows]
        return Episode(
            support_x=self.domain.images[support],
            support_y=self._support_y,
            query_x=qdom.images[query],
            query_y=self._query_y,
            classes=classes,
            class_keys=[self.domain.class_keys[c] for c in classes.tolist()],
            domain=self.domain.name,
            query_domain=qdom.name,
        )

    # ----------------------------------------------------------------- episodes
    def sample(self, generator: torch.Generator | None = None) -> Episode:
        """Draw one episode (from the sampler's own generator unless one is given)."""
        return self.episode_from_indices(*self.sample_indices(generator))

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def fixed(self, count: int = 600, *, seed: int = 0) -> EpisodeSet:
        """A fixed set of ``count`` episodes: the same for the same sampler settings and seed, on any machine."""
        g = torch.Generator().manual_seed(seed)
        drawn = [self.sample_indices(g) for _ in range(count)]
        return EpisodeSet(
            self,
            rows=torch.stack([d[0] for d in drawn]) if drawn else torch.empty(0, self.ways, dtype=torch.int64),
            support=torch.stack([d[1] for d in drawn]) if drawn else torch.empty(0, 0, dtype=torch.int64),
            query=torch.stack([d[2] for d in drawn]) if drawn else torch.empty(0, 0, dtype=torch.int64),
            seed=seed,
        )


class EpisodeSet:
    """A fixed, indexable set of episodes stored as indices (small enough to record with every result).

    Attributes:
        rows, support, query: int64 tensors (count, N), (count, N*K), (count, N*Q).
        seed: The seed that drew them.
    """

    def __init__(self, sampler: EpisodeSampler, *, rows: torch.Tensor, support: torch.Tensor, query: torch.Tensor, seed: int) -> None:
        self.sampler, self.rows, self.support, self.query, self.seed = sampler, rows, support, query, seed

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, i: int) -> Episode:
        if not -len(self) <= i < len(self):
            raise IndexError(f"episode {i} out of range for a set of {len(self)}")
        return self.sampler.episode_from_indices(self.rows[i], self.support[i], self.query[i])

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self[i]

    def fingerprint(self) -> str:
        """A short hash of the exact episodes (class keys and example indices), to record beside results."""
        h = hashlib.sha256()
        keys = self.sampler.domain.class_keys
        for name in (self.sampler.domain.name, (self.sampler.query_domain or self.sampler.domain).name):
            h.update(name.encode())
        classes = self.sampler.classes[self.rows]
        h.update("\x1f".join(keys[c] for c in classes.flatten().tolist()).encode())
        for t in (self.support, self.query):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

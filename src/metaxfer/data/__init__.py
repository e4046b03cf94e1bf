"""The data layer: domains, their registry and cache, transforms, episodes.

Typical use::

    from metaxfer.data import create_domain, split_classes, EpisodeSampler
    glyphs = create_domain("font-glyphs")
    split = split_classes(glyphs, by="alphabet", seed=0)
    sampler = EpisodeSampler(glyphs, ways=5, shots=1, queries=15, classes=split.train, seed=0)
    episode = sampler.sample()
"""

from __future__ import annotations

from metaxfer.data.domain import DOMAINS, Domain, DomainSpec, create_domain, list_domains, register_domain
from metaxfer.data.episodes import ClassSplit, Episode, EpisodeSampler, EpisodeSet, split_classes

__all__ = [
    "DOMAINS",
    "Domain",
    "DomainSpec",
    "create_domain",
    "list_domains",
    "register_domain",
    "ClassSplit",
    "Episode",
    "EpisodeSampler",
    "EpisodeSet",
    "split_classes",
]

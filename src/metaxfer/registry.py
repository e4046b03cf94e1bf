"""One generic registry, used for every family of named things (domains, backbones, algorithms, ...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from metaxfer.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table for one family.

    Args:
        kind: What the entries are, used in error messages ("domain", "backbone", ...).

    Example:
        >>> backbones: Registry[type] = Registry("backbone")
        >>> @backbones.register("conv4")
        ... class Conv4: ...
        >>> backbones.get("conv4").__name__
        'Conv4'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable directly or as a decorator.

        Raises:
            ValueError: If ``name`` is already registered.
        """

        def add(item: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice; pick another name")
            self._entries[name] = item
            return item

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Raises:
            UnknownNameError: If there is no such entry; the message lists the valid names and the closest ones.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown ``name``: the valid names, and close matches first."""
        close = difflib.get_close_matches(name, self._entries, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Valid {self.kind} names: {', '.join(self.names())}"

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

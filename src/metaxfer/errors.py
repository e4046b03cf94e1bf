"""The exceptions metaxfer raises.

Every error says what was wrong and how to fix it. They subclass the built-in exception a caller would
expect (``ValueError`` for bad arguments, ``FileNotFoundError`` for missing files) so generic handlers keep
working.
"""

from __future__ import annotations

__all__ = [
    "MetaxferError",
    "UnknownNameError",
    "DataNotFoundError",
    "DataFormatError",
    "EpisodeError",
    "MissingDependencyError",
]


class MetaxferError(Exception):
    """Base class of every error metaxfer raises on purpose."""


class UnknownNameError(MetaxferError, ValueError):
    """A registry was asked for a name it does not hold."""


class DataNotFoundError(MetaxferError, FileNotFoundError):
    """Files a dataset needs are not where they were looked for."""


class DataFormatError(MetaxferError, ValueError):
    """Files exist but are corrupt, truncated or in an unexpected format."""


class EpisodeError(MetaxferError, ValueError):
    """An episode cannot be drawn as asked (too few classes or examples)."""


class MissingDependencyError(MetaxferError, ImportError):
    """An optional Python or Debian package is needed and not installed."""

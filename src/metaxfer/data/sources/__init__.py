"""Domains built from data that ships inside PyPI or Debian packages (no download, no user path).

Importing this package registers every such domain.
"""

from __future__ import annotations
from metaxfer.data.sources import synthetic  # noqa: F401
from metaxfer.data.sources import digits  # noqa: F401
from metaxfer.data.sources import animals  # noqa: F401
from metaxfer.data.sources import emoji_styles  # noqa: F401
from metaxfer.data.sources import glyphs  # noqa: F401
from metaxfer.data.sources import digits_fonts  # noqa: F401
from metaxfer.data.sources import hershey  # noqa: F401

"""Domains built from data that ships inside PyPI or Debian packages (no download, no user path).

Importing this package registers every such domain.
"""

from __future__ import annotations

"""Loaders for the classic datasets from a local path, in the formats users have on disk.

Importing this package registers a domain for each (they take a ``root=`` option).
"""

from __future__ import annotations

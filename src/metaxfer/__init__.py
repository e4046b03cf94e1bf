"""metaxfer: cross-domain knowledge transfer with meta-learning and GANs."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

"""Training methods: each module registers one or more :class:`metaxfer.engine.Method` classes in ``METHODS``.

Importing this package registers every built-in method (the engine does it before it looks a method up).
"""

from __future__ import annotations

from metaxfer.methods import classifier  # noqa: F401
from metaxfer.methods import meta  # noqa: F401
from metaxfer.methods import gan  # noqa: F401
from metaxfer.methods import translation  # noqa: F401
from metaxfer.methods import text2image  # noqa: F401
from metaxfer.methods import meta_gan  # noqa: F401

"""The main job: run every transfer path of a recipe on the same target episodes and compare them.

* :mod:`metaxfer.compare.recipe`: comparison recipes (``configs/run/*.yaml``): trainings, paths, target, sizes.
* :mod:`metaxfer.compare.runner`: trains what the paths need, scores them, writes ``comparison.json`` and the report.
"""

from __future__ import annotations

from metaxfer.compare.recipe import DEFAULT_RECIPE, Recipe, list_recipes, load_recipe
from metaxfer.compare.runner import Comparison, ComparisonError, PathResult, run_comparison

__all__ = [
    "DEFAULT_RECIPE",
    "Recipe",
    "list_recipes",
    "load_recipe",
    "Comparison",
    "ComparisonError",
    "PathResult",
    "run_comparison",
]

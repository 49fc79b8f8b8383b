"""The settings of a sweep: pruning fractions x quantizer levels, as :class:`Recipe` s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..recipe import Recipe

__all__ = ["make_settings", "row_key_of"]


def _as_list(values, name: str) -> list:
    if values is None:
        return []
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        values = [values]
    out = list(values)
    if not out:
        raise ValueError(f"{name} is empty; give at least one value (or leave it out)")
    return out


def _levels(bits: list, clusters: list, method: str | None) -> tuple[str, list]:
    if method not in (None, "uniform", "kmeans"):
        raise ValueError(f"method must be 'uniform' or 'kmeans', got {method!r}")
    if bits and clusters:
        raise ValueError("give bits= (uniform quantization) or clusters= (k-means), not both")
    if method is None:
        method = "kmeans" if clusters else "uniform"
    if method == "uniform" and clusters:
        raise ValueError("method='uniform' takes bits=, not clusters=")
    if method == "kmeans" and bits:
        raise ValueError("method='kmeans' takes clusters=, not bits=")
    return method, (bits if method == "uniform" else clusters) or [None]


def make_settings(prune, bits, clusters, method: str | None, *, global_prune: bool = False,
                  retrain: bool = False, seed: int = 0) -> list[Recipe]:
    """Recipes in sweep order (pruning outer, levels inner), duplicates dropped.

    ``prune`` is a fraction, a mapping layer name -> fraction, or a sequence of them.

    Examples
    --------
    >>> [(r.prune, r.quantizer, r.levels) for r in make_settings([0.5, 0.9], [4, None],
    ...                                                          None, None)]
    [(0.5, 'uniform', 4), (0.5, 'none', 0), (0.9, 'uniform', 4), (0.9, 'none', 0)]
    """
    fractions = _as_list(prune, "prune") or [0.0]
    method, levels = _levels(_as_list(bits, "bits"), _as_list(clusters, "clusters"), method)
    recipes = []
    for p in fractions:
        for q in levels:
            kind = {"bits": q} if method == "uniform" else {"clusters": q}
            recipes.append(Recipe(p, **kind, global_prune=global_prune, retrain=retrain,
                                  seed=seed if retrain else 0))
    return list(dict.fromkeys(recipes))


def row_key_of(layer: str, recipe: Recipe) -> tuple:
    """The resume-log key of a layer's rows at a recipe (as :func:`._log.row_key` reads
    it back from a row): ``(layer, fraction, quantizer, levels)``."""
    return (layer, recipe.fraction(layer), recipe.quantizer, recipe.levels)

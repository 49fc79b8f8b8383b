"""The settings of a sweep: pruning fraction x quantizer levels."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass

from ..compress._common import as_fraction
from ..compress.kmeans import MAX_CLUSTERS
from ..compress.uniform import MAX_BITS, MIN_BITS
from ..report import Compression

__all__ = ["Setting", "make_settings"]


@dataclass(frozen=True)
class Setting:
    """One compression of every layer: prune ``prune``, then quantize (``quantizer``
    ``"uniform"`` with ``levels`` bits, ``"kmeans"`` with ``levels`` clusters, or
    ``"none"`` with ``levels`` 0)."""

    prune: float
    quantizer: str = "none"
    levels: int = 0

    @property
    def key(self) -> tuple[float, str, int]:
        return (self.prune, self.quantizer, self.levels)

    def compression(self) -> Compression:
        if self.quantizer == "uniform":
            return Compression(self.prune, "uniform", bits=self.levels)
        if self.quantizer == "kmeans":
            return Compression(self.prune, "kmeans", clusters=self.levels)
        return Compression(self.prune)


def _as_list(values, name: str) -> list:
    if values is None:
        return []
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        values = [values]
    out = list(values)
    if not out:
        raise ValueError(f"{name} is empty; give at least one value (or leave it out)")
    return out


def _level(value, name: str, low: int, high: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be integers in [{low}, {high}] (or None for no "
                        f"quantization), got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def make_settings(prune, bits, clusters, method: str | None) -> list[Setting]:
    """Settings in sweep order (pruning outer, levels inner), duplicates dropped.

    Examples
    --------
    >>> [s.key for s in make_settings([0.5, 0.9], [4, None], None, None)]
    [(0.5, 'uniform', 4), (0.5, 'none', 0), (0.9, 'uniform', 4), (0.9, 'none', 0)]
    """
    fractions = [as_fraction(p) for p in _as_list(prune, "prune")] or [0.0]
    bits_list, cluster_list = _as_list(bits, "bits"), _as_list(clusters, "clusters")
    if method not in (None, "uniform", "kmeans"):
        raise ValueError(f"method must be 'uniform' or 'kmeans', got {method!r}")
    if bits_list and cluster_list:
        raise ValueError("give bits= (uniform quantization) or clusters= (k-means), not both")
    if method is None:
        method = "kmeans" if cluster_list else "uniform"
    if method == "uniform" and cluster_list:
        raise ValueError("method='uniform' takes bits=, not clusters=")
    if method == "kmeans" and bits_list:
        raise ValueError("method='kmeans' takes clusters=, not bits=")
    if method == "uniform":
        levels = [_level(b, "bits", MIN_BITS, MAX_BITS) for b in bits_list] or [0]
    else:
        levels = [_level(c, "clusters", 1, MAX_CLUSTERS) for c in cluster_list] or [0]
    settings = [Setting(p, method if q else "none", q) for p in fractions for q in levels]
    return list(dict.fromkeys(settings))

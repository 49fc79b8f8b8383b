"""Synthetic weight matrices with the statistics of compressed networks.

Clearly synthetic: Gaussian weights, magnitude-pruned and quantized the way Deep
Compression does (prune the smallest magnitudes, share ``levels`` values whose
centroids start linearly spaced over the surviving range). They stand in for real
layers in benchmarks and in the report until a real network is loaded.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_layer"]


def synthetic_layer(
    shape: tuple[int, int],
    *,
    keep: float = 1.0,
    levels: int = 32,
    seed: int = 0,
    dtype=np.float32,
) -> np.ndarray:
    """A Gaussian matrix pruned to a share ``keep`` of its entries and quantized.

    Parameters
    ----------
    shape : (m, n)
    keep : float
        Share of entries left non-zero (the largest magnitudes), in ``(0, 1]``.
    levels : int
        Number of shared values. Pruned: the positive and the negative survivors are each
        rounded to the nearest of half the levels, linearly spaced over their range
        (at most ``levels + 1`` values with zero). Unpruned (``keep == 1``): a uniform grid with
        zero a level, ``K <= levels``.
    seed : int
        Seed of ``numpy.random.default_rng``: same arguments, same matrix.
    dtype : float32 or float64

    Examples
    --------
    >>> import lowentropy as le
    >>> W = synthetic_layer((100, 200), keep=0.1, levels=8)
    >>> s = le.stats(W)
    >>> s.K, round(1 - s.sparsity, 2)
    (9, 0.1)
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    rng = np.random.default_rng(seed)
    W = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    mag = np.abs(W).reshape(-1)
    n_keep = int(round(keep * mag.size))
    if n_keep < mag.size:
        threshold = np.partition(mag, mag.size - n_keep)[mag.size - n_keep] if n_keep else np.inf
        W[np.abs(W) < threshold] = 0
    if keep == 1:  # uniform grid with zero a level: low entropy, not sparse
        half = levels // 2
        step = float(np.abs(W).max()) / max(half, 1)
        codes = np.clip(np.rint(W / step), -half, levels - half - 1)
        return (codes * step).astype(dtype)
    for side, n_side in ((W > 0, levels - levels // 2), (W < 0, levels // 2)):
        if n_side and side.any():
            lo, hi = float(W[side].min()), float(W[side].max())
            step = (hi - lo) / max(n_side - 1, 1)
            codes = np.rint((W[side] - lo) / step) if step else np.zeros(side.sum())
            W[side] = (lo + codes * step).astype(dtype)
    return W

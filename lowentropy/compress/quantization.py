"""``quantize``: the public entry point of both quantizers (SPEC §6)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..threads import threads_for
from ._common import as_weights, raise_nonfinite
from .kmeans import MAX_CLUSTERS, nonzero_range, quantize_kmeans
from .uniform import MAX_BITS, MIN_BITS, max_abs, quantize_uniform

__all__ = ["quantize", "METHODS"]

METHODS = ("uniform", "kmeans")


def _as_int(value, name: str, low: int, high: int, method: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"quantize(method={method!r}) needs {name}= an integer in "
                         f"[{low}, {high}]; got {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise ValueError(f"quantize(method={method!r}): {name} must be in [{low}, {high}]; "
                         f"got {value}")
    return value


def quantize(W, method: str = "uniform", *, bits: int | None = None,
             clusters: int | None = None, max_iter: int | None = None) -> np.ndarray:
    """Quantize weights to few distinct values; zeros stay exactly 0.

    Parameters
    ----------
    W : array_like
        Weights of any shape. float32 and float64 are kept; other real dtypes are
        converted first (float16, bool and integers of at most 16 bits to float32, wider
        integers to float64).
    method : {"uniform", "kmeans"}
        ``"uniform"``: symmetric uniform quantizer of ``bits`` bits.
        ``"kmeans"``: 1-D k-means (Lloyd) weight sharing of the non-zero weights into ``clusters``
        shared values (Deep Compression).
    bits : int, for ``"uniform"``
        2 to 32. The levels are ``k * step`` for the integers ``k`` in ``[-L, L]``,
        ``L = 2**(bits-1) - 1`` and ``step = max|w| / L``: ``2 L + 1`` levels, symmetric,
        0 among them (``bits=2`` gives ``{-max|w|, 0, max|w|}``; one bit cannot hold 0
        and a sign, hence the minimum of 2).
    clusters : int, for ``"kmeans"``
        1 to 65536 shared values for the non-zero weights.
    max_iter : int, for ``"kmeans"``
        Lloyd iterations at most (default 100); they stop earlier at a fixed point.
        0 keeps the linear initialisation.

    Returns
    -------
    ndarray
        A new array, same shape and (converted) dtype, ``-0.0`` written as ``+0.0``.

    Notes
    -----
    **uniform.** ``k = rint(w * (L / max|w|))`` computed in float64 (``rint``: round half
    to even), kept in ``[-L, L]``; the value written is ``k * step`` in float64, rounded
    to the dtype. An all-zero array stays all zero.

    **kmeans.** Only the non-zero weights are clustered (pruned zeros stay 0 and take no
    part), so the result has at most ``clusters + 1`` distinct values with 0. Centroids
    start linearly spaced over ``[min, max]`` of the non-zero weights (``np.linspace``);
    each Lloyd iteration assigns every weight to its nearest centroid (ties to the smaller
    one) and moves each centroid to the mean of its weights. A centroid left without
    weights stays where it is (it is not dropped; it simply takes no weight). Fully
    deterministic. Up to 65536 non-zero weights, the iterations run on the weights
    themselves; beyond, on a histogram of 65536 equal bins over ``[min, max]`` (each bin
    a point at the mean of its weights, weighted by their number), which moves centroids
    by at most a fraction of a bin width. In both cases the final assignment is exact:
    every non-zero weight takes the value of its nearest final centroid (distances in
    float64, ties to the smaller centroid), rounded to the dtype.

    Raises
    ------
    ValueError
        Unknown ``method``; ``bits`` or ``clusters`` missing, out of range or given to
        the other method; ``W`` holds NaN or infinite values.
    TypeError
        If ``W`` is not real-valued.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[0.9, -0.2, 0.0], [0.4, -0.9, 0.6]])
    >>> quantize(W, "uniform", bits=2)            # levels -0.9, 0, 0.9
    array([[ 0.9,  0. ,  0. ],
           [ 0. , -0.9,  0.9]])
    >>> quantize(W, "kmeans", clusters=2)         # zeros stay out of the clusters
    array([[ 0.63333333, -0.55      ,  0.        ],
           [ 0.63333333, -0.55      ,  0.63333333]])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == "uniform":
        if clusters is not None or max_iter is not None:
            raise ValueError("quantize(method='uniform') takes bits=, not clusters= or "
                             "max_iter= (they are for method='kmeans')")
        bits = _as_int(bits, "bits", MIN_BITS, MAX_BITS, method)
    else:
        if bits is not None:
            raise ValueError("quantize(method='kmeans') takes clusters=, not bits= "
                             "(bits is for method='uniform')")
        clusters = _as_int(clusters, "clusters", 1, MAX_CLUSTERS, method)
        max_iter = 100 if max_iter is None else _as_int(max_iter, "max_iter", 0, 1 << 30,
                                                        method)
    arr = as_weights(W)
    flat = arr.reshape(-1)
    with threads_for(flat.size):
        if method == "uniform":
            peak, finite = max_abs(flat)
            if not finite:
                raise_nonfinite(arr)
            out = quantize_uniform(flat, bits, peak)
        else:
            lo, hi, nnz, finite = nonzero_range(flat)
            if not finite:
                raise_nonfinite(arr)
            out = _kmeans_in_range(flat, clusters, max_iter, (lo, hi, nnz))
    return out.reshape(arr.shape)


# Cluster sums of float64 weights near the largest float would overflow.
_SAFE_SUM = 1e300


def _kmeans_in_range(flat: np.ndarray, clusters: int, max_iter: int,
                     info: tuple[float, float, int]) -> np.ndarray:
    """k-means on weights scaled by a power of two when their sums could overflow (exact
    scaling both ways; only weights below ~2**-1000 of the largest may become 0)."""
    lo, hi, nnz = info
    peak = max(abs(lo), abs(hi))
    if peak == 0 or peak * max(nnz, 2) < _SAFE_SUM:
        return quantize_kmeans(flat, clusters, max_iter, info)
    shift = math.ceil(math.log2(peak) + math.log2(max(nnz, 2)) - math.log2(_SAFE_SUM)) + 1
    scaled = np.ldexp(flat, -shift)
    lo, hi, nnz, _ = nonzero_range(scaled)
    return np.ldexp(quantize_kmeans(scaled, clusters, max_iter, (lo, hi, nnz)), shift)

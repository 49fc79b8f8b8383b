"""``quantize``: the public entry point of both quantizers (SPEC §6)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..memory import check_memory
from ..quantized import Quantized, code_dtype, take_codes
from ..threads import threads_for
from ._common import as_fraction, as_weights, n_chunks, raise_nonfinite
from ._select import NonFinite, select_threshold, write_pruned
from .error import QuantizationError, error_from_sums, quantization_error
from .kmeans import MAX_CLUSTERS, NO_PRUNING, kmeans_codes, nonzero_range
from .uniform import CODE_BITS, MAX_BITS, MIN_BITS, max_abs, quantize_uniform, uniform_codes

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
             clusters: int | None = None, max_iter: int | None = None, prune: float = 0.0,
             return_codes: bool = False) -> np.ndarray | Quantized:
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
    prune : float
        Share of the weights pruned first, in ``[0, 1]``: the result is exactly
        ``quantize(le.prune(W, prune), ...)``, computed without writing the pruned copy
        (the quantizer's passes skip the pruned weights on the fly).
    return_codes : bool
        Return a :class:`~lowentropy.Quantized` (codes into a codebook, and the error
        against ``W``, computed in the same pass) instead of the array.

    Returns
    -------
    ndarray or Quantized
        A new array, same shape and (converted) dtype, ``-0.0`` written as ``+0.0``; with
        ``return_codes=True`` the same tensor as codes: uint8 codes up to 256 values,
        uint16 up to 65536, else uint32. The codebook is ascending and distinct
        (centroids or levels whose values collide in the dtype share a code): for
        ``"uniform"`` the ``2 L + 1`` levels, for ``"kmeans"`` the centroids and 0. It
        may hold values no weight took (an empty cluster, a level not reached);
        :func:`~lowentropy.stats` and the encoders drop them, so ``Ω`` holds exactly the
        values of the tensor. ``q.error`` is ``quantization_error(W, q)`` up to the
        rounding of its float64 sums, computed in the assignment pass.

    Notes
    -----
    **uniform.** ``k = rint(w / step)`` computed in float64 (``rint``: round half to
    even), kept in ``[-L, L]``; the value written is ``k * step`` in float64, rounded to
    the dtype. An all-zero array stays all zero. Up to 16 bits the codes are written
    directly; beyond, they come from the distinct values of the result (a sort).

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
        the other method; ``prune`` outside ``[0, 1]``; ``W`` holds NaN or infinite
        values.
    TypeError
        If ``W`` is not real-valued.
    MemoryBudgetError
        If the codes (or, for more than 16 bits, the sort of the values) would not fit
        the memory budget.

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
    >>> q = quantize(W, "uniform", bits=2, prune=0.5, return_codes=True)
    >>> q.codes, q.codebook                        # -0.2, 0 and 0.4 pruned
    (array([[2, 1, 1],
           [1, 0, 2]], dtype=uint8), array([-0.9,  0. ,  0.9]))
    >>> q.to_dense()
    array([[ 0.9,  0. ,  0. ],
           [ 0. , -0.9,  0.9]])
    >>> round(q.error.rmse, 4)
    0.2198
    """
    bits, clusters, max_iter = _check_arguments(method, bits, clusters, max_iter)
    try:
        fraction = as_fraction(prune)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"quantize: prune= is a fraction of the weights; {exc}") from None
    arr = as_weights(W)
    with threads_for(arr.size):
        out = _quantize(arr, method, bits, clusters, max_iter, fraction, return_codes)
        if return_codes or not isinstance(out, Quantized):
            return out
        return out.to_dense()


def _check_arguments(method, bits, clusters, max_iter):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == "uniform":
        if clusters is not None or max_iter is not None:
            raise ValueError("quantize(method='uniform') takes bits=, not clusters= or "
                             "max_iter= (they are for method='kmeans')")
        return _as_int(bits, "bits", MIN_BITS, MAX_BITS, method), None, None
    if bits is not None:
        raise ValueError("quantize(method='kmeans') takes clusters=, not bits= "
                         "(bits is for method='uniform')")
    clusters = _as_int(clusters, "clusters", 1, MAX_CLUSTERS, method)
    max_iter = 100 if max_iter is None else _as_int(max_iter, "max_iter", 0, 1 << 30, method)
    return None, clusters, max_iter


def _quantize(arr: np.ndarray, method: str, bits, clusters, max_iter, fraction: float,
              return_codes: bool) -> np.ndarray | Quantized:
    """The quantized tensor as codes (or, for the uniform quantizer beyond
    ``CODE_BITS`` without ``return_codes``, as an array)."""
    flat = arr.reshape(-1)
    if flat.size == 0:
        return Quantized._trusted(np.zeros(arr.shape, np.uint8), np.zeros(0, arr.dtype),
                                  QuantizationError(0.0, 0.0, 0.0, 0.0, math.inf))
    rule = _prune_rule(arr, fraction)
    values = 2**bits - 1 if method == "uniform" else clusters + 1
    check_memory(flat.size * code_dtype(min(values, 1 << 32)).itemsize,
                 f"the codes of {flat.size:,} quantized weights")
    if method == "uniform":
        peak, finite = max_abs(flat, rule)
        if not finite:
            raise_nonfinite(arr)
        if bits > CODE_BITS:
            return _many_levels(arr, quantize_uniform(write_pruned(flat, rule), bits, peak),
                                return_codes)
        return _finish(arr, *uniform_codes(flat, bits, peak, rule))
    lo, hi, nnz, finite = nonzero_range(flat, rule)
    if not finite:
        raise_nonfinite(arr)
    if nnz == 0:  # every weight is 0 or pruned
        return _finish(arr, *uniform_codes(flat, MIN_BITS, 0.0, rule))
    peak = max(abs(lo), abs(hi))
    if peak * max(nnz, 2) >= _SAFE_SUM:
        return _scaled_kmeans(arr, write_pruned(flat, rule), clusters, max_iter, (lo, hi, nnz))
    return _finish(arr, *kmeans_codes(flat, clusters, max_iter, (lo, hi, nnz), rule))


def _prune_rule(arr: np.ndarray, fraction: float) -> tuple[int, int]:
    if fraction == 0:
        return NO_PRUNING
    flat = arr.reshape(-1)
    try:
        return select_threshold([flat], min(flat.size, max(0, round(fraction * flat.size))))
    except NonFinite:
        raise_nonfinite(arr)


def _finish(arr: np.ndarray, codes: np.ndarray, codebook: np.ndarray,
            sums: np.ndarray) -> Quantized:
    """The Quantized result: codes of values that collide in the dtype merged (one pass,
    only when there are such values), the error measured from the assignment's sums."""
    merged = np.unique(codebook)
    if merged.size < codebook.size:
        new_code = np.searchsorted(merged, codebook).astype(code_dtype(merged.size))
        out = np.empty(codes.size, new_code.dtype)
        take_codes(codes, new_code, n_chunks(codes.size), out)
        codes, codebook = out, merged
    codes = codes.reshape(arr.shape)
    error = error_from_sums(sums, codes.size)
    q = Quantized._trusted(codes, codebook)
    if error is None:  # squares beyond float64
        error = quantization_error(arr, q.to_dense())
    object.__setattr__(q, "error", error)
    return q


def _many_levels(arr: np.ndarray, dense: np.ndarray, return_codes: bool):
    """The uniform quantizer beyond ``CODE_BITS``: codes from the distinct values."""
    dense = dense.reshape(arr.shape)
    if not return_codes:
        return dense
    check_memory(dense.size * (2 * dense.itemsize + 16),
                 f"the codes of {dense.size:,} weights quantized to more than 65536 levels "
                 "(a sort of their values)", "Quantize to at most 16 bits")
    codebook, inverse = np.unique(dense.reshape(-1), return_inverse=True)
    codes = inverse.astype(code_dtype(codebook.size)).reshape(arr.shape)
    return Quantized._trusted(codes, codebook, quantization_error(arr, dense))


# Cluster sums of float64 weights near the largest float would overflow.
_SAFE_SUM = 1e300


def _scaled_kmeans(arr: np.ndarray, pruned: np.ndarray, clusters: int, max_iter: int,
                   info: tuple[float, float, int]) -> Quantized:
    """k-means on weights scaled by a power of two when their sums could overflow (exact
    scaling both ways; only weights below ~2**-1000 of the largest may become 0)."""
    lo, hi, nnz = info
    peak = max(abs(lo), abs(hi))
    shift = math.ceil(math.log2(peak) + math.log2(max(nnz, 2)) - math.log2(_SAFE_SUM)) + 1
    scaled = np.ldexp(pruned, -shift)
    codes, codebook, _ = kmeans_codes(scaled, clusters, max_iter, nonzero_range(scaled)[:3])
    codebook = np.ldexp(codebook, shift).astype(arr.dtype)
    q = _finish(arr, codes, codebook, np.zeros((1, 4)))
    object.__setattr__(q, "error", quantization_error(arr, q.to_dense()))
    return q

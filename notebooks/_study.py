"""Random matrices of a chosen entropy and sparsity, for the simulated study
(``02_entropy_study.ipynb``).

The library's :func:`lowentropy.synthetic.synthetic_layer` fixes the *number* of shared
values and lets the entropy follow; the study also needs the converse: a matrix whose
value distribution has a given entropy ``H`` at a given share of zeros. Here:

- exactly ``round(sparsity * m * n)`` entries are 0, at random positions;
- every other entry takes one of ``n_values`` non-zero shared values (:func:`shared_values`),
  the ``k``-th with probability ``q_k ∝ exp(-beta * k)``; ``beta >= 0`` is found by
  bisection so that ``h(sparsity) + (1 - sparsity) * H(q) = H`` (``h`` the binary entropy):
  ``beta = 0`` is uniform (highest entropy), a large ``beta`` puts everything on the first
  value (lowest).

For one ``seed`` the positions and the uniform variates are the same whatever ``H`` is, and
an entry's value index is the inverse CDF of its variate. Because a larger ``beta`` moves
probability towards smaller indices (first-order stochastic dominance), lowering ``H`` at a
fixed sparsity can only lower every entry's index: the matrices of one seed are *coupled*,
so costs that grow with the spread of values change monotonically along the entropy axis
instead of jittering from sample to sample.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["binary_entropy", "shared_values", "entropy_range", "value_distribution",
           "entropy_matrix"]

_TOL = 1e-12


def binary_entropy(p: float) -> float:
    """``-p log2 p - (1-p) log2 (1-p)`` in bits (0 at ``p`` = 0 or 1).

    Examples
    --------
    >>> binary_entropy(0.5), binary_entropy(0.0)
    (1.0, 0.0)
    """
    _check_sparsity(p)
    if p in (0.0, 1.0):
        return 0.0
    return float(-p * math.log2(p) - (1 - p) * math.log2(1 - p))


def shared_values(n_values: int, dtype=np.float32) -> np.ndarray:
    """``n_values`` distinct non-zero values ``1, -1, 2, -2, ...`` times ``1/64``, exact in
    float32; index ``k`` is drawn with probability ``q_k`` (decreasing in ``k``).

    Examples
    --------
    >>> (shared_values(5) * 64).tolist()
    [1.0, -1.0, 2.0, -2.0, 3.0]
    """
    n = _check_n_values(n_values)
    k = np.arange(n)
    return (((k // 2) + 1) * np.where(k % 2 == 0, 1.0, -1.0) / 64).astype(dtype)


def entropy_range(sparsity: float, n_values: int) -> tuple[float, float]:
    """Lowest and highest entropy (bits per element) reachable at this share of zeros with
    ``n_values`` non-zero values: one value only, or all equally likely.

    Examples
    --------
    >>> entropy_range(0.5, 4)
    (1.0, 2.0)
    >>> entropy_range(0.0, 4)
    (0.0, 2.0)
    """
    _check_sparsity(sparsity)
    n = _check_n_values(n_values)
    h = binary_entropy(sparsity)
    if sparsity == 1.0:
        return 0.0, 0.0
    return h, h + (1 - sparsity) * math.log2(n)


def _probabilities(beta: float, n: int) -> np.ndarray:
    logits = -beta * np.arange(n, dtype=np.float64)
    q = np.exp(logits - logits.max())
    return q / q.sum()


def _entropy_bits(q: np.ndarray) -> float:
    q = q[q > 0]
    return float(max(0.0, -(q * np.log2(q)).sum()))


def value_distribution(sparsity: float, H: float, n_values: int) -> np.ndarray:
    """Probabilities ``q`` (decreasing, summing to 1) of the ``n_values`` non-zero values
    such that a matrix with this share of zeros has entropy ``H``.

    Raises
    ------
    ValueError
        If ``H`` is outside :func:`entropy_range` (the message gives the range).

    Examples
    --------
    >>> q = value_distribution(0.5, 1.5, 4)
    >>> round(binary_entropy(0.5) + 0.5 * float(-(q * np.log2(q)).sum()), 9)
    1.5
    >>> value_distribution(0.5, 1.0, 4).tolist()      # the lowest entropy: one value
    [1.0, 0.0, 0.0, 0.0]
    """
    lo, hi = entropy_range(sparsity, n_values)
    H = float(H)
    if not math.isfinite(H) or not lo - 1e-9 <= H <= hi + 1e-9:
        raise ValueError(f"entropy H={H!r} is not reachable at sparsity {sparsity} with "
                         f"{n_values} non-zero values: choose H in [{lo:.6g}, {hi:.6g}]")
    n = int(n_values)
    if sparsity == 1.0 or H <= lo + _TOL or n == 1:
        q = np.zeros(n)
        q[0] = 1.0
        return q
    target = (H - lo) / (1 - sparsity)  # entropy of the non-zero part
    if target >= math.log2(n) - _TOL:
        return np.full(n, 1.0 / n)
    low, high = 0.0, 1.0
    while _entropy_bits(_probabilities(high, n)) > target:
        high *= 2
        if high > 1e6:  # beyond this the first value holds all of the mass in float64
            break
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _entropy_bits(_probabilities(mid, n)) > target:
            low = mid
        else:
            high = mid
        if high - low < 1e-13 * max(1.0, high):
            break
    return _probabilities(0.5 * (low + high), n)


def entropy_matrix(shape: tuple[int, int], sparsity: float, H: float, *,
                   n_values: int = 255, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A random ``m × n`` matrix with exactly ``round(sparsity·m·n)`` zeros whose value
    distribution has entropy ``H`` (up to sampling noise of the non-zero part).

    Parameters
    ----------
    shape : (m, n)
    sparsity : float
        Share of exact zeros, in ``[0, 1]``.
    H : float
        Entropy of the value distribution in bits per element, within
        :func:`entropy_range`.
    n_values : int
        Number of non-zero shared values available (:func:`shared_values`).
    seed : int
        Same seed, same zero positions and same uniform variates for every ``H`` (the
        matrices of one seed are coupled; see the module notes).
    dtype : float32 or float64

    Examples
    --------
    >>> W = entropy_matrix((64, 128), 0.5, 2.0, n_values=15)
    >>> int((W == 0).sum()), W.dtype
    (4096, dtype('float32'))
    >>> W2 = entropy_matrix((64, 128), 0.5, 1.5, n_values=15)
    >>> bool(((W == 0) == (W2 == 0)).all())   # same zeros, fewer distinct values
    True
    """
    try:
        m, n = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair (m, n), got {shape!r}") from None
    if m < 0 or n < 0:
        raise ValueError(f"shape must not be negative, got {shape!r}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    q = value_distribution(sparsity, H, n_values)
    size = m * n
    n_zero = int(round(sparsity * size))
    rng = np.random.default_rng(seed)
    order = rng.permutation(size)
    u = rng.random(size - n_zero)
    cdf = np.cumsum(q)
    index = np.minimum(np.searchsorted(cdf, u, side="right"), q.size - 1)
    flat = np.zeros(size, dtype=dtype)
    flat[order[n_zero:]] = shared_values(n_values, dtype)[index]
    return flat.reshape(m, n)


def _check_sparsity(p) -> None:
    if isinstance(p, bool) or not isinstance(p, int | float | np.floating | np.integer):
        raise TypeError(f"sparsity must be a real number, got {type(p).__name__}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {p!r}")


def _check_n_values(n_values) -> int:
    if isinstance(n_values, bool) or int(n_values) != n_values or n_values < 1:
        raise ValueError(f"n_values must be a positive integer, got {n_values!r}")
    return int(n_values)

"""Statistics of a weight matrix: the quantities the formats' costs depend on (SPEC §1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._codes import code_values
from ._validate import as_weight_matrix
from ._values import count_values, row_groups
from .quantized import Quantized

__all__ = ["Stats", "stats", "entropy", "entropy_of_counts"]


def entropy_of_counts(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a distribution given by counts (0 for no counts)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(max(0.0, -(p * np.log2(p)).sum()))


@dataclass(frozen=True, eq=False)
class Stats:
    """What the costs of the formats depend on, for one matrix.

    Attributes
    ----------
    shape : (int, int)
        ``(m, n)``.
    dtype : numpy.dtype
        float32 or float64 (after conversion of other real dtypes).
    omega : ndarray
        ``Ω``: distinct values by decreasing count, ties by ascending value.
    counts : ndarray of int64
        Occurrences of each value of ``omega``.
    K : int
        Number of distinct values.
    H : float
        Entropy of the value distribution, bits per element.
    p0 : float
        Share of the most frequent value ``ω_0`` (0.0 for an empty matrix).
    N : int
        Entries different from ``ω_0``.
    zeros : int
        Entries exactly zero (``-0.0`` included).
    sparsity : float
        Share of exact zeros (0.0 for an empty matrix), reported apart from ``p0``.
    groups_cer, groups_cser : ndarray of int64
        Groups per row in CER (``r_i``, the largest rank of the row) and in CSER (distinct
        values other than ``ω_0`` in the row).
    """

    shape: tuple[int, int]
    dtype: np.dtype
    omega: np.ndarray
    counts: np.ndarray
    H: float
    N: int
    zeros: int
    groups_cer: np.ndarray
    groups_cser: np.ndarray

    @property
    def K(self) -> int:
        return int(self.omega.size)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def p0(self) -> float:
        return float(self.counts[0]) / self.size if self.size else 0.0

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    @property
    def nnz(self) -> int:
        """Entries different from zero (CSR's stored entries)."""
        return self.size - self.zeros

    @property
    def G_cer(self) -> int:
        return int(self.groups_cer.sum())

    @property
    def G_cser(self) -> int:
        return int(self.groups_cser.sum())

    def entropy_floor_bits(self, value_bits: int = 32) -> float:
        """``m·n·H + K·value_bits``: the bits any lossless code of the matrix needs under
        an i.i.d. model of its entries, with the codebook stored (SPEC §4)."""
        return self.size * self.H + self.K * value_bits

    def as_dict(self) -> dict[str, object]:
        """The scalar statistics as a plain dict (for tables and JSON)."""
        return {
            "m": self.shape[0], "n": self.shape[1], "dtype": str(self.dtype), "K": self.K,
            "H": self.H, "p0": self.p0, "omega0": float(self.omega[0]) if self.K else math.nan,
            "N": self.N, "nnz": self.nnz, "sparsity": self.sparsity,
            "G_cer": self.G_cer, "G_cser": self.G_cser,
        }


def stats(W) -> Stats:
    """Statistics of a matrix: ``Ω`` with counts, entropy, ``p0``, ``N``, groups per row.

    Parameters
    ----------
    W : array_like or Quantized, 2-D
        Real and finite; ``-0.0`` counts as ``+0.0``. A :class:`~lowentropy.Quantized`
        matrix is counted from its codes (a ``bincount``, no hashing of floats), with the
        same result as for its dense matrix.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> s = le.stats(np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 2.0]]))
    >>> s.omega.tolist(), s.counts.tolist(), s.K, s.N, round(s.H, 4)
    ([0.0, 1.0, 2.0], [3, 2, 1], 3, 3, 1.4591)
    >>> s.groups_cer.tolist(), s.groups_cser.tolist()
    ([1, 2], [1, 1])
    """
    if isinstance(W, Quantized):
        return _stats_of_codes(W)
    W = as_weight_matrix(W)
    values = count_values(W)
    N, max_rank, distinct = row_groups(W, values)
    return _make_stats(W.shape, W.dtype, values.omega, values.counts, N, max_rank, distinct)


def _make_stats(shape, dtype, omega, counts, N, max_rank, distinct) -> Stats:
    zero_rank = np.flatnonzero(omega == 0)
    zeros = int(counts[zero_rank[0]]) if zero_rank.size else 0
    return Stats(
        shape=shape, dtype=dtype, omega=omega, counts=counts,
        H=entropy_of_counts(counts), N=N, zeros=zeros,
        groups_cer=max_rank, groups_cser=distinct,
    )


def _stats_of_codes(q: Quantized) -> Stats:
    if q.ndim != 2:
        raise ValueError(f"W must be a 2-D matrix; got a {q.ndim}-D array of shape {q.shape}")
    v = code_values(q)
    return _make_stats(q.shape, q.dtype, v.omega, v.counts, v.N, v.max_rank, v.distinct)


def entropy(W) -> float:
    """Entropy of the value distribution of ``W`` in bits per element (SPEC §1).

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> le.entropy(np.array([[0.0, 1.0], [0.0, 1.0]]))
    1.0
    """
    if isinstance(W, Quantized):
        return _stats_of_codes(W).H
    return entropy_of_counts(count_values(as_weight_matrix(W)).counts)

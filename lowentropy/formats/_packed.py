"""What the codebook formats (palette, Huffman) share: the rank of every element, the
checks of ``Ω`` against counts, and batch products by decoding row blocks for BLAS.

Packed arrays are ``uint32`` words (SPEC §9): the formats' storage counts the bits they
hold, their memory the words.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from .._values import ValueCounts, _bits, _lookup
from ..memory import check_memory

__all__ = ["element_ranks", "check_omega_counts", "decoded_blocks", "DECODE_BLOCK_BYTES"]

#: Size of the row blocks a batch product decodes before handing them to BLAS (fits L2).
DECODE_BLOCK_BYTES = 1 << 18


@kernel(parallel=True)
def _ranks_hashed(bits, negzero, keys, slot_rank, shift, out):
    for e in prange(bits.shape[0]):
        key = np.uint64(bits[e])
        if key == negzero:
            key = np.uint64(0)
        out[e] = _lookup(keys, slot_rank, shift, key)


def element_ranks(W: np.ndarray, values: ValueCounts) -> np.ndarray:
    """The rank (index into ``Ω``) of every element of ``W``, flat in row-major order, as
    ``uint32``."""
    m, n = W.shape
    check_memory(4 * m * n, f"the ranks of the {m}×{n} matrix's elements")
    if values.element_rank is not None:
        return values.element_rank.astype(np.uint32)
    out = np.empty(m * n, np.uint32)
    if m * n:
        bits, negzero = _bits(np.ascontiguousarray(W))
        _ranks_hashed(bits, negzero, values.keys, values.slot_rank, values.shift, out)
    return out


def check_omega_counts(omega: np.ndarray, counts: np.ndarray, size: int) -> None:
    """``Ω`` against the counts of its ranks: empty exactly for an empty matrix, distinct
    values, each present, ordered by decreasing count with ties by ascending value."""
    K = omega.size
    if (size == 0) != (K == 0):
        raise ValueError(f"omega must be empty exactly when the matrix is (K = {K}, "
                         f"{size} elements)")
    if np.unique(omega).size != K:
        raise ValueError("omega must hold distinct values")
    if K and (counts < 1).any():
        k = int(np.argmax(counts < 1))
        raise ValueError(f"omega[{k}] = {omega[k]} occurs nowhere in the matrix")
    if (np.lexsort((omega, -counts)) != np.arange(K)).any():
        raise ValueError("omega must be ordered by decreasing count, ties by ascending value "
                         f"(counts {counts[:8].tolist()}...)")


def decoded_blocks(m: int, n: int, dtype: np.dtype):
    """Row blocks ``(r0, r1)`` and a buffer of ``DECODE_BLOCK_BYTES`` for a batch product
    that decodes rows into ``dtype`` values and multiplies them with BLAS."""
    rows = max(1, min(m, DECODE_BLOCK_BYTES // max(1, n * dtype.itemsize)))
    buffer = np.empty((rows, n), dtype)
    return [(r0, min(r0 + rows, m)) for r0 in range(0, m, rows)], buffer

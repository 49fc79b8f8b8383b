"""What the codebook formats (palette, Huffman) share: the rank of every element, the
checks of ``Ω`` against counts, and batch products by decoding tiles for BLAS.

Packed arrays are ``uint32`` words (SPEC §9): the formats' storage counts the bits they
hold, their memory the words.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange
from .._values import ValueCounts, _bits, _lookup
from ..memory import check_memory

__all__ = ["element_ranks", "check_omega_counts", "tiled_matmat", "TILE_BYTES", "TILE_COLUMNS"]

#: Bytes of the tiles a batch product decodes before handing them to BLAS (see
#: :func:`tiled_matmat`).
TILE_BYTES = 1 << 24
#: Columns of those tiles (a multiple of 32: tiles start on a word for every code width).
TILE_COLUMNS = 4096


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


def tiled_matmat(decode_tile, shape: tuple[int, int], X: np.ndarray, out: np.ndarray,
                 rows: int | None = None, columns: int | None = None) -> None:
    """``out = W @ X`` by tiles: ``decode_tile(r0, r1, c0, c1, tile)`` writes the values
    ``W[r0:r1, c0:c1]`` into the C-contiguous ``tile`` (for each row block, the column
    blocks come in order), and BLAS multiplies each tile by ``X[c0:c1]``, the products of
    a row block's column blocks summed.

    The tiles are :data:`TILE_COLUMNS` wide and as tall as :data:`TILE_BYTES` allow
    (16 MB: 1024 × 4096 float32). Measured on VGG-16 fc6 at batch 64 (AMD EPYC, 2 cores):
    tiles of a few rows (the first design: 2 rows of 25088 columns, 256 KB) took 11×
    dense's time, BLAS re-reading all of ``X`` for every two rows; 256 × 2048 took 2.8×,
    1024 × 4096 and 2048 × 4096 1.4-1.6×: every tile is a hand-off from numba's threads
    (decoding) to BLAS's and back, and with few rows BLAS repacks ``X`` more often.
    ``rows`` and ``columns`` override the sizes (``columns`` rounded up to a multiple
    of 32).
    """
    m, n = shape
    columns = TILE_COLUMNS if columns is None else columns
    columns = -(-max(1, min(n, columns)) // 32) * 32
    width = min(columns, n)
    if rows is None:
        rows = TILE_BYTES // (width * X.dtype.itemsize)
    rows = max(1, min(m, rows))
    tile_buffer = np.empty(rows * width, X.dtype)
    partial = np.empty((rows, X.shape[1]), out.dtype) if n > columns else None
    for r0 in range(0, m, rows):
        r1 = min(r0 + rows, m)
        for c0 in range(0, n, columns):
            c1 = min(c0 + columns, n)
            tile = tile_buffer[: (r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0)
            decode_tile(r0, r1, c0, c1, tile)
            if c0 == 0:
                np.matmul(tile, X[c0:c1], out=out[r0:r1])
            else:
                np.matmul(tile, X[c0:c1], out=partial[: r1 - r0])
                out[r0:r1] += partial[: r1 - r0]

"""Compressed Sparse Row: the usual sparse baseline."""

from __future__ import annotations

import numpy as np

from .._jit import kernel, prange, serial
from .._validate import index_dtype
from ..memory import check_memory
from ._checks import ascending_within, check_indices, check_pointer, check_values
from ._sums import gather_dot, gather_dot_rows
from .base import ArraySpec, Format, Sizes

__all__ = ["CSR"]


@kernel(parallel=True)
def _csr_count(W, out):
    for i in prange(W.shape[0]):
        c = 0
        for j in range(W.shape[1]):
            if W[i, j] != 0:
                c += 1
        out[i] = c


@kernel(parallel=True)
def _csr_encode(W, row_ptr, values, col_idx):
    for i in prange(W.shape[0]):
        p = row_ptr[i]
        for j in range(W.shape[1]):
            v = W[i, j]
            if v != 0:
                values[p] = v
                col_idx[p] = j
                p += 1


@kernel(parallel=True)
def _csr_count_codes(codes, nonzero, out):
    for i in prange(codes.shape[0]):
        c = 0
        for j in range(codes.shape[1]):
            c += nonzero[codes[i, j]]
        out[i] = c


@kernel(parallel=True)
def _csr_encode_codes(codes, nonzero, codebook, row_ptr, values, col_idx):
    for i in prange(codes.shape[0]):
        p = row_ptr[i]
        for j in range(codes.shape[1]):
            k = codes[i, j]
            if nonzero[k]:
                values[p] = codebook[k]
                col_idx[p] = j
                p += 1


@kernel(parallel=True)
def _csr_matvec(values, col_idx, row_ptr, x, chunks, out):
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            out[i] = gather_dot(values, col_idx, x, row_ptr[i], row_ptr[i + 1])


@kernel(parallel=True)
def _csr_matmat(values, col_idx, row_ptr, X, chunks, out):
    for c in prange(chunks.shape[0] - 1):
        for i in range(chunks[c], chunks[c + 1]):
            gather_dot_rows(values, col_idx, X, row_ptr[i], row_ptr[i + 1], out[i])

_csr_matvec_serial = serial(_csr_matvec)
_csr_matmat_serial = serial(_csr_matmat)


class CSR(Format):
    """Compressed Sparse Row storage of the entries different from 0.

    Arrays
    ------
    values : (nnz,) float32 or float64
        The non-zero entries, row by row, columns ascending.
    col_idx : (nnz,) uint16 or uint32
        Their columns, in ``[0, n)``, strictly ascending within a row.
    row_ptr : (m+1,) int64
        Row ``i`` is ``values[row_ptr[i]:row_ptr[i+1]]``; ``row_ptr[0] = 0``,
        ``row_ptr[m] = nnz``.

    CSR stores zeros implicitly, whatever the most frequent value is: it gains only
    from sparsity. Cost (SPEC §5): ``nnz`` additions and multiplications.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> c = le.CSR.from_dense(np.array([[0.0, 3.0], [2.0, 0.0]]))
    >>> c.arrays()["col_idx"], c.arrays()["row_ptr"]
    (array([1, 0], dtype=uint16), array([0, 1, 2]))
    """

    name = "csr"
    array_names = ("values", "col_idx", "row_ptr")

    @classmethod
    def _encode(cls, W: np.ndarray) -> CSR:
        per_row = np.zeros(W.shape[0], np.int64)
        _csr_count(W, per_row)
        row_ptr, values, col_idx = cls._allocate(W.shape, W.dtype, per_row)
        _csr_encode(W, row_ptr, values, col_idx)
        return cls._trusted(W.shape, W.dtype, values=values, col_idx=col_idx, row_ptr=row_ptr)

    @classmethod
    def _encode_codes(cls, q) -> CSR:
        codes = q.codes
        nonzero = (q.codebook != 0).astype(np.int64)
        per_row = np.zeros(q.shape[0], np.int64)
        _csr_count_codes(codes, nonzero, per_row)
        row_ptr, values, col_idx = cls._allocate(q.shape, q.dtype, per_row)
        _csr_encode_codes(codes, nonzero, q.codebook, row_ptr, values, col_idx)
        return cls._trusted(q.shape, q.dtype, values=values, col_idx=col_idx, row_ptr=row_ptr)

    @staticmethod
    def _allocate(shape, dtype, per_row):
        m, n = shape
        row_ptr = np.zeros(m + 1, np.int64)
        np.cumsum(per_row, out=row_ptr[1:])
        nnz = int(row_ptr[-1])
        col_dtype = index_dtype(max(n - 1, 0))
        check_memory(nnz * (dtype.itemsize + col_dtype.itemsize),
                     f"CSR of a {m}×{n} matrix with {nnz:,} non-zeros")
        return row_ptr, np.empty(nnz, dtype), np.empty(nnz, col_dtype)

    def to_dense(self) -> np.ndarray:
        self._check_dense_memory()
        a = self._arrays
        W = np.zeros(self.shape, self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(a["row_ptr"]))
        W[rows, a["col_idx"]] = a["values"]
        return W

    def _check_arrays(self) -> None:
        m, n = self.shape
        a = self._arrays
        check_pointer("row_ptr", a["row_ptr"], m + 1, a["values"].size)
        nnz = int(a["row_ptr"][-1])
        check_values("values", a["values"], nnz, self.dtype)
        if (a["values"] == 0).any():
            raise ValueError("values must not hold zeros (CSR stores the entries != 0)")
        check_indices("col_idx", a["col_idx"], nnz, 0, n)
        bad = ascending_within(a["col_idx"], a["row_ptr"])
        if bad >= 0:
            raise ValueError(f"col_idx must be strictly ascending within a row (at {bad})")

    def _row_work(self) -> np.ndarray:
        row_ptr = self._arrays["row_ptr"]
        return row_ptr + np.arange(row_ptr.size)

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        parallel, chunks = self._plan(1)
        run = _csr_matvec if parallel else _csr_matvec_serial
        run(a["values"], a["col_idx"], a["row_ptr"], x, chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        a = self._arrays
        parallel, chunks = self._plan(X.shape[1])
        run = _csr_matmat if parallel else _csr_matmat_serial
        run(a["values"], a["col_idx"], a["row_ptr"], X, chunks, out)

    @property
    def nnz(self) -> int:
        return int(self._arrays["values"].size)

    def _sizes(self) -> Sizes:
        return Sizes(self.shape, self.dtype, nnz=self.nnz)

    @classmethod
    def _sizes_of(cls, stats) -> Sizes:
        return Sizes(stats.shape, stats.dtype, nnz=stats.nnz)

    @classmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        m, n = sizes.shape
        nnz = sizes.nnz
        return [
            ArraySpec("values", nnz, "value"),
            ArraySpec("col_idx", nnz, "index", n - 1),
            ArraySpec("row_ptr", m + 1, "index", nnz),
        ]

    @classmethod
    def _op_table_of(cls, sizes: Sizes):
        m, _ = sizes.shape
        nnz = sizes.nnz
        return nnz, nnz, {"values": nnz, "col_idx": nnz, "row_ptr": m + 1}, nnz

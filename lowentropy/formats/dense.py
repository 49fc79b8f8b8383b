"""The dense format: every entry stored, products by BLAS."""

from __future__ import annotations

import numpy as np

from ..memory import check_memory
from ._checks import check_values
from .base import ArraySpec, Format, Sizes

__all__ = ["Dense"]


class Dense(Format):
    """Dense row-major storage, the baseline of every comparison.

    Arrays
    ------
    values : (m·n,) float32 or float64
        The entries in row-major order; ``-0.0`` is stored as ``+0.0``.

    Products use numpy's ``matmul`` (BLAS). Cost (SPEC §5): ``m·n`` additions and
    multiplications, ``m·n`` reads of ``values`` and of ``x``.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> d = le.Dense.from_dense(np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> d @ np.array([1.0, 1.0])
    array([1., 2.])
    """

    name = "dense"
    array_names = ("values",)

    @classmethod
    def _encode(cls, W: np.ndarray) -> Dense:
        check_memory(W.nbytes, f"a dense copy of a {W.shape[0]}×{W.shape[1]} matrix")
        values = (W + W.dtype.type(0)).reshape(-1)  # a copy, with -0.0 made +0.0
        return cls._trusted(W.shape, W.dtype, values=values)

    @classmethod
    def _encode_codes(cls, q) -> Dense:
        return cls._trusted(q.shape, q.dtype, values=q.to_dense().reshape(-1))

    def to_dense(self) -> np.ndarray:
        self._check_dense_memory()
        return self._arrays["values"].reshape(self.shape).copy()

    def _check_arrays(self) -> None:
        m, n = self.shape
        check_values("values", self._arrays["values"], m * n, self.dtype)

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        out[...] = self._arrays["values"].reshape(self.shape) @ x

    _matmat = _matvec

    def _sizes(self) -> Sizes:
        return Sizes(self.shape, self.dtype)

    @classmethod
    def _sizes_of(cls, stats) -> Sizes:
        return Sizes(stats.shape, stats.dtype)

    @classmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        m, n = sizes.shape
        return [ArraySpec("values", m * n, "value")]

    @classmethod
    def _op_table_of(cls, sizes: Sizes):
        m, n = sizes.shape
        return m * n, m * n, {"values": m * n}, m * n

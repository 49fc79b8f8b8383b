"""``Quantized``: a quantized tensor as integer codes into a codebook of values.

What a quantizer knows when it writes its result: which of few values each weight took.
Carried beside (or instead of) the dense matrix, it lets the statistics count values with
a ``bincount`` of the codes and the encoders skip rediscovering the values
(``le.stats(q)``, ``F.from_dense(q)``); ``q.to_dense()`` (or ``np.asarray(q)``) gives the
matrix whenever it is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._jit import kernel, prange
from ._validate import weight_dtype
from .memory import check_memory

if TYPE_CHECKING:  # pragma: no cover
    from .compress.error import QuantizationError

__all__ = ["Quantized", "CODE_DTYPES", "code_dtype", "take_codes"]

#: The dtypes codes may have.
CODE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))


def code_dtype(K: int) -> np.dtype:
    """The narrowest code dtype for a codebook of ``K`` values (uint8, uint16, uint32)."""
    for dtype in CODE_DTYPES:
        if K <= np.iinfo(dtype).max + 1:
            return dtype
    raise ValueError(f"a codebook of {K:,} values does not fit 32-bit codes")


@kernel(parallel=True)
def take_codes(codes, table, nch, out):  # pragma: no cover - compiled
    """``out = table[codes]`` on flat arrays, in ``nch`` chunks (decoding codes to values,
    or renumbering them)."""
    n = codes.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        src = codes[start:stop]
        dst = out[start:stop]
        for i in range(src.size):
            dst[i] = table[src[i]]


@dataclass(frozen=True, eq=False)
class Quantized:
    """A quantized tensor: ``codes`` into a ``codebook``; the tensor is ``codebook[codes]``.

    What :func:`lowentropy.quantize` returns with ``return_codes=True``. Every function of
    the library that takes a weight matrix takes a ``Quantized`` too, and the ones that
    count values use the codes: ``le.stats(q)`` (a ``bincount`` of the codes, no hashing
    of floats), ``F.from_dense(q)`` for every format. Elsewhere it converts to the dense
    tensor through ``np.asarray(q)`` (``__array__``).

    Attributes
    ----------
    codes : ndarray of uint8, uint16 or uint32
        Any shape (the tensor's); each entry indexes ``codebook``. Read-only.
    codebook : ndarray of float32 or float64, 1-D
        The values; finite, ``-0.0`` stored as ``+0.0``. Read-only. It may repeat a value
        or hold values no code uses: the statistics and the encoders merge and drop them,
        so that ``Ω`` holds exactly the tensor's values. The quantizers' codebooks are
        ascending and distinct (see :func:`lowentropy.quantize`).
    error : QuantizationError or None
        How far the tensor is from the quantizer's input (``le.quantization_error(input,
        q)``, computed in the quantizer's assignment pass), or None when not known.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> q = le.Quantized(np.array([[0, 2], [1, 0]], np.uint8), np.array([0.0, 0.5, 2.0]))
    >>> q.to_dense()
    array([[0. , 2. ],
           [0.5, 0. ]])
    >>> q.shape, q.dtype, q.K
    ((2, 2), dtype('float64'), 3)
    >>> le.stats(q).omega.tolist()
    [0.0, 0.5, 2.0]
    """

    codes: np.ndarray
    codebook: np.ndarray
    error: QuantizationError | None = None

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.dtype.newbyteorder("=") not in CODE_DTYPES:
            raise TypeError(f"codes must be an array of uint8, uint16 or uint32; got dtype "
                            f"{codes.dtype}")
        raw = np.asarray(self.codebook)
        if raw.ndim != 1:
            raise ValueError(f"codebook must be 1-D; got shape {raw.shape}")
        if raw.dtype == object or raw.dtype.kind not in "biuf":
            raise TypeError(f"codebook must hold real numbers; got dtype {raw.dtype}")
        dtype = weight_dtype(raw.dtype)
        codebook = np.array(raw, dtype=dtype) + dtype.type(0)  # a copy, -0.0 as +0.0
        if not np.isfinite(codebook).all():
            raise ValueError("codebook must hold finite values; found NaN or infinity at "
                             f"index {int(np.argmin(np.isfinite(codebook)))}")
        codes = np.array(codes, dtype=codes.dtype.newbyteorder("="), order="C")  # a copy
        if codes.size and codebook.size <= np.iinfo(codes.dtype).max:
            top = int(codes.max())
            if top >= codebook.size:
                raise ValueError(f"codes must be below the codebook's size {codebook.size}; "
                                 f"found code {top}")
        self._set(codes, codebook)

    def _set(self, codes: np.ndarray, codebook: np.ndarray) -> None:
        for arr in (codes, codebook):
            arr.flags.writeable = False
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "codebook", codebook)

    @classmethod
    def _trusted(cls, codes: np.ndarray, codebook: np.ndarray,
                 error: QuantizationError | None = None) -> Quantized:
        """From the library's own quantizers (arrays already valid, owned, contiguous)."""
        self = cls.__new__(cls)
        object.__setattr__(self, "error", error)
        self._set(codes, codebook)
        return self

    # --- the tensor ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.codes.shape

    @property
    def ndim(self) -> int:
        return self.codes.ndim

    @property
    def size(self) -> int:
        return int(self.codes.size)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the values (float32 or float64)."""
        return self.codebook.dtype

    @property
    def K(self) -> int:
        """Size of the codebook."""
        return int(self.codebook.size)

    def reshape(self, *shape) -> Quantized:
        """The same codes viewed with another shape (e.g. a convolution kernel as its
        ``F × C·kh·kw`` matrix); the codebook and the error are shared."""
        return Quantized._trusted(self.codes.reshape(*shape), self.codebook, self.error)

    def to_dense(self) -> np.ndarray:
        """The tensor ``codebook[codes]``, a new array of the codebook's dtype."""
        check_memory(self.size * self.dtype.itemsize,
                     f"the dense {'×'.join(map(str, self.shape))} tensor of quantized codes")
        out = np.empty(self.shape, self.dtype)
        if self.size:
            nch = int(min(16, max(1, self.size >> 17)))
            take_codes(self.codes.reshape(-1), self.codebook, nch, out.reshape(-1))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        dense = self.to_dense()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return (f"Quantized(shape={self.shape}, K={self.K}, codes {self.codes.dtype}, "
                f"values {self.dtype})")

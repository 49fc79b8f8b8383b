"""What every format shares: validation, products, storage and the reports.

A format class writes ``_encode``, ``to_dense``, ``_check_arrays``, its kernels
(``_matvec``/``_matmat``, with ``_row_work`` when they use ``_plan``), ``_sizes`` and
``_sizes_of`` (what its accounting depends on, from its arrays or from
:func:`lowentropy.stats`), ``_layout_of`` (its arrays as :class:`ArraySpec`) and
``_op_table_of``; everything else (storage, op counts, their statistics-only twins,
memory estimates, read-only arrays) lives here once. ``docs/formats.md`` ("Writing a new
format") lists the hooks.

Arrays have one of four roles (:class:`ArraySpec`): matrix values, integer indices,
packed fixed-width codes, or a bitstream; packed arrays are held in memory as words
(``uint32``) and accounted at the bits they hold.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from .._validate import as_operand, as_weight_matrix, index_dtype, omega_idx_dtype
from ..memory import check_memory
from ..quantized import Quantized
from ..threads import use_threads
from ._sums import row_chunks

__all__ = ["Format", "ArraySpec", "Sizes", "StorageReport", "OpCounts", "POLICIES", "ROLES",
           "index_bits", "code_bits"]

POLICIES = ("minimal", "fixed32", "ideal")

#: The roles of a stored array (see :class:`ArraySpec`).
ROLES = ("value", "index", "code", "bits")

#: Widths a packed code may have under the ``"minimal"`` policy (they divide a word).
CODE_WIDTHS = (1, 2, 4, 8, 16, 32)


def index_bits(policy: str, max_entry: int) -> int:
    """Bits per entry of an integer array whose entries are at most ``max_entry``.

    ``"fixed32"``: 32. ``"minimal"``: the smallest of 8/16/32/64 that holds
    ``max_entry``. ``"ideal"``: ``ceil(log2(max_entry + 1))``, at least 1.
    """
    max_entry = max(int(max_entry), 0)
    if policy == "fixed32":
        return 32
    if policy == "minimal":
        for bits in (8, 16, 32, 64):
            if max_entry < 1 << bits:
                return bits
        raise ValueError(f"index {max_entry} does not fit in 64 bits")
    if policy == "ideal":
        return max(1, max_entry.bit_length())
    raise ValueError(f"unknown index policy {policy!r}; choose one of {POLICIES}")


def code_bits(policy: str, max_entry: int) -> int:
    """Bits of one packed code whose values are at most ``max_entry``.

    ``"ideal"``: ``max(1, max_entry.bit_length())``. ``"minimal"``: the smallest of
    1, 2, 4, 8, 16, 32 that holds ``max_entry``. ``"fixed32"``: 32.

    Examples
    --------
    >>> code_bits("ideal", 4), code_bits("minimal", 4), code_bits("fixed32", 4)
    (3, 4, 32)
    """
    max_entry = max(int(max_entry), 0)
    if policy == "fixed32":
        if max_entry >= 1 << 32:
            raise ValueError(f"code {max_entry} does not fit in 32 bits")
        return 32
    if policy == "minimal":
        for bits in CODE_WIDTHS:
            if max_entry < 1 << bits:
                return bits
        raise ValueError(f"code {max_entry} does not fit in 32 bits")
    if policy == "ideal":
        return max(1, max_entry.bit_length())
    raise ValueError(f"unknown index policy {policy!r}; choose one of {POLICIES}")


@dataclass(frozen=True)
class ArraySpec:
    """One stored array: its name, length, role and (for integers) its largest entry.

    Roles
    -----
    ``"value"``
        Matrix values, ``value_bits`` per entry.
    ``"index"``
        Integers (indices, pointers), :func:`index_bits` per entry under the policy.
    ``"code"``
        Packed fixed-width codes, :func:`code_bits` per entry; ``length`` is the number
        of codes (held in memory as words, see :meth:`Format._memory_bytes_of`).
    ``"bits"``
        A bitstream; ``length`` counts bits, one bit per entry under every policy.
    """

    name: str
    length: int
    role: str
    max_entry: int = 0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown array role {self.role!r}; choose one of {ROLES}")

    def bits_per_entry(self, policy: str, value_bits: int) -> int:
        """Bits of one entry under ``policy`` (``value_bits`` for values)."""
        if self.role == "value":
            return value_bits
        if self.role == "index":
            return index_bits(policy, self.max_entry)
        if self.role == "code":
            return code_bits(policy, self.max_entry)
        return 1


@dataclass(frozen=True)
class Sizes:
    """What a format's storage and operation counts depend on (SPEC §4-5).

    Known from the encoded arrays, or from :func:`lowentropy.stats` without encoding.
    """

    shape: tuple[int, int]
    dtype: np.dtype
    K: int = 0  #: distinct values
    N: int = 0  #: entries different from ``ω_0``
    nnz: int = 0  #: entries different from 0
    G: int = 0  #: groups of this format
    omega0_nonzero: bool = False  #: ``ω_0 ≠ 0``
    #: Anything else a format's accounting needs (name → number), e.g. a code's bits.
    extra: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class StorageReport:
    """Bits used by every array of a format under an index policy (SPEC §4).

    Attributes
    ----------
    format : str
        The format's registry name.
    policy : str
        ``"minimal"``, ``"fixed32"`` or ``"ideal"``.
    value_bits : int
        Bits per stored value.
    shape : tuple of int
        ``(m, n)`` of the matrix.
    by_array : dict
        Array name → bits, in the order of ``arrays()``.
    bits_per_entry : dict
        Array name → bits of one entry.
    memory_dtypes : dict
        Array name → the dtype the library holds it in (and its kernels read): the
        narrowest that fits, e.g. ``uint16`` column indices when ``n <= 65536``, ``uint8``
        ``omega_idx`` when ``K <= 256``. This is the ``"minimal"`` policy in memory.
        Packed arrays (roles ``"code"`` and ``"bits"``) are words, e.g. ``uint32``.
    roles : dict
        Array name → its role: ``"value"``, ``"index"``, ``"code"`` or ``"bits"``
        (see :class:`ArraySpec`).
    """

    format: str
    policy: str
    value_bits: int
    shape: tuple[int, int]
    by_array: dict[str, int]
    bits_per_entry: dict[str, int] = field(default_factory=dict)
    memory_dtypes: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def total_bits(self) -> int:
        """Bits of all arrays together."""
        return sum(self.by_array.values())

    @property
    def total_bytes(self) -> float:
        return self.total_bits / 8

    @property
    def dense_bits(self) -> int:
        """Bits of the same matrix stored dense with the same ``value_bits``."""
        return self.shape[0] * self.shape[1] * self.value_bits

    @property
    def ratio_to_dense(self) -> float:
        """``total_bits / dense_bits`` (below 1 means smaller than dense)."""
        return self.total_bits / self.dense_bits if self.dense_bits else math.nan

    @property
    def bits_per_weight(self) -> float:
        size = self.shape[0] * self.shape[1]
        return self.total_bits / size if size else math.nan


@dataclass(frozen=True)
class OpCounts:
    """Operations of one product ``W @ X`` per input vector (SPEC §5).

    With ``batch = B`` the matrix's own arrays are read once for all ``B`` vectors, so
    their reads per vector are divided by ``B``; reads of ``x``, the arithmetic and the
    writes of ``y`` are per vector.

    Attributes
    ----------
    format : str
    batch : int
    adds, mults : float
        Additions and multiplications per input vector.
    reads : dict
        Array name (the format's arrays, then ``"x"``) → reads per input vector.
    access_bits : dict
        Array name → bits of one read (under ``policy``/``value_bits``).
    array_bytes : dict
        Array name → size of the whole array in bytes (picks the memory tier of a read).
    writes : float
        Writes of ``y`` per input vector (one per row).
    write_bits : int
    out_bytes : float
        Size of ``y`` in bytes.
    """

    format: str
    batch: int
    adds: float
    mults: float
    reads: dict[str, float]
    access_bits: dict[str, int]
    array_bytes: dict[str, float]
    writes: float
    write_bits: int
    out_bytes: float

    @property
    def total_reads(self) -> float:
        return sum(self.reads.values())


class Format(ABC):
    """Base class of the matrix formats.

    Subclasses are registered by name in :data:`lowentropy.FORMATS`; see each one's
    docstring for its arrays and invariants.
    """

    name: ClassVar[str]
    array_names: ClassVar[tuple[str, ...]]

    def __init__(self, shape: tuple[int, int], dtype, **arrays: np.ndarray) -> None:
        """Build a format from its arrays; every invariant is checked (see ``check``).

        The arrays are copied (a later change to the caller's arrays cannot break an
        invariant) into the library's in-memory dtypes (``_memory_dtype_of``): pointers
        int64, ``col_idx`` uint16/uint32, ``omega_idx`` uint8/uint16/uint32, packed codes
        and bitstreams uint32 words.
        """
        self._init(shape, dtype, arrays)
        for name, arr in self._arrays.items():
            if arr.dtype.kind in "fiu" and not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            if arr.dtype.kind == "f":
                arr = arr + arr.dtype.type(0)  # -0.0 is +0.0 (SPEC §1)
            self._arrays[name] = arr
        self.check()
        sizes = self._sizes()
        specs = {spec.name: spec for spec in self._layout_of(sizes)}
        self._arrays = {
            name: np.array(arr, dtype=self._memory_dtype_of(specs[name], sizes), order="C")
            for name, arr in self._arrays.items()
        }
        self._freeze()

    def _freeze(self) -> None:
        """Make the stored arrays read-only: no view of them can be written to."""
        for arr in self._arrays.values():
            while isinstance(arr, np.ndarray):  # the library's own arrays and their bases
                arr.flags.writeable = False
                arr = arr.base

    def _init(self, shape, dtype, arrays) -> None:
        missing = set(self.array_names) - set(arrays)
        extra = set(arrays) - set(self.array_names)
        if missing or extra:
            raise TypeError(
                f"{type(self).__name__} takes the arrays {self.array_names}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        try:
            m, n = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be a pair of integers, got {shape!r}") from None
        if m < 0 or n < 0:
            raise ValueError(f"shape must not be negative, got {shape!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self._shape = (m, n)
        self._dtype = dtype
        self._arrays = {name: np.asarray(arrays[name]) for name in self.array_names}

    @classmethod
    def _trusted(cls, shape, dtype, **arrays):
        """Build from arrays made by this library's own encoders (no re-check)."""
        self = cls.__new__(cls)
        self._init(shape, dtype, arrays)
        self._freeze()
        return self

    # --- conversion -------------------------------------------------------------------
    @classmethod
    def from_dense(cls, W) -> Format:
        """Encode a dense matrix losslessly.

        ``W`` must be 2-D, real and finite; float32 and float64 are kept, other real
        dtypes converted (see :func:`lowentropy._validate.weight_dtype`); ``-0.0`` is
        stored as ``+0.0``. A :class:`~lowentropy.Quantized` matrix is encoded from its
        codes (the values are not rediscovered); the arrays are the same as for its
        dense matrix.
        """
        if isinstance(W, Quantized):
            if W.ndim != 2:
                raise ValueError(f"W must be a 2-D matrix; got a {W.ndim}-D array of shape "
                                 f"{W.shape}")
            return cls._encode_codes(W)
        return cls._encode(as_weight_matrix(W))

    @classmethod
    @abstractmethod
    def _encode(cls, W: np.ndarray) -> Format: ...

    @classmethod
    def _encode_codes(cls, q: Quantized) -> Format:
        """Encode a 2-D quantized matrix; formats that can use the codes override this."""
        return cls._encode(q.to_dense())

    def _check_dense_memory(self, what: str = "the dense matrix") -> None:
        m, n = self.shape
        check_memory(m * n * self.dtype.itemsize, f"{what} of a {m}×{n} {self.name} matrix")

    @abstractmethod
    def to_dense(self) -> np.ndarray:
        """The dense matrix, bit-exact, in the format's dtype."""

    # --- arrays and invariants ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays by their SPEC names, in the SPEC's order (read-only views)."""
        out = {}
        for name in self.array_names:
            view = self._arrays[name].view()
            view.flags.writeable = False
            out[name] = view
        return out

    @property
    def nbytes(self) -> int:
        """Bytes the arrays take in memory (their in-memory dtypes)."""
        return sum(a.nbytes for a in self._arrays.values())

    def check(self) -> None:
        """Verify every invariant of the format; raise ``ValueError`` on the first broken.

        Run on every construction from user arrays, so that no malformed index array can
        reach a kernel.
        """
        self._check_arrays()

    @abstractmethod
    def _check_arrays(self) -> None: ...

    # --- products ----------------------------------------------------------------------
    def dot(self, x) -> np.ndarray:
        """``W @ x`` for a vector of length ``n`` or an ``n × B`` matrix.

        The result dtype follows numpy's rule for ``W.dtype`` and ``x.dtype``.
        """
        m, n = self._shape
        xc, out_dtype = as_operand(x, n, self._dtype)
        if xc.ndim == 1:
            out = np.zeros(m, out_dtype)
            if m and n:
                self._matvec(xc, out)
        else:
            out = np.zeros((m, xc.shape[1]), out_dtype)
            if m and n and xc.shape[1]:
                self._matmat(xc, out)
        return out

    def _row_work(self) -> np.ndarray:
        """Cumulative work of a product up to each row, ``(m+1,)`` from 0 (kernel formats)."""
        raise NotImplementedError

    def _plan(self, batch: int = 1) -> tuple[bool, np.ndarray]:
        """How to run a product: in parallel or not, and the row boundaries of the runs.

        Parallel when there is more than one thread and enough work (entries + groups +
        rows, times the batch; see ``lowentropy.threads.use_threads``). The runs hold equal
        work; they are computed once per thread count and kept.
        """
        threads = numba.get_num_threads()
        cached = self.__dict__.get("_chunk_cache")
        if cached is None or cached[0] != threads:
            work = self._row_work()
            cached = (threads, row_chunks(work, threads), int(work[-1]))
            self._chunk_cache = cached
        _, chunks, total = cached
        if use_threads(total * batch):
            return True, chunks
        return False, chunks[[0, -1]]

    def __matmul__(self, x) -> np.ndarray:
        return self.dot(x)

    @abstractmethod
    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None: ...

    @abstractmethod
    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None: ...

    # --- accounting --------------------------------------------------------------------
    @abstractmethod
    def _sizes(self) -> Sizes:
        """The sizes of this encoded matrix."""

    @classmethod
    @abstractmethod
    def _sizes_of(cls, stats) -> Sizes:
        """The sizes this format would have for the matrix ``stats`` describes."""

    @classmethod
    @abstractmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        """The stored arrays in SPEC order with their lengths and index ranges."""

    @classmethod
    @abstractmethod
    def _op_table_of(cls, sizes: Sizes) -> tuple[int, int, dict[str, int], int]:
        """(adds, mults, reads of the format's arrays, reads of x) for one vector."""

    @classmethod
    def _memory_dtype_of(cls, spec: ArraySpec, sizes: Sizes) -> np.dtype:
        """In-memory dtype of an array: packed arrays are ``uint32`` words."""
        if spec.role == "value":
            return np.dtype(sizes.dtype)
        if spec.role in ("code", "bits"):
            return np.dtype(np.uint32)
        if spec.name == "col_idx":
            return index_dtype(max(sizes.shape[1] - 1, 0))
        if spec.name == "omega_idx":
            return omega_idx_dtype(max(sizes.K, 1))
        return np.dtype(np.int64)

    @classmethod
    def _memory_bytes_of(cls, spec: ArraySpec, sizes: Sizes) -> int:
        """Bytes an array takes in memory: ``length`` entries of its in-memory dtype, or
        for packed arrays the words that hold ``length`` codes of the ``"minimal"`` width
        (or ``length`` bits). A format that pads (rows starting on a word) overrides it."""
        itemsize = cls._memory_dtype_of(spec, sizes).itemsize
        if spec.role in ("value", "index"):
            return spec.length * itemsize
        bits = spec.length * spec.bits_per_entry("minimal", 32)
        return -(-bits // (8 * itemsize)) * itemsize

    @classmethod
    def _scratch_bytes_of(cls, stats) -> int:
        """Bytes the encoder holds besides the arrays at its peak (e.g. the rank of every
        element); counted by :func:`lowentropy.memory.encoding_bytes`."""
        return 0

    @classmethod
    def memory_bytes_for(cls, stats) -> int:
        """Bytes the arrays of the matrix ``stats`` describes take in memory in this
        format (equal to ``from_dense(W).nbytes``), without encoding it."""
        sizes = cls._sizes_of(stats)
        return sum(cls._memory_bytes_of(s, sizes) for s in cls._layout_of(sizes))

    def storage(self, policy: str = "minimal", value_bits: int = 32) -> StorageReport:
        """Bits of every array and in total under an index ``policy`` (SPEC §4).

        Parameters
        ----------
        policy : {"minimal", "fixed32", "ideal"}
            How wide integer arrays are: smallest of 8/16/32/64 bits, always 32 bits, or
            ``ceil(log2(v + 1))`` bits for the largest possible entry ``v``.
        value_bits : int
            Bits per stored value (``values``, ``omega``).
        """
        return self._storage_of(self._sizes(), policy, value_bits)

    @classmethod
    def storage_for(cls, stats, policy: str = "minimal", value_bits: int = 32) -> StorageReport:
        """``storage`` of the matrix that ``stats`` (:func:`lowentropy.stats`) describes,
        without encoding it: equal to ``from_dense(W).storage(...)``."""
        return cls._storage_of(cls._sizes_of(stats), policy, value_bits)

    @classmethod
    def _storage_of(cls, sizes: Sizes, policy: str, value_bits: int) -> StorageReport:
        if policy not in POLICIES:
            raise ValueError(f"unknown index policy {policy!r}; choose one of {POLICIES}")
        if int(value_bits) != value_bits or value_bits < 1:
            raise ValueError(f"value_bits must be a positive integer, got {value_bits!r}")
        layout = cls._layout_of(sizes)
        widths = {s.name: s.bits_per_entry(policy, value_bits) for s in layout}
        by_array = {s.name: s.length * widths[s.name] for s in layout}
        dtypes = {s.name: str(cls._memory_dtype_of(s, sizes)) for s in layout}
        roles = {s.name: s.role for s in layout}
        return StorageReport(cls.name, policy, int(value_bits), sizes.shape, by_array, widths,
                             dtypes, roles)

    def op_counts(self, batch: int = 1, policy: str = "minimal", value_bits: int = 32) -> OpCounts:
        """Operations of the dot product per input vector (SPEC §5), from array lengths.

        Parameters
        ----------
        batch : int
            Number of input vectors multiplied together; the format's arrays are read
            once per batch.
        policy, value_bits
            Give the width of each read and the size of each array (see ``storage``).
        """
        return self._op_counts_of(self._sizes(), batch, policy, value_bits)

    @classmethod
    def op_counts_for(cls, stats, batch: int = 1, policy: str = "minimal",
                      value_bits: int = 32) -> OpCounts:
        """``op_counts`` of the matrix that ``stats`` describes, without encoding it."""
        return cls._op_counts_of(cls._sizes_of(stats), batch, policy, value_bits)

    @classmethod
    def _op_counts_of(cls, sizes: Sizes, batch: int, policy: str, value_bits: int) -> OpCounts:
        if int(batch) != batch or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        m, n = sizes.shape
        adds, mults, array_reads, x_reads = cls._op_table_of(sizes)
        report = cls._storage_of(sizes, policy, value_bits)
        reads = {name: count / batch for name, count in array_reads.items()}
        reads["x"] = float(x_reads)
        access_bits = dict(report.bits_per_entry)
        access_bits["x"] = int(value_bits)
        array_bytes = {name: bits / 8 for name, bits in report.by_array.items()}
        array_bytes["x"] = n * value_bits / 8
        return OpCounts(
            format=cls.name, batch=int(batch), adds=float(adds), mults=float(mults),
            reads=reads, access_bits=access_bits, array_bytes=array_bytes,
            writes=float(m), write_bits=int(value_bits), out_bytes=m * value_bits / 8,
        )

    # --- display -----------------------------------------------------------------------
    def __repr__(self) -> str:
        m, n = self._shape
        sizes = ", ".join(f"{k}[{v.size}]" for k, v in self._arrays.items())
        return f"<{type(self).__name__} {m}x{n} {self._dtype}: {sizes}>"

    def _repr_html_(self) -> str:
        report = self.storage()
        rows = "".join(
            f"<tr><td><code>{name}</code></td><td>{arr.size}</td><td>{arr.dtype}</td>"
            f"<td>{report.by_array[name]}</td></tr>"
            for name, arr in self._arrays.items()
        )
        m, n = self._shape
        return (
            f"<b>{type(self).__name__}</b> {m}&times;{n} {self._dtype}, "
            f"{report.total_bits} bits (minimal policy, 32-bit values; dense "
            f"{report.dense_bits})<table><tr><th>array</th><th>length</th><th>dtype</th>"
            f"<th>bits</th></tr>{rows}</table>"
        )

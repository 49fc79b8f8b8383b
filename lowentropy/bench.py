"""Side-by-side timing: candidates run interleaved, after warm-up, medians compared.

These machines are shared and noisy; timing one candidate after another lets a burst of
load hit one of them only. Here every round runs every candidate once, in a rotating
order, so that load spreads over all of them, and only medians and ratios are quoted.

On top of :func:`interleaved`:

- :func:`read_bandwidth` measures the machine's memory read bandwidth with a streaming
  read (the limit of a matrix-vector product is the bytes it reads over this bandwidth);
- :func:`bytes_read` counts the bytes one product reads;
- :func:`time_formats` times ``f @ X`` for every registered format and scipy's CSR on one
  matrix, within a time budget, and returns a :class:`BenchResult`.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._jit import kernel, prange

__all__ = [
    "Timing", "interleaved", "read_bandwidth", "bytes_read", "time_formats", "BenchResult",
    "SCIPY",
]

SCIPY = "scipy_csr"
"""Name of the ``scipy.sparse.csr_array`` baseline in :func:`time_formats` results."""


@dataclass(frozen=True)
class Timing:
    """Times of one candidate in seconds."""

    name: str
    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def ratio_to(self, other: Timing) -> float:
        """``other.median / self.median``: how many times faster than ``other``."""
        return other.median / self.median


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 7,
    warmup: int = 1,
    min_time: float = 0.0,
) -> dict[str, Timing]:
    """Time every candidate ``rounds`` times, interleaved, after ``warmup`` calls each.

    Parameters
    ----------
    candidates : mapping of name to a callable without arguments
    rounds : int
        Timed calls per candidate. Round ``r`` starts at candidate ``r mod len``.
    warmup : int
        Untimed calls per candidate first (compilation, caches).
    min_time : float
        A timed call shorter than this is repeated within its slot and the mean per call
        kept, so that very fast candidates are not timed at the clock's resolution.

    Examples
    --------
    >>> t = interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, rounds=3)
    >>> sorted(t), len(t["a"].times)
    (['a', 'b'], 3)
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            fn = candidates[name]
            calls = 0
            start = time.perf_counter()
            while True:
                fn()
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            times[name].append(elapsed / calls)
    return {name: Timing(name, tuple(times[name])) for name in names}


# --- memory read bandwidth ------------------------------------------------------------------

_LANES = 16  # independent accumulators per thread (a literal below, so LLVM vectorizes)


@kernel(parallel=True)
def _stream_read(a, nchunks):  # pragma: no cover - compiled
    """Sum of a ``(rows, 16)`` float64 array, read once, in ``nchunks`` parallel chunks."""
    rows = a.shape[0]
    chunk = (rows + nchunks - 1) // nchunks
    part = np.zeros((nchunks, 16))
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(rows, lo + chunk)
        acc = np.zeros(16)
        for r in range(lo, hi):
            for k in range(16):
                acc[k] += a[r, k]
        for k in range(16):
            part[c, k] = acc[k]
    return part.sum()


_buffer_lock = threading.Lock()
_buffer: dict[int, np.ndarray] = {}


def _read_buffer(nbytes: int) -> np.ndarray:
    """A ``(rows, 16)`` float64 buffer of about ``nbytes``, written once so that its pages
    exist (an untouched buffer would be read from the shared zero page, i.e. from cache).

    The last buffer is kept for the next call with the same size; a call with another size
    replaces it, so at most one buffer is held.
    """
    rows = max(1, int(nbytes) // (8 * _LANES))
    with _buffer_lock:
        buf = _buffer.get(rows)
        if buf is None:
            _buffer.clear()
            buf = np.ones((rows, _LANES))
            _buffer[rows] = buf
    return buf


def read_bandwidth(nbytes: int = 256 * 2**20, rounds: int = 5) -> float:
    """Memory read bandwidth of this machine in bytes per second (median of ``rounds``).

    A numba kernel streams once through a float64 buffer of ``nbytes`` with every numba
    thread (at least 2 chunks, ``prange``), each summing into 16 independent accumulators,
    so that the loop is limited by memory, not by the additions. The kernel releases the GIL.
    Keep ``nbytes`` well above the last-level cache (the default 256 MiB is) to measure
    memory rather than cache.

    The buffer is allocated and written on the first call and kept for later calls of the
    same size (one buffer at a time); the first read after its allocation is a warm-up
    and not timed.

    Parameters
    ----------
    nbytes : int
        Size of the buffer read in each round.
    rounds : int
        Timed reads; the median is returned.

    Returns
    -------
    float
        Bytes per second (``nbytes`` rounded down to a multiple of 128 bytes, over the
        median time of one read).

    Examples
    --------
    >>> bw = read_bandwidth(2**20, rounds=3)   # 1 MiB: a cache bandwidth, quick
    >>> bw > 0
    True
    """
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if int(nbytes) != nbytes or nbytes < 8 * _LANES:
        raise ValueError(f"nbytes must be an integer of at least {8 * _LANES}, got {nbytes!r}")
    import numba

    buf = _read_buffer(int(nbytes))
    nchunks = max(2, numba.get_num_threads())
    _stream_read(buf, nchunks)  # compile or load from cache, and warm the TLB
    times = []
    for _ in range(int(rounds)):
        start = time.perf_counter()
        _stream_read(buf, nchunks)
        times.append(time.perf_counter() - start)
    return buf.nbytes / statistics.median(times)


# --- bytes one product reads ----------------------------------------------------------------


def _stored_arrays(fmt) -> list[np.ndarray]:
    """The arrays a product reads: a Format's ``arrays()`` or a scipy CSR/CSC's three."""
    if hasattr(fmt, "arrays") and callable(fmt.arrays):
        return list(fmt.arrays().values())
    if all(hasattr(fmt, a) for a in ("data", "indices", "indptr")):
        return [fmt.data, fmt.indices, fmt.indptr]
    raise TypeError(
        f"bytes_read needs a lowentropy Format or a scipy.sparse CSR array, got {type(fmt)!r}"
    )


def bytes_read(fmt, batch: int = 1, *, itemsize: int | None = None) -> int:
    """Bytes one product ``fmt @ X`` reads from memory, at least.

    All of the format's arrays (``sum(a.nbytes for a in fmt.arrays().values())``, in their
    in-memory dtypes), plus the input ``X`` (``n × batch × itemsize``) plus the output
    (``m × batch × itemsize``, written, which costs a read of its cache lines too).

    This is a lower bound, the traffic of an ideal cache: every byte is counted once.
    Gathers of ``x`` (CSR, CER and CSER read ``x[j]`` once per stored entry) count as the
    one read of ``X`` when ``X`` stays in cache; when ``X`` does not fit in cache (large
    ``n × batch``), the real traffic is higher. The matrix is counted once per product
    whatever ``batch`` is, as a blocked kernel reads it.

    Parameters
    ----------
    fmt : Format or scipy.sparse CSR array
        A scipy array is counted by its ``data``, ``indices`` and ``indptr``.
    batch : int
        Number of input vectors (columns of ``X``).
    itemsize : int, optional
        Bytes per element of ``X`` and of the output; the format's dtype by default.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> c = le.CSR.from_dense(np.array([[0, 1, 0], [2, 0, 3]], dtype=np.float32))
    >>> {k: v.nbytes for k, v in c.arrays().items()}
    {'values': 12, 'col_idx': 6, 'row_ptr': 24}
    >>> bytes_read(c)        # 42 + x 3*4 + y 2*4
    62
    >>> bytes_read(c, batch=8)
    202
    """
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    arrays = _stored_arrays(fmt)
    m, n = fmt.shape
    if itemsize is None:
        itemsize = np.dtype(fmt.dtype).itemsize
    return int(sum(a.nbytes for a in arrays) + (n + m) * int(batch) * int(itemsize))


# --- timing every format ----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchResult:
    """Timings of the product ``f @ X`` of one matrix in several formats.

    Attributes
    ----------
    timings : dict
        Name (a registered format, or :data:`SCIPY`) → :class:`Timing` (seconds per product).
    bytes_read : dict
        Name → bytes one product reads (see :func:`bytes_read`).
    batch : int
        Columns of ``X`` (1: a matrix-vector product, ``X`` of shape ``(n,)``).
    shape : (int, int)
        ``(m, n)`` of the matrix.
    dtype : str
        dtype of the matrix (and of ``X``).
    rounds : int
        Timed rounds (every candidate once per round).
    """

    timings: dict[str, Timing]
    bytes_read: dict[str, int]
    batch: int
    shape: tuple[int, int]
    dtype: str = "float32"
    rounds: int = 0

    def median(self, name: str) -> float:
        """Median seconds of one product in format ``name``."""
        return self._timing(name).median

    def speedup(self, name: str, reference: str = "dense") -> float:
        """How many times faster ``name`` is than ``reference`` (ratio of medians; above 1:
        faster)."""
        return self._timing(name).ratio_to(self._timing(reference))

    def gb_per_s(self, name: str) -> float:
        """Bytes read per product over its median time, in GB/s (10**9 bytes)."""
        return self.bytes_read[name] / self.median(name) / 1e9

    def limit_share(self, name: str, bandwidth: float) -> float:
        """Share of the bandwidth limit reached: ``(bytes_read / bandwidth) / median``.

        ``bandwidth`` in bytes/s (see :func:`read_bandwidth`). 1.0 means the product runs
        as fast as reading its bytes at that bandwidth allows; above 1 happens when data
        comes from cache.
        """
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
        return self.bytes_read[name] / bandwidth / self.median(name)

    def rows(self, bandwidth: float | None = None) -> list[dict[str, Any]]:
        """One dict per candidate, in timing order.

        Keys: ``name``, ``median_s``, ``speedup_vs_dense``, ``speedup_vs_scipy`` (NaN when
        that reference was not timed), ``bytes_read``, ``GB_per_s``; with ``bandwidth``
        (bytes/s) also ``limit_share``.
        """
        out = []
        for name in self.timings:
            row: dict[str, Any] = {
                "name": name,
                "median_s": self.median(name),
                "speedup_vs_dense": self._speedup_or_nan(name, "dense"),
                "speedup_vs_scipy": self._speedup_or_nan(name, SCIPY),
                "bytes_read": self.bytes_read[name],
                "GB_per_s": self.gb_per_s(name),
            }
            if bandwidth is not None:
                row["limit_share"] = self.limit_share(name, bandwidth)
            out.append(row)
        return out

    def _speedup_or_nan(self, name: str, reference: str) -> float:
        return self.speedup(name, reference) if reference in self.timings else math.nan

    def _timing(self, name: str) -> Timing:
        try:
            return self.timings[name]
        except KeyError:
            raise KeyError(f"{name!r} was not timed; timed: {', '.join(self.timings)}") from None


_MAX_ROUNDS = 200  # enough for a stable median; keeps tiny matrices from looping forever


def _operand(W: np.ndarray, batch: int, x, seed: int) -> np.ndarray:
    m, n = W.shape
    if x is None:
        rng = np.random.default_rng(seed)
        shape = (n,) if batch == 1 else (n, batch)
        return rng.standard_normal(shape, dtype=np.float64).astype(W.dtype)
    X = np.asarray(x)
    if X.ndim not in (1, 2) or X.shape[0] != n:
        raise ValueError(f"x must have shape ({n},) or ({n}, B) for a {m}x{n} matrix, "
                         f"got {X.shape}")
    if X.dtype.kind != "f":
        raise TypeError(f"x must be a float array, got dtype {X.dtype}")
    if not np.isfinite(X).all():
        raise ValueError("x holds NaN or infinite values")
    given = 1 if X.ndim == 1 else X.shape[1]
    if batch not in (1, given):
        raise ValueError(f"batch={batch} but x has {given} column(s)")
    return np.ascontiguousarray(X)


def _encode(W: np.ndarray, formats) -> dict[str, Any]:
    from .formats import FORMATS, get_format

    if formats is None:
        formats = list(FORMATS)
    if isinstance(formats, Mapping):
        encoded = dict(formats)
        for name, f in encoded.items():
            if tuple(f.shape) != W.shape:
                raise ValueError(f"formats[{name!r}] has shape {tuple(f.shape)}, W {W.shape}")
        return encoded
    if isinstance(formats, str):
        formats = [formats]
    return {name: get_format(name).from_dense(W) for name in formats}


def _check_product(name: str, y, ref: np.ndarray, rtol: float) -> None:
    y = np.asarray(y)
    if y.shape != ref.shape:
        raise AssertionError(f"{name} @ X has shape {y.shape}, W @ X {ref.shape}")
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    err = float(np.abs(y.astype(np.float64) - ref).max()) if ref.size else 0.0
    if not err <= rtol * max(scale, np.finfo(np.float64).tiny):
        raise AssertionError(
            f"{name} @ X differs from numpy's W @ X: max abs error {err:.3g} > "
            f"{rtol:g} x max |W @ X| = {rtol * scale:.3g}"
        )


def time_formats(
    W,
    formats: Iterable[str] | Mapping[str, Any] | None = None,
    batch: int = 1,
    *,
    budget: float = 0.5,
    rounds: int | None = None,
    include_scipy: bool = True,
    x=None,
    rtol: float | None = 1e-3,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> BenchResult:
    """Time the product ``f @ X`` of ``W`` in every format, interleaved, after warm-up.

    ``W`` is encoded in every registered format (:data:`lowentropy.FORMATS`; ``"dense"``
    is :class:`lowentropy.Dense`, whose product is numpy's ``matmul``, i.e. BLAS) and, with
    ``include_scipy``, as a ``scipy.sparse.csr_array`` (named :data:`SCIPY`). Every product
    is called once untimed (compilation, caches) and checked against numpy's ``W @ X``,
    once more timed to estimate a round, then ``rounds`` interleaved rounds are timed
    (every candidate once per round, rotating which goes first).

    Parameters
    ----------
    W : array_like, 2-D
        Real and finite (NaN or infinite values raise ``ValueError``); float32 and float64
        are kept, other real dtypes converted as :meth:`Format.from_dense` does.
    formats : sequence of str, or mapping of name to encoded operand, optional
        Names of registered formats (all by default), or already encoded formats (name →
        an object with ``@``, ``shape`` and ``arrays()``, e.g. a :class:`Format`) to time
        the same encodings at several batch sizes without encoding again.
    batch : int
        Columns of ``X``: 1 gives a vector ``x`` of shape ``(n,)``, otherwise ``X`` is
        ``n × batch``.
    budget : float
        Seconds for the timed calls (the estimating call and the rounds); the number of
        rounds is chosen to fit, at least 3 (and at most 200). Encoding, the warm-up and
        the check are not part of it. About 0.5 s is enough for a matrix of a few
        million weights.
    rounds : int, optional
        Fixed number of rounds instead of the budget.
    include_scipy : bool
        Also time ``scipy.sparse.csr_array(W) @ X`` (single-threaded), a baseline.
    x : ndarray, optional
        The input, ``(n,)`` or ``(n, B)``; random standard normal of ``W``'s dtype
        (seeded by ``seed``) by default.
    rtol : float or None
        Before timing, every product must equal numpy's ``W @ X`` within
        ``rtol × max |W @ X|`` (largest absolute difference), else ``AssertionError``
        (a kernel regression is not timed). ``None`` skips the check.
    seed : int
        Seed of the random input.
    progress : callable, optional
        ``progress(done, total)``, called after each timed round (``done`` from 1 to
        ``total``, the number of rounds), e.g. to drive a progress bar.

    Returns
    -------
    BenchResult

    Notes
    -----
    Thread pools that spin between calls distort interleaved timings on a machine with few
    cores: OpenBLAS's threads (behind ``dense``) spin about 2**28 cycles after each call,
    numba's OpenMP threads 300000 rounds, and the spinning pool takes the cores the next
    candidate needs (measured on 2 cores: numba kernels up to 8x, numpy's product up to
    1.7x slower than alone). ``import lowentropy`` before numpy sets defaults that let them
    sleep soon (:mod:`lowentropy.threads`), so that every candidate is timed as it runs
    alone.

    Examples
    --------
    >>> import numpy as np
    >>> from lowentropy.synthetic import synthetic_layer
    >>> W = synthetic_layer((16, 32), keep=0.25, levels=4)
    >>> r = time_formats(W, batch=2, budget=0.05)
    >>> sorted(r.timings)
    ['cer', 'cser', 'csr', 'dense', 'efr', 'huffman', 'palette', 'scipy_csr']
    >>> r.rounds >= 3, r.speedup("dense") == 1.0
    (True, True)
    >>> sorted(r.rows()[0])
    ['GB_per_s', 'bytes_read', 'median_s', 'name', 'speedup_vs_dense', 'speedup_vs_scipy']
    """
    from ._validate import as_weight_matrix

    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    batch = int(batch)
    if rounds is not None and (int(rounds) != rounds or rounds < 1):
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    if not budget > 0:
        raise ValueError(f"budget must be positive seconds, got {budget!r}")
    W = as_weight_matrix(W)
    X = _operand(W, batch, x, seed)
    batch = 1 if X.ndim == 1 else X.shape[1]
    operands = _encode(W, formats)
    if include_scipy and SCIPY not in operands:
        import scipy.sparse

        operands[SCIPY] = scipy.sparse.csr_array(W)
    if not operands:
        raise ValueError("nothing to time: no formats and include_scipy=False")
    out_itemsize = np.result_type(W.dtype, X.dtype).itemsize
    nbytes = {name: bytes_read(f, batch, itemsize=out_itemsize) for name, f in operands.items()}
    candidates = {name: (lambda f=f: f @ X) for name, f in operands.items()}

    # warm-up and check
    ref = None if rtol is None else (W @ X).astype(np.float64, copy=False)
    for name, fn in candidates.items():
        y = fn()
        if ref is not None:
            _check_product(name, y, ref, rtol)
    del ref

    # one timed call each: the cost of a round
    estimate = interleaved(candidates, rounds=1, warmup=0)
    round_cost = sum(t.median for t in estimate.values())
    if rounds is None:
        room = budget - round_cost
        rounds = max(3, min(_MAX_ROUNDS, int(room / round_cost) if round_cost > 0 else 3))
    rounds = int(rounds)

    names = list(candidates)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        order = names[k:] + names[:k]
        one = interleaved({name: candidates[name] for name in order}, rounds=1, warmup=0)
        for name, t in one.items():
            times[name].extend(t.times)
        if progress is not None:
            progress(r + 1, rounds)
    timings = {name: Timing(name, tuple(times[name])) for name in names}
    return BenchResult(timings, nbytes, batch, W.shape, str(W.dtype), rounds)

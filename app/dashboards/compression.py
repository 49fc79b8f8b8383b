"""What the layer explorer computes for one setting, without widgets.

A dashboard holds a (:class:`lowentropy.Recipe`, :class:`Accounting`) pair: the recipe
says how to compress (pruning, quantizer), the accounting how to price the result (index
policy, value bits, energy table). ``analyse(W, recipe, accounting)`` compresses the
matrix and returns everything the views show: statistics, storage per format and per
array, operations, energy, the entropy floor and the quantization error. It never encodes
the matrix: the costs come from the statistics (``Format.storage_for`` /
``le.compare(stats)``), which is what keeps a slider on a layer of tens of millions of
weights well under a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

import lowentropy as le

__all__ = ["Accounting", "Analysis", "Compressed", "QUANTIZERS", "recipe_of", "compress",
           "compress_and_count", "price", "analyse", "value_histogram", "crop"]

QUANTIZERS = ("none", "uniform", "kmeans")


@dataclass(frozen=True)
class Accounting:
    """How the views price a compressed matrix.

    Attributes
    ----------
    policy : str
        Index width policy of the storage accounting (``le.POLICIES``).
    value_bits : int
        Bits per stored value.
    table : str
        Energy table preset (``le.PRESETS``).
    """

    policy: str = "minimal"
    value_bits: int = 32
    table: str = "horowitz45nm"

    def __post_init__(self) -> None:
        if self.policy not in le.POLICIES:
            raise ValueError(f"policy must be one of {le.POLICIES}, got {self.policy!r}")
        if isinstance(self.value_bits, bool) or not isinstance(self.value_bits, int) \
                or self.value_bits < 1:
            raise ValueError(f"value_bits must be a positive int, got {self.value_bits!r}")
        le.get_table(self.table)


def recipe_of(prune: float, quantizer: str, bits: int, clusters: int, **options) -> le.Recipe:
    """The recipe the controls say: the quantizer's own parameter only (``bits`` for
    ``"uniform"``, ``clusters`` for ``"kmeans"``); ``options`` go to the recipe."""
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {quantizer!r}")
    return le.Recipe(prune=prune, bits=bits if quantizer == "uniform" else None,
                     clusters=clusters if quantizer == "kmeans" else None, **options)


class Analysis:
    """Everything the views show for one matrix, recipe and accounting.

    ``matrix`` (the compressed matrix) is made from the quantizer's codes when first
    asked for: drawing the figures needs only its corner (:meth:`corner`)."""

    def __init__(self, recipe: le.Recipe, accounting: Accounting, matrix, stats: le.Stats,
                 rows: list, storage: dict, floor_bits: float, error: dict,
                 seconds: dict | None = None) -> None:
        self.recipe = recipe
        self.accounting = accounting
        self._matrix = matrix  # an array, or the Compressed it comes from
        self.stats = stats
        self.rows = rows  # le.CostRow per format
        self.storage = storage  # format -> le.StorageReport
        self.floor_bits = floor_bits
        self.error = error  # quantization error: rmse, relative
        self.seconds = {} if seconds is None else seconds  # step -> seconds

    @property
    def matrix(self) -> np.ndarray:
        """The compressed matrix."""
        m = self._matrix
        return m.matrix if isinstance(m, Compressed) else m

    def codes_or_matrix(self) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """The quantizer's ``(codes, codebook)`` while the dense matrix is not written yet
        (a quarter of its bytes, to send elsewhere), else the matrix."""
        m = self._matrix
        if isinstance(m, Compressed) and m.quantized is not None and m._matrix is None:
            return m.quantized.codes, m.quantized.codebook
        return self.matrix

    def corner(self, rows: int = 64, cols: int = 128) -> np.ndarray:
        """The top-left ``rows x cols`` corner of the compressed matrix (see :func:`crop`)."""
        m = self._matrix
        return m.corner(rows, cols) if isinstance(m, Compressed) else crop(m, rows, cols)


def compress(W: np.ndarray, recipe: le.Recipe) -> np.ndarray:
    """Prune, then quantize, as the recipe says (``W`` itself when neither applies)."""
    return recipe.apply(W)


class Compressed:
    """A matrix compressed by a recipe, with what depends on the recipe only: statistics
    and the quantization error (no accounting).

    ``quantized``: the quantizer's codes when the recipe quantizes; the dense ``matrix``
    is then written from them when first asked for (once), not on every slider move."""

    def __init__(self, recipe: le.Recipe, matrix: np.ndarray | None, stats: le.Stats,
                 error: dict, seconds: dict | None = None,
                 quantized: le.Quantized | None = None) -> None:
        if matrix is None and quantized is None:
            raise ValueError("Compressed needs the matrix or its quantized codes")
        self.recipe = recipe
        self.stats = stats
        self.error = error  # quantization error: rmse, relative
        self.seconds = {} if seconds is None else seconds  # step -> seconds
        self.quantized = quantized
        self._matrix = matrix
        self._lock = threading.Lock()

    @property
    def matrix(self) -> np.ndarray:
        """The compressed matrix (from the codes on first use)."""
        with self._lock:  # the timing thread and a redraw may both ask
            if self._matrix is None:
                self._matrix = self.quantized.to_dense()
            return self._matrix

    def corner(self, rows: int = 64, cols: int = 128) -> np.ndarray:
        """The top-left ``rows x cols`` corner (from the codes, without the matrix)."""
        if self._matrix is None:
            q = self.quantized
            return q.codebook[crop(q.codes, rows, cols)]
        return crop(self._matrix, rows, cols)


def compress_and_count(W: np.ndarray, recipe: le.Recipe,
                       compressed: np.ndarray | None = None) -> Compressed:
    """Compress ``W`` (unless ``compressed`` is given) and take its statistics and error:
    everything that changes with the recipe and not with the accounting. A quantizing
    recipe's matrix stays as codes until asked for (:attr:`Compressed.matrix`)."""
    t0 = time.perf_counter()
    if compressed is None and recipe.method is not None:
        # one pass prunes, quantizes to codes and measures the error; statistics count codes
        q = recipe.apply(W, return_codes=True)
        t1 = time.perf_counter()
        s = le.stats(q)
        e = q.error
        return Compressed(recipe, None, s, {"rmse": e.rmse, "relative": e.relative},
                          {"compress": t1 - t0, "stats": time.perf_counter() - t1},
                          quantized=q)
    Wc = compressed if compressed is not None else recipe.apply(W)
    t1 = time.perf_counter()
    s = le.stats(Wc)
    t2 = time.perf_counter()
    e = le.quantization_error(W, Wc)
    return Compressed(recipe, Wc, s, {"rmse": e.rmse, "relative": e.relative},
                      {"compress": t1 - t0, "stats": t2 - t1,
                       "error": time.perf_counter() - t2})


def price(c: Compressed, accounting: Accounting | None = None, formats=None) -> Analysis:
    """Storage, operations and energy of every format (``le.FORMATS`` by default) for
    compressed statistics: what changes with the accounting (no statistics computed)."""
    accounting = Accounting() if accounting is None else accounting
    names = list(le.FORMATS) if formats is None else list(formats)
    t0 = time.perf_counter()
    kw = dict(policy=accounting.policy, value_bits=accounting.value_bits)
    rows = le.compare(c.stats, names, batch=1, table=accounting.table, **kw)
    storage = {name: le.get_format(name).storage_for(c.stats, **kw) for name in names}
    clock = {**c.seconds, "accounting": time.perf_counter() - t0}
    return Analysis(c.recipe, accounting, c, c.stats, rows, storage,
                    c.stats.entropy_floor_bits(accounting.value_bits), c.error, clock)


def analyse(W: np.ndarray, recipe: le.Recipe, accounting: Accounting | None = None,
            formats=None, compressed: np.ndarray | None = None) -> Analysis:
    """Compress ``W`` (2-D) and account for every format (``le.FORMATS`` by default);
    ``compressed``: ``W`` already compressed by the recipe (e.g. by retraining the whole
    network), used as it is. ``price(compress_and_count(W, recipe), accounting)``."""
    return price(compress_and_count(W, recipe, compressed), accounting, formats)


def value_histogram(W: np.ndarray, bins: int = 120, sample: int = 2_000_000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the weights (a fixed random sample of at most ``sample`` of them,
    scaled up to the full count), as ``(centres, counts)``."""
    flat = W.reshape(-1)
    scale = 1.0
    if flat.size > sample:
        idx = np.random.default_rng(seed).integers(0, flat.size, sample)
        scale = flat.size / sample
        flat = flat[idx]
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return np.zeros(0), np.zeros(0)
    counts, edges = np.histogram(finite, bins=bins)
    return (edges[:-1] + edges[1:]) / 2, counts * scale


def crop(W: np.ndarray, rows: int = 64, cols: int = 128) -> np.ndarray:
    """The top-left ``rows x cols`` corner of the matrix (what the matrix picture shows)."""
    return W[:rows, :cols]

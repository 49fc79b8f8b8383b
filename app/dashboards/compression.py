"""What the layer explorer computes for one setting, without widgets.

``Setting`` is what the controls say (pruning, quantizer, accounting options);
``analyse(W, setting)`` prunes and quantizes the matrix and returns everything the views
show: statistics, storage per format and per array, operations, energy, the entropy
floor, the value histogram and a crop of the matrix. It never encodes the matrix: the
costs come from the statistics (``Format.storage_for`` / ``le.compare(stats)``), which is
what keeps a slider on a layer of tens of millions of weights well under a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import lowentropy as le

__all__ = ["Setting", "Analysis", "QUANTIZERS", "compress", "analyse", "value_histogram", "crop"]

QUANTIZERS = ("none", "uniform", "kmeans")


@dataclass(frozen=True)
class Setting:
    """The controls of the explorer.

    Attributes
    ----------
    prune : float
        Fraction of weights set to zero by magnitude, in ``[0, 1)``.
    quantizer : {"none", "uniform", "kmeans"}
    bits : int
        Bits of the uniform quantizer (``2^bits - 1`` levels, 0 one of them).
    clusters : int
        Shared values of k-means weight sharing (plus 0 when pruned).
    policy : str
        Index width policy of the storage accounting (``le.POLICIES``).
    value_bits : int
        Bits per stored value.
    table : str
        Energy table preset (``le.PRESETS``).
    """

    prune: float = 0.0
    quantizer: str = "kmeans"
    bits: int = 5
    clusters: int = 32
    policy: str = "minimal"
    value_bits: int = 32
    table: str = "horowitz45nm"

    def describe(self) -> str:
        q = {"none": "not quantized", "uniform": f"uniform {self.bits} bits",
             "kmeans": f"k-means {self.clusters} values"}[self.quantizer]
        return f"{self.prune:.0%} pruned, {q}"


@dataclass
class Analysis:
    """Everything the views show for one matrix and setting."""

    setting: Setting
    matrix: np.ndarray  # the compressed matrix
    stats: le.Stats
    rows: list  # le.CostRow per format
    storage: dict  # format -> le.StorageReport
    floor_bits: float
    error: dict  # quantization error: rmse, relative
    seconds: dict = field(default_factory=dict)  # step -> seconds


def compress(W: np.ndarray, setting: Setting) -> np.ndarray:
    """Prune, then quantize, as the setting says (``W`` itself when neither applies)."""
    if setting.quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {setting.quantizer!r}")
    out = W
    if setting.prune > 0:
        out = le.prune(out, setting.prune)
    if setting.quantizer == "uniform":
        out = le.quantize(out, method="uniform", bits=setting.bits)
    elif setting.quantizer == "kmeans":
        out = le.quantize(out, method="kmeans", clusters=setting.clusters)
    return out


def analyse(W: np.ndarray, setting: Setting, formats=None) -> Analysis:
    """Compress ``W`` (2-D) and account for every format (``le.FORMATS`` by default)."""
    names = list(le.FORMATS) if formats is None else list(formats)
    t0 = time.perf_counter()
    if setting.quantizer in ("uniform", "kmeans"):
        # one pass prunes, quantizes to codes and measures the error; statistics count codes
        kw = {"bits": setting.bits} if setting.quantizer == "uniform" else {
            "clusters": setting.clusters}
        q = le.quantize(W, setting.quantizer, prune=setting.prune, return_codes=True, **kw)
        t1 = time.perf_counter()
        s = le.stats(q)
        e = q.error
    else:
        q = None
        Wc = compress(W, setting)
        t1 = time.perf_counter()
        s = le.stats(Wc)
    t2 = time.perf_counter()
    kw = dict(policy=setting.policy, value_bits=setting.value_bits)
    rows = le.compare(s, names, batch=1, table=setting.table, **kw)
    storage = {name: le.get_format(name).storage_for(s, **kw) for name in names}
    t3 = time.perf_counter()
    if q is None:
        e = le.quantization_error(W, Wc)
    else:
        Wc = q.to_dense()  # the matrix the views crop, time and evaluate
    error = {"rmse": e.rmse, "relative": e.relative}
    clock = {"compress": t1 - t0, "stats": t2 - t1, "accounting": t3 - t2,
             "error" if q is None else "dense": time.perf_counter() - t3}
    return Analysis(setting, Wc, s, rows, storage, s.entropy_floor_bits(setting.value_bits),
                    error, clock)


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

"""The dashboards' logic that needs no widgets: plain-words notes, timing within memory
limits, and test accuracy before and after compression.

Everything here is a function of numbers and networks, tested without building a
dashboard; the widget classes only call it and draw the results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

import lowentropy as le
from lowentropy.bench import time_formats
from lowentropy.memory import encoding_bytes

__all__ = ["MAX_TIMING_BYTES", "fmt_bytes", "shared_values_note", "time_within_limits",
           "accuracy_or_none", "with_layer", "fmt_ratio"]

#: Formats whose arrays would take more memory than this are not timed (the statistics
#: tell their size before encoding); ``LOWENTROPY_MAX_TIMING_MB``, 256 MB by default.
MAX_TIMING_BYTES = int(os.environ.get("LOWENTROPY_MAX_TIMING_MB", "256")) * 2**20


def fmt_bytes(nbytes: float) -> str:
    """``1536`` → ``'1.54 kB'`` (decimal units).

    Examples
    --------
    >>> fmt_bytes(999), fmt_bytes(1536), fmt_bytes(2.5e9)
    ('999 B', '1.54 kB', '2.5 GB')
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def fmt_ratio(ratio: float) -> str:
    """A speed-up as the time panel labels it: one decimal from 1 on, two significant
    digits below (a format 50 times slower than dense reads ``×0.02``, not ``×0.0``).

    Examples
    --------
    >>> fmt_ratio(12.345), fmt_ratio(1.0), fmt_ratio(0.25), fmt_ratio(0.0213)
    ('×12.3', '×1.0', '×0.25', '×0.021')
    """
    return f"×{ratio:.1f}" if ratio >= 0.95 else f"×{ratio:.2g}"


def shared_values_note(stats: le.Stats, rows: Sequence[le.CostRow]) -> str:
    """Plain words on why CER and CSER cannot help when the weights share no values
    (e.g. not quantized), or ``""`` when they do share values.

    Parameters
    ----------
    stats : lowentropy.Stats
        Statistics of the (compressed) matrix.
    rows : sequence of lowentropy.CostRow
        ``le.compare(stats)``: whether CER/CSER take more room than CSR.

    Examples
    --------
    >>> W = np.arange(1, 5001, dtype=np.float32).reshape(50, 100)  # 5000 distinct values
    >>> s = le.stats(W)
    >>> "Quantize" in shared_values_note(s, le.compare(s))
    True
    >>> s = le.stats(le.quantize(W, method="kmeans", clusters=8))
    >>> shared_values_note(s, le.compare(s))
    ''
    """
    shared = stats.K - 1  # values besides ω₀
    if shared <= 256 or stats.N >= 4 * shared:
        return ""
    bits = {r.format: r.storage_bits for r in rows}
    worse = [f.upper() for f in ("cer", "cser") if f in bits and "csr" in bits
             and bits[f] >= bits["csr"]]
    verdict = (f"{' and '.join(worse)} {'take' if len(worse) > 1 else 'takes'} more room "
               "than CSR here. " if worse else "")
    return (f"No shared values: the {stats.N:,} stored entries hold {shared:,} distinct "
            f"values besides ω₀ ({stats.N / shared:.1f} entries per value on average), so "
            f"CER and CSER have nothing to share. They store each row as one group per "
            f"distinct value in it (a pointer each, for CSER also a value index; CER also "
            f"pays empty groups for the values a row lacks), which costs more than they "
            f"save. {verdict}Quantize (uniform or k-means) to a few values to see them help.")


def time_within_limits(W: np.ndarray, stats: le.Stats, *, batch: int, budget: float,
                       progress: Callable[[int, int], object] | None = None,
                       limit: int | None = None, check: Callable[[], object] | None = None):
    """Time ``W @ x`` in every format whose encoding fits in ``limit`` bytes.

    Returns ``(result, notes)``: the ``time_formats`` result of the formats that could be
    encoded, and per format left out why (its predicted size over ``limit``, or the
    library's memory-budget message). Dense, the reference, is always timed.
    ``check()``, when given, is called before each encoding (it may raise to stop).
    """
    limit = MAX_TIMING_BYTES if limit is None else int(limit)
    encoded, notes = {}, {}
    for name in le.FORMATS:
        if check is not None:
            check()
        fmt = le.get_format(name)
        need = encoding_bytes(stats, fmt)
        if name != "dense" and need > limit:
            notes[name] = (f"not timed: encoding it would take {fmt_bytes(need)}, over the "
                           f"timing limit of {fmt_bytes(limit)} (LOWENTROPY_MAX_TIMING_MB)")
            continue
        try:
            encoded[name] = fmt.from_dense(W)
        except MemoryError as exc:  # the library's MemoryBudgetError: a readable message
            notes[name] = f"not timed: {exc}"
    if "dense" not in encoded:
        return None, notes
    result = time_formats(W, encoded, batch=batch, budget=budget, progress=progress,
                          include_scipy="csr" in encoded)
    return result, notes


def accuracy_or_none(network: le.Network) -> float | None:
    """``le.accuracy(network)``, or ``None`` for a network without test data.

    Examples
    --------
    >>> accuracy_or_none(le.load_network("lenet-300-100")) > 0.9
    True
    >>> accuracy_or_none(le.Network("x", [le.Layer("fc", np.ones((2, 3), np.float32))])) is None
    True
    """
    if not hasattr(le, "accuracy"):
        return None
    try:
        return le.accuracy(network)
    except (ValueError, KeyError, NotImplementedError):
        return None


def with_layer(network: le.Network, layer: str, Wc: np.ndarray) -> le.Network:
    """``network`` with its layer ``layer`` replaced by the matrix ``Wc`` (reshaped to the
    layer's weight): one layer compressed, the others as they are."""
    return le.Network(network.name, [
        lay.with_weight(Wc.reshape(lay.weight.shape)) if lay.name == layer else lay
        for lay in network.layers], source=network.source, description=network.description)

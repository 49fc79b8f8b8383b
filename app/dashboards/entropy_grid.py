"""What the entropy map computes, without widgets: a grid of synthetic matrices and the
costs of every format on each.

Each grid cell is the matrix ``synthetic_layer(shape, keep=1 - sparsity, levels=K,
seed=seed)`` of :mod:`lowentropy.synthetic`. Calling it and ``le.stats`` per cell costs
about 16 ms at 256 × 1024, too slow for a live 12 × 12 map, so :func:`cell_stats` and
:func:`stats_grid` compute the same :class:`lowentropy.Stats` directly and share the work
between cells: the Gaussian matrix of one seed is drawn and sorted by magnitude once;
the survivors of a pruning level are a prefix of that order; one quantization is a
``rint`` over the survivors and one ``bincount`` of (row, level) pairs. The result is
equal, field by field, to ``le.stats(synthetic_layer(...))`` (the tests check it), and
``le.compare(stats, ...)`` then gives storage, operations and energy of every format
without encoding anything.

Measured time needs the real matrices: :func:`time_cells` builds them with
``synthetic_layer`` and times them with ``lowentropy.bench.time_formats``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import lowentropy as le
from lowentropy.bench import time_formats
from lowentropy.stats import entropy_of_counts
from lowentropy.synthetic import synthetic_layer

__all__ = [
    "METRICS", "sparsity_axis", "levels_axis", "cell_stats", "stats_grid", "CostGrid",
    "cost_grid", "entropy_rows", "time_cells", "Progress",
]

#: Metric key → (label, unit). Lower is better for all of them.
METRICS = {
    "storage": ("storage", "bits"),
    "ops": ("operations (adds + mults)", "ops"),
    "energy": ("energy", "pJ"),
    "time": ("measured time", "s"),
}

Progress = Callable[[int, int], object]


def sparsity_axis(resolution: int, top: float = 0.98) -> np.ndarray:
    """``resolution`` sparsities evenly spaced from 0 to ``top`` (shares of zeros).

    Examples
    --------
    >>> sparsity_axis(3).tolist()
    [0.0, 0.49, 0.98]
    """
    _check_resolution(resolution)
    if not 0 < top < 1:
        raise ValueError(f"top sparsity must be in (0, 1), got {top!r}")
    return np.round(np.linspace(0.0, top, int(resolution)), 6)


def levels_axis(resolution: int, low: int = 2, high: int = 256) -> np.ndarray:
    """About ``resolution`` numbers of shared values, geometrically spaced from ``low`` to
    ``high`` (integers, without repeats: fewer than ``resolution`` when the range is small).

    Examples
    --------
    >>> levels_axis(5).tolist()
    [2, 7, 23, 76, 256]
    """
    _check_resolution(resolution)
    if not 2 <= low <= high:
        raise ValueError(f"levels need 2 <= low <= high, got low={low}, high={high}")
    return np.unique(np.round(np.geomspace(low, high, int(resolution))).astype(np.int64))


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer of at least 2, got {resolution!r}")


def _check_shape(shape) -> tuple[int, int]:
    try:
        m, n = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair (m, n), got {shape!r}") from None
    if m < 1 or n < 1:
        raise ValueError(f"shape must be positive, got {shape!r}")
    return m, n


# --- the shared Gaussian -------------------------------------------------------------------


@dataclass(frozen=True)
class _Base:
    """The Gaussian of one (shape, seed), as ``synthetic_layer`` draws it, sorted by
    decreasing magnitude (stable: ties keep their position order)."""

    shape: tuple[int, int]
    flat: np.ndarray  # float32, C order
    values: np.ndarray  # flat[order]
    rows: np.ndarray  # row of each entry of ``values``
    neg_mag: np.ndarray  # -|values|, ascending
    absmax: float
    survivors: dict = field(default_factory=dict)  # n_survivors → split survivors


@functools.lru_cache(maxsize=3)
def _base(shape: tuple[int, int], seed: int) -> _Base:
    rng = np.random.default_rng(seed)
    flat = rng.standard_normal(shape, dtype=np.float32).reshape(-1)
    mag = np.abs(flat)
    order = np.argsort(-mag, kind="stable")
    return _Base(shape, flat, flat[order], (order // shape[1]).astype(np.int64), -mag[order],
                 float(mag.max()) if mag.size else 0.0)


def _n_survivors(base: _Base, keep: float) -> int:
    """Entries ``synthetic_layer`` keeps: magnitude at least the pruning threshold."""
    size = base.flat.size
    n_keep = int(round(keep * size))
    if n_keep >= size:
        return size
    if n_keep == 0:
        return 0
    threshold = -base.neg_mag[n_keep - 1]  # the n_keep-th largest magnitude
    return int(np.searchsorted(base.neg_mag, -threshold, side="right"))


def _split(base: _Base, count: int, stride: int):
    """Positive and negative survivors (values, row × stride) of a pruning level; the last
    two are kept, as a grid goes through its pruning levels one column at a time."""
    key = (count, stride)
    found = base.survivors.get(key)
    if found is None:
        v, r = base.values[:count], base.rows[:count] * stride
        pos, neg = v > 0, v < 0
        found = (v[pos], r[pos], v[neg], r[neg])
        if len(base.survivors) >= 2:
            base.survivors.clear()
        base.survivors[key] = found
    return found


def _side(values: np.ndarray, n_side: int):
    """Codes and level values of one side, exactly as ``synthetic_layer`` rounds them."""
    lo, hi = float(values.min()), float(values.max())
    step = (hi - lo) / max(n_side - 1, 1)
    if step:
        codes = np.rint((values - lo) / step).astype(np.int64)
        levels = (lo + np.arange(int(codes.max()) + 1).astype(np.float32) * step)
    else:
        codes = np.zeros(values.size, np.int64)
        levels = np.array([lo])
    return codes, levels.astype(np.float32)


def _histogram(base: _Base, keep: float, levels: int, stride: int):
    """Counts per (row, class) and the value of each class, for one cell.

    Class 0 is zero; then the positive levels, then the negative ones. ``stride`` (at least
    ``levels + 3``) is the number of class slots per row.
    """
    m, n = base.shape
    if keep == 1:  # synthetic_layer's unpruned branch: a uniform grid with zero a level
        half = levels // 2
        step = base.absmax / max(half, 1)
        codes = np.clip(np.rint(base.flat / step), -half, levels - half - 1).astype(np.int64)
        rows = np.repeat(np.arange(m, dtype=np.int64) * stride, n)
        hist = np.bincount(rows + codes + half, minlength=m * stride).reshape(m, stride)
        values = np.zeros(stride, np.float32)
        values[:levels] = np.arange(-half, levels - half).astype(np.float32) * step
        return hist, values
    pv, pr, nv, nr = _split(base, _n_survivors(base, keep), stride)
    values = np.zeros(stride, np.float32)  # class 0: zero
    parts = []
    offset = 1
    for side_values, side_rows, n_side in ((pv, pr, levels - levels // 2),
                                           (nv, nr, levels // 2)):
        if side_values.size:
            codes, vals = _side(side_values, n_side)
            if offset + vals.size > stride:
                raise AssertionError(f"{vals.size} levels on one side exceed the class slots")
            parts.append(side_rows + (offset + codes))
            values[offset:offset + vals.size] = vals
            offset += vals.size
    index = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    hist = np.bincount(index, minlength=m * stride).reshape(m, stride)
    hist[:, 0] = n - hist[:, 1:].sum(axis=1)
    return hist, values


def _stats_of(shape: tuple[int, int], hist: np.ndarray, values: np.ndarray) -> le.Stats:
    """``le.Stats`` of a matrix given its per-row counts of each class value."""
    totals = hist.sum(axis=0)
    used = np.flatnonzero(totals)
    hist, values = hist[:, used], values[used]
    unique, inverse = np.unique(values, return_inverse=True)  # -0.0 == 0.0; merges repeats
    if unique.size < values.size:
        merged = np.zeros((hist.shape[0], unique.size), hist.dtype)
        np.add.at(merged.T, inverse, hist.T)
        hist, values = merged, unique
    counts = hist.sum(axis=0).astype(np.int64)
    order = np.lexsort((values, -counts))  # decreasing count, ties by ascending value
    omega, counts, hist = values[order], counts[order], hist[:, order]
    omega = np.where(omega == 0, np.float32(0), omega).astype(np.float32)
    present = hist > 0
    present[:, :1] = False  # ω0 is not stored
    ranks = np.arange(omega.size, dtype=np.int64)
    zero = np.flatnonzero(omega == 0)
    size = shape[0] * shape[1]
    return le.Stats(
        shape=shape, dtype=np.dtype(np.float32), omega=omega, counts=counts,
        H=entropy_of_counts(counts), N=int(size - counts[0]) if counts.size else 0,
        zeros=int(counts[zero[0]]) if zero.size else 0,
        groups_cer=np.where(present, ranks, 0).max(axis=1, initial=0).astype(np.int64),
        groups_cser=present.sum(axis=1).astype(np.int64),
    )


def _check_cell(sparsity: float, levels: int) -> tuple[float, int]:
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    if isinstance(levels, bool) or int(levels) != levels or levels < 2:
        raise ValueError(f"levels (shared values K) must be an integer >= 2, got {levels!r}")
    return float(sparsity), int(levels)


def cell_stats(shape: tuple[int, int], sparsity: float, levels: int, seed: int = 0) -> le.Stats:
    """``le.stats(synthetic_layer(shape, keep=1 - sparsity, levels=levels, seed=seed))``,
    computed without building the matrix (float32).

    Examples
    --------
    >>> import lowentropy as le
    >>> from lowentropy.synthetic import synthetic_layer
    >>> fast = cell_stats((32, 64), 0.7, 8)
    >>> slow = le.stats(synthetic_layer((32, 64), keep=1 - 0.7, levels=8))
    >>> fast.K, fast.N, fast.H == slow.H, fast.groups_cer.tolist() == slow.groups_cer.tolist()
    (9, 614, True, True)
    """
    shape = _check_shape(shape)
    sparsity, levels = _check_cell(sparsity, levels)
    return _stats_of(shape, *_histogram(_base(shape, int(seed)), 1 - sparsity, levels,
                                         levels + 3))


def stats_grid(
    shape: tuple[int, int],
    sparsities: Sequence[float],
    levels: Sequence[int],
    seed: int = 0,
    progress: Progress | None = None,
) -> np.ndarray:
    """Stats of every cell: an object array ``[len(levels), len(sparsities)]`` (rows: the
    number of shared values, columns: the sparsity), each :func:`cell_stats`.

    ``progress(done, total)`` is called after each column.

    Examples
    --------
    >>> g = stats_grid((16, 32), [0.0, 0.5], [2, 4, 8])
    >>> g.shape, g[2, 1].K
    ((3, 2), 9)
    """
    shape = _check_shape(shape)
    cells = [[_check_cell(s, k) for s in sparsities] for k in levels]
    if not cells or not cells[0]:
        raise ValueError("the grid needs at least one sparsity and one number of values")
    base = _base(shape, int(seed))
    out = np.empty((len(levels), len(sparsities)), dtype=object)
    stride = max(k for row in cells for _, k in row) + 3
    for j in range(len(sparsities)):
        for i in range(len(levels)):
            s, k = cells[i][j]
            out[i, j] = _stats_of(shape, *_histogram(base, 1 - s, k, stride))
        if progress is not None:
            progress(j + 1, len(sparsities))
    base.survivors.clear()
    return out


# --- costs of every format ---------------------------------------------------------------------


@dataclass(frozen=True)
class CostGrid:
    """Storage, operations and energy of every format in every cell.

    Attributes
    ----------
    formats : list of str
        Format names (``le.FORMATS`` order): the first axis of the arrays.
    values : dict
        Metric (``"storage"`` bits, ``"ops"`` adds + mults, ``"energy"`` pJ per input
        vector) → float array ``[format, row, column]``.
    seconds : float
        Time taken by :func:`cost_grid`.
    """

    formats: list[str]
    values: dict[str, np.ndarray]
    seconds: float = 0.0

    def winner(self, metric: str) -> np.ndarray:
        """Index (into :attr:`formats`) of the cheapest format of each cell; the first
        in ``formats`` order on a tie; -1 where the cell is empty (NaN)."""
        return winners(self.values[metric])


def winners(values: np.ndarray) -> np.ndarray:
    """Index of the smallest value along the first axis, -1 where all are NaN.

    Examples
    --------
    >>> winners(np.array([[3.0, np.nan], [2.0, np.nan], [2.0, np.nan]])).tolist()
    [1, -1]
    """
    values = np.asarray(values, dtype=np.float64)
    empty = np.isnan(values).all(axis=0)
    best = np.argmin(np.where(np.isnan(values), np.inf, values), axis=0)
    return np.where(empty, -1, best)


def cost_grid(
    grid: np.ndarray,
    *,
    policy: str = "minimal",
    value_bits: int = 32,
    batch: int = 1,
    table: str = "horowitz45nm",
) -> CostGrid:
    """``le.compare(stats, policy=..., value_bits=..., batch=..., table=...)`` of every cell
    of a :func:`stats_grid` (``None`` cells stay NaN), arranged by metric.

    Examples
    --------
    >>> c = cost_grid(stats_grid((16, 32), [0.0, 0.9], [4, 256]))
    >>> c.formats == list(le.FORMATS), c.values["storage"].shape == (len(le.FORMATS), 2, 2)
    (True, True)
    >>> [[c.formats[k] for k in row] for row in c.winner("storage")]
    [['palette', 'cer'], ['palette', 'csr']]
    """
    start = time.perf_counter()
    grid = np.asarray(grid, dtype=object)
    if grid.ndim != 2:
        raise ValueError(f"grid must be a 2-D array of Stats, got {grid.ndim} dimension(s)")
    formats = list(le.FORMATS)
    values = {key: np.full((len(formats), *grid.shape), np.nan)
              for key in ("storage", "ops", "energy")}
    for (i, j), s in np.ndenumerate(grid):
        if s is None:
            continue
        rows = le.compare(s, formats, policy=policy, value_bits=value_bits, batch=batch,
                          table=table)
        for f, row in enumerate(rows):
            values["storage"][f, i, j] = row.storage_bits
            values["ops"][f, i, j] = row.ops
            values["energy"][f, i, j] = row.energy_pj
    return CostGrid(formats, values, time.perf_counter() - start)


def entropy_rows(grid: np.ndarray, bins: Sequence[float]) -> np.ndarray:
    """For each entropy ``bins`` centre and grid column, the row of the cell whose entropy
    is nearest, or -1 when none lies within half a bin (the sparsity does not allow that
    entropy). Returns an int array ``[len(bins), columns]``.

    Examples
    --------
    >>> g = stats_grid((16, 32), [0.0, 0.9], [2, 4, 16])
    >>> [[round(g[i, j].H, 2) for j in range(2)] for i in range(3)]
    [[0.26, 0.63], [1.43, 0.63], [3.28, 0.81]]
    >>> entropy_rows(g, [0.5, 1.5, 2.5, 3.5]).tolist()
    [[0, 0], [1, -1], [-1, -1], [2, -1]]
    """
    bins = np.asarray(bins, dtype=np.float64)
    if bins.ndim != 1 or bins.size < 1 or np.any(np.diff(bins) <= 0):
        raise ValueError("entropy bins must be an ascending 1-D sequence")
    half = (np.diff(bins).min() if bins.size > 1 else 1.0) / 2
    H = np.array([[s.H if s is not None else np.nan for s in row] for row in grid])
    gap = np.abs(H[None, :, :] - bins[:, None, None])  # [bin, row, column]
    gap = np.where(np.isnan(gap), np.inf, gap)
    best = np.argmin(gap, axis=1)
    near = np.take_along_axis(gap, best[:, None, :], axis=1)[:, 0, :] <= half + 1e-12
    return np.where(near, best, -1)


# --- measured time ---------------------------------------------------------------------------


def time_cells(
    shape: tuple[int, int],
    cells: Sequence[tuple[float, int]],
    *,
    seed: int = 0,
    batch: int = 1,
    budget: float = 0.1,
    cache: dict | None = None,
    progress: Progress | None = None,
) -> dict[tuple[float, int], dict[str, float]]:
    """Median seconds of ``f @ X`` per format (and scipy's CSR) for each (sparsity, levels)
    cell, measured with ``lowentropy.bench.time_formats`` on the real synthetic matrix.

    ``cache`` (a dict) keeps results keyed by ``(shape, seed, batch, sparsity, levels)``:
    a cell measured once is not measured again. ``progress(done, total)`` is called after
    each cell.

    Examples
    --------
    >>> t = time_cells((16, 32), [(0.5, 4)], budget=0.01)
    >>> sorted(t[(0.5, 4)]) == sorted([*le.FORMATS, "scipy_csr"])
    True
    """
    shape = _check_shape(shape)
    if not budget > 0:
        raise ValueError(f"budget must be positive seconds, got {budget!r}")
    cache = {} if cache is None else cache
    out = {}
    cells = [_check_cell(s, k) for s, k in cells]
    for done, (s, k) in enumerate(cells, start=1):
        key = (shape, int(seed), int(batch), s, k)
        if key not in cache:
            W = synthetic_layer(shape, keep=1 - s, levels=k, seed=int(seed))
            result = time_formats(W, batch=int(batch), budget=budget)
            cache[key] = {name: result.median(name) for name in result.timings}
        out[(s, k)] = cache[key]
        if progress is not None:
            progress(done, len(cells))
    return out

"""Exact selection of the smallest magnitudes of one or more float arrays, without sorting
(the engine of :mod:`.pruning`).

For a non-negative float, the bit pattern read as an integer (the *key*) grows with the
value, so selecting the ``k`` smallest magnitudes is selecting the ``k`` smallest keys.
The search keeps a key range ``[lo, hi]`` known to hold the ``k``-th smallest key, and the
number of keys below it:

1. for at least 16 x 65536 entries, a sample of 65536 keys (evenly spaced runs of 8
   neighbours, sorted) proposes a narrow range around the wanted quantile; one counting
   pass checks it (and that every weight is finite). If the sample misled it, the counts
   still tell which side the key is on;
2. while the range holds many keys, a histogram pass over it (65536 bins) narrows it to
   one bin;
3. the entries inside the range are collected with their keys, and a counting pass over
   those alone finds the exact threshold key ``t`` and how many entries of key ``t`` go,
   hence the position ``cut`` of the last of them in flat order. When the range is a
   single key, the collection is skipped: the counts per chunk tell which chunk holds
   that position, and one scan of that chunk finds it.

The selection is the rule ``(t, cut)``: an entry is pruned exactly when its key is below
``t``, or equal to ``t`` at a position up to ``cut`` (:func:`select_threshold`). One pass
writes the pruned copy (:func:`prune_flat`); the quantizers apply the rule on the fly
instead, without writing it. Every step is exact; sampling only decides how fast the
range shrinks.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel, prange
from ._common import KEY, n_chunks

__all__ = ["prune_flat", "select_threshold", "write_pruned", "NonFinite"]

_SAMPLE = 1 << 16  # sample size for the first guess of the threshold
_RUN = 8  # the sample is taken in runs of this many neighbours
_BINS_LOG2 = 16  # histogram passes use at most 2**16 bins


# --- kernels ------------------------------------------------------------------------------
# Every kernel cuts the flat array into ``nch`` equal chunks (the last one shorter) and
# loops over slices with ``range(seg.size)``: an index numba knows to be non-negative, so
# the simple loops vectorize. A key is in ``[lo, lo + span]`` exactly when
# ``(key - lo) & mask <= span`` (a key below ``lo`` wraps to above any possible span):
# one comparison instead of two, and the same in numba and in plain Python.

@kernel(parallel=True)
def _prune_count(bits, mask, lo, hi, maxfinite, nch, out):  # pragma: no cover - compiled
    """Per chunk: keys below ``lo``, keys in ``[lo, hi]``, keys above ``maxfinite``."""
    n = bits.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        seg = bits[start:min(n, start + chunk)]
        below = 0
        upto = 0
        bad = 0
        for i in range(seg.size):
            key = seg[i] & mask
            below += key < lo
            upto += key <= hi
            bad += key > maxfinite
        out[c, 0] = below
        out[c, 1] = upto - below
        out[c, 2] = bad


@kernel(parallel=True)
def _prune_count_extremes(bits, mask, lo, hi, maxfinite, nch, out,
                          ext):  # pragma: no cover - compiled
    """:func:`_prune_count`, and per chunk in ``ext``: the smallest and largest *signed
    key* (``b ^ ((b >> 63) & mask)`` of the bit pattern ``b`` sign-extended to 64 bits:
    it orders the floats) of the non-zero entries, and the number of zero entries."""
    n = bits.size
    chunk = (n + nch - 1) // nch
    big = np.int64(0x7FFFFFFFFFFFFFFF)
    for c in prange(nch):
        start = min(n, c * chunk)
        seg = bits[start:min(n, start + chunk)]
        below = 0
        upto = 0
        bad = 0
        zeros = 0
        smallest = big
        largest = -big
        for i in range(seg.size):
            b = np.int64(seg[i])
            key = b & mask
            below += key < lo
            upto += key <= hi
            bad += key > maxfinite
            signed = b ^ ((b >> 63) & mask)
            nz = key != 0
            zeros += not nz
            smallest = min(smallest, signed if nz else big)
            largest = max(largest, signed if nz else -big)
        out[c, 0] = below
        out[c, 1] = upto - below
        out[c, 2] = bad
        ext[c, 0] = smallest
        ext[c, 1] = largest
        ext[c, 2] = zeros


@kernel(parallel=True)
def _prune_histogram(bits, mask, lo, span, shift, nch, hist):  # pragma: no cover - compiled
    """Per chunk, histogram of the keys in ``[lo, lo + span]``: bin ``(key - lo) >> shift``."""
    n = bits.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        seg = bits[start:min(n, start + chunk)]
        h = hist[c]
        for i in range(seg.size):
            d = ((seg[i] & mask) - lo) & mask
            if d <= span:
                h[d >> shift] += 1


@kernel(parallel=True)
def _prune_write(w, bits, mask, t, cut, nch, out):  # pragma: no cover - compiled
    """``out = 0`` where the entry is pruned (key below ``t``, or key ``t`` at a flat
    position up to ``cut``) and for ``-0.0``, else ``w``."""
    n = bits.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        stop = min(n, start + chunk)
        seg = bits[start:stop]
        src = w[start:stop]
        dst = out[start:stop]
        for i in range(seg.size):
            key = seg[i] & mask
            pruned = key < t or key == 0 or (key == t and start + i <= cut)
            dst[i] = 0 if pruned else src[i]


@kernel(parallel=True)
def _prune_collect(bits, mask, lo, span, nch, offsets, cand, keys):  # pragma: no cover
    """Flat indices (``cand``) and keys (``keys``) of the entries with keys in
    ``[lo, lo + span]``, chunk ``c`` written from ``offsets[c]`` on."""
    n = bits.size
    chunk = (n + nch - 1) // nch
    for c in prange(nch):
        start = min(n, c * chunk)
        seg = bits[start:min(n, start + chunk)]
        pos = offsets[c]
        for i in range(seg.size):
            key = seg[i] & mask
            if ((key - lo) & mask) <= span:
                cand[pos] = start + i
                keys[pos] = key
                pos += 1


@kernel()
def _nth_key(bits, mask, t, start, stop, r):  # pragma: no cover - compiled
    """Position of the ``r``-th (from 1) entry of key ``t`` in ``bits[start:stop]``."""
    for i in range(start, stop):
        if (bits[i] & mask) == t:
            r -= 1
            if r == 0:
                return i
    return stop - 1  # unreachable when the chunk holds r such entries


# --- the selection ------------------------------------------------------------------------

def _sample_range(bits: list[np.ndarray], mask: int, maxfinite: int, k: int, n: int,
                  size: int) -> tuple[int, int]:
    """A key range that likely holds the ``k``-th smallest key, from a sample of about
    ``size`` keys taken in evenly spaced runs of 8 neighbours (few cache misses)."""
    parts = []
    for b in bits:
        runs = max(1, round(size / _RUN * b.size / n))
        starts = (np.arange(runs, dtype=np.int64) * max(b.size - _RUN, 0)) // runs
        idx = (starts[:, None] + np.arange(_RUN)).ravel()
        parts.append(b[idx[idx < b.size]].astype(np.int64) & mask)
    sample = np.sort(np.concatenate(parts))
    s = sample.size
    q = (k - 0.5) / n
    centre = q * s
    margin = 4.0 * math.sqrt(s * q * (1.0 - q)) + 16.0
    i_lo = math.floor(centre - margin)
    i_hi = math.ceil(centre + margin)
    lo = int(sample[i_lo]) if i_lo > 0 else 0
    hi = int(sample[i_hi]) if i_hi < s else maxfinite
    return lo, min(max(hi, lo), maxfinite)


class NonFinite(Exception):
    """Raised by :func:`prune_flat` when input ``index`` holds NaN or inf."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def prune_flat(flats: list[np.ndarray], k: int, *, cand_limit: int | None = None,
               sample: int = _SAMPLE) -> list[np.ndarray]:
    """Prune the ``k`` smallest magnitudes of the concatenation of ``flats`` (1-D,
    contiguous, one float dtype). Ties go to the lower position in the concatenation.

    ``cand_limit`` (default ``max(2**16, n // 16)``) and ``sample`` (0: no sampling) only
    change the speed; tests set them to force every path.
    """
    t, cut = select_threshold(flats, k, cand_limit=cand_limit, sample=sample)
    outs = []
    offset = 0
    for f in flats:
        outs.append(write_pruned(f, (t, cut - offset)))
        offset += f.size
    return outs


def write_pruned(flat: np.ndarray, rule: tuple[int, int]) -> np.ndarray:
    """A copy of ``flat`` with the entries that ``rule`` (see :func:`select_threshold`)
    prunes set to 0, and ``-0.0`` written ``+0.0``."""
    int_dtype, mask, _ = KEY[flat.dtype.itemsize]
    out = np.empty_like(flat)
    _prune_write(flat, flat.view(int_dtype), mask, rule[0], rule[1], n_chunks(flat.size), out)
    return out


def select_threshold(flats: list[np.ndarray], k: int, *, cand_limit: int | None = None,
                     sample: int = _SAMPLE,
                     extremes: list[tuple[int, int, int]] | None = None) -> tuple[int, int]:
    """The ``k`` smallest magnitudes of the concatenation of ``flats`` (1-D, contiguous,
    one float dtype), as a rule: the entry at position ``p`` of the concatenation, of
    magnitude key ``key``, is among them exactly when ``key < t``, or ``key == t`` and
    ``p <= cut``. Returns ``(t, cut)``; raises :class:`NonFinite` for NaN or inf.

    ``extremes``: a list to which the counting pass appends, per input, the smallest and
    largest signed key of its non-zero entries and its number of zeros (see
    :func:`_prune_count_extremes`; what the k-means quantizer needs, without a pass of
    its own).
    """
    int_dtype, mask, maxfinite = KEY[flats[0].dtype.itemsize]
    bits = [f.view(int_dtype) for f in flats]
    sizes = [f.size for f in flats]
    n = sum(sizes)
    nch = [n_chunks(s) for s in sizes]
    if cand_limit is None:
        cand_limit = max(1 << 16, n >> 4)

    lo, hi = 0, maxfinite
    if sample and 0 < k < n and n >= 16 * sample:
        lo, hi = _sample_range(bits, mask, maxfinite, k, n, sample)
    counts = _count(bits, mask, lo, hi, maxfinite, nch, extremes)
    for i, cnt in enumerate(counts):
        if cnt[:, 2].any():
            raise NonFinite(i)
    if k == n:
        return maxfinite + 1, -1
    if k == 0:
        return 0, -1
    lo, hi, below, inside = _first_range(counts, sizes, nch, lo, hi, maxfinite, k)
    while lo < hi and sum(int(x.sum()) for x in inside) > cand_limit:
        lo, hi, below, inside = _narrow(bits, mask, lo, hi, nch, below, k - 1)

    r = k - below  # entries still to prune, all with keys in [lo, hi]
    if r == 0:  # exactly the keys below lo
        return lo, -1
    if lo == hi:  # every key below lo, then the first r entries of key lo
        return lo, _nth_position(bits, mask, lo, sizes, nch, inside, r)
    cands, keys = _collect(bits, mask, lo, hi, nch, inside)
    all_keys = np.concatenate(keys)
    if hi - lo < max(4 * all_keys.size, 1 << 16):
        t, ties = _candidate_threshold(all_keys, lo, hi - lo + 1, r)
    else:
        t = int(np.partition(all_keys, r - 1)[r - 1])
        ties = r - int(np.count_nonzero(all_keys < t))
    return int(t), _tie_position(cands, keys, sizes, int(t), int(ties))


def _count(bits, mask, lo, hi, maxfinite, nch, extremes):
    """Per input, the counts of :func:`_prune_count` (with ``extremes``: of
    :func:`_prune_count_extremes`, whose extremes are appended to ``extremes``)."""
    counts = []
    for b, c in zip(bits, nch, strict=True):
        out = np.zeros((c, 3), np.int64)
        if extremes is None:
            _prune_count(b, mask, lo, hi, maxfinite, c, out)
        else:
            ext = np.zeros((c, 3), np.int64)
            _prune_count_extremes(b, mask, lo, hi, maxfinite, c, out, ext)
            extremes.append((int(ext[:, 0].min()), int(ext[:, 1].max()), int(ext[:, 2].sum())))
        counts.append(out)
    return counts


def _first_range(counts, sizes, nch, lo, hi, maxfinite, k):
    """From the counts below and inside ``[lo, hi]``: the key range holding the key of
    rank ``k - 1``, the number of keys below it, and per chunk the keys inside it."""
    target = k - 1  # rank (from 0) of the largest key pruned
    below_all = sum(int(cnt[:, 0].sum()) for cnt in counts)
    inside_all = sum(int(cnt[:, 1].sum()) for cnt in counts)
    if target < below_all:
        return 0, lo - 1, 0, [cnt[:, 0].copy() for cnt in counts]
    if target < below_all + inside_all:
        return lo, hi, below_all, [cnt[:, 1].copy() for cnt in counts]
    chunk_sizes = [_chunk_sizes(s, c) for s, c in zip(sizes, nch, strict=True)]
    inside = [cs - cnt[:, 0] - cnt[:, 1] for cs, cnt in zip(chunk_sizes, counts, strict=True)]
    return hi + 1, maxfinite, below_all + inside_all, inside


def _nth_position(bits, mask, t, sizes, nch, ties, r) -> int:
    """Position in the concatenation of the ``r``-th (from 1) entry of key ``t``, from
    the number of such entries per chunk (``ties``)."""
    offset = 0
    for b, size, c, tc in zip(bits, sizes, nch, ties, strict=True):
        before = np.cumsum(tc)
        if r <= before[-1]:
            j = int(np.searchsorted(before, r))  # the chunk holding it
            r -= int(before[j - 1]) if j else 0
            chunk = (size + c - 1) // c
            start = min(size, j * chunk)
            return offset + int(_nth_key(b, mask, t, start, min(size, start + chunk), r))
        r -= int(before[-1])
        offset += size
    raise AssertionError("unreachable: fewer entries of the threshold key than counted")


def _tie_position(cands, keys, sizes, t, ties) -> int:
    """Position in the concatenation of the ``ties``-th candidate of key ``t``."""
    offset = 0
    for cand, key, size in zip(cands, keys, sizes, strict=True):
        where = np.flatnonzero(key == t)
        if ties <= where.size:
            return offset + int(cand[where[ties - 1]])
        ties -= where.size
        offset += size
    raise AssertionError("unreachable: fewer candidates of the threshold key than counted")


def _collect(bits, mask, lo, hi, nch, inside):
    """Flat indices and keys of the entries with keys in ``[lo, hi]``, per input."""
    cands, keys = [], []
    for b, c, ins in zip(bits, nch, inside, strict=True):
        cand = np.empty(int(ins.sum()), np.int64)
        key = np.empty(cand.size, np.int64)
        _prune_collect(b, mask, lo, hi - lo, c, _exclusive_cumsum(ins), cand, key)
        cands.append(cand)
        keys.append(key)
    return cands, keys


def _narrow(bits, mask, lo, hi, nch, below, target):
    """One histogram pass over ``[lo, hi]``: the bin that holds the key of rank ``target``."""
    shift = max(0, (hi - lo).bit_length() - _BINS_LOG2)
    nbins = ((hi - lo) >> shift) + 1
    hists = []
    for b, c in zip(bits, nch, strict=True):
        h = np.zeros((c, nbins), np.int64)
        _prune_histogram(b, mask, lo, hi - lo, shift, c, h)
        hists.append(h)
    cum = np.cumsum(sum(h.sum(axis=0) for h in hists))
    sel = int(np.searchsorted(cum, target - below, side="right"))
    below += int(cum[sel - 1]) if sel else 0
    new_lo = lo + (sel << shift)
    new_hi = min(hi, new_lo + (1 << shift) - 1)
    return new_lo, new_hi, below, [h[:, sel].copy() for h in hists]


def _chunk_sizes(n: int, nch: int) -> np.ndarray:
    chunk = (n + nch - 1) // nch
    starts = np.minimum(np.arange(nch, dtype=np.int64) * chunk, n)
    return np.minimum(starts + chunk, n) - starts


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    return (np.cumsum(counts) - counts).astype(np.int64)


@kernel()
def _candidate_threshold(keys, lo, width, r):  # pragma: no cover - compiled
    """Key ``t`` of the ``r``-th smallest of ``keys`` (all in ``[lo, lo + width)``) and how
    many of the keys equal to ``t`` are among the ``r`` smallest: a counting pass."""
    counts = np.zeros(width, np.int32)
    for i in range(keys.size):
        counts[keys[i] - lo] += 1
    seen = 0
    for d in range(width):
        if seen + counts[d] >= r:
            return lo + d, r - seen
        seen += counts[d]
    return lo + width - 1, 0  # unreachable for 1 <= r <= keys.size

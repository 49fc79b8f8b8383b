"""EFR, Entropy-Floor Rows: the project's own format near the entropy floor (SPEC §9).

Design
------
Every row is coded on its own, in whichever of two modes takes fewer bits, and padded to
whole 64-bit words (so rows are encoded and decoded in parallel without sharing a word):

- **sparse** (mode bit 0): like CER, one group per rank ``1..r_i`` (``r_i`` the largest
  rank of the row), each with its columns as an Elias–Fano list: ``L = floor(log2(n //
  c)) + 1`` low bits per column (``c`` its number of columns; the bits of ``n // c``),
  and the high parts in unary (``c + ((n - 1) >> L)`` bits, fewer than ``2c``). The row
  holds ``gamma(r_i + 1)``, every group's ``gamma(c + 1)``, then the low parts of all its
  groups, then all their high fields. A column costs about ``2–2.5 + log2(n / c)`` bits
  instead of CER's 16 or 32, and the group's value stays implicit, so the product is
  SPEC §3's: additions inside a group, one multiplication per group.
- **dense** (mode bit 1): one canonical Huffman code per element (rank 0 included), over
  the counts of ``Ω`` in the whole matrix. Fixed-width codes cost ``ceil(log2 K)`` bits
  per element, 1.45× the floor when ``H`` is well below ``log2 K``; Huffman costs less
  than ``H + 1`` and, on quantized Gaussian or Laplace weights, within a few percent of
  ``H``. Decoding reads 64 bits and looks the code up in a 2**11-entry table (longer
  codes bit by bit).

The row's cost in either mode follows from its counts per rank alone
(:func:`lowentropy._rowcodes.row_costs`), so the statistics price EFR exactly
(:func:`lowentropy.stats` records :class:`lowentropy._rowcodes.EFRSizes`).

Measured (``benchmarks/efr.py``, synthetic float32 layers of ``benchmarks/run.py``,
minimal policy, 32-bit values), bits ÷ entropy floor ``m·n·H + K·32``:

=====================================  =====  ==========  =========  =====
layer                                  CER    all sparse  all dense  EFR
=====================================  =====  ==========  =========  =====
VGG-16 fc6 4096×25088, 4 %, 32 values  1.79   1.115       3.05       1.115
AlexNet fc6 4096×9216, 9 %, 32 values  2.06   1.13        1.79       1.13
512×4608 unpruned, 16 levels           4.42   1.48        1.02       1.02
=====================================  =====  ==========  =========  =====

Neither mode alone is within 1.25× of the floor on all three; the per-row choice is, at a
cost of one bit per row (and at most 63 bits of padding). The textbook Elias–Fano ``L =
floor(log2(n // c))`` gave 1.08 and 1.10 on the pruned layers; one low bit more costs
3 % there and halves the unary fields the product walks (2.4 → 1.7 bits per column on
VGG-16 fc6). Two bits more: 1.19 and 1.21, too close to 1.25 for what they save.

Speed. The high fields come last in a sparse row, all together, so that the product
decodes them in one pass with no test of where a group ends
(:mod:`lowentropy.formats._efr_sparse`): byte by byte, a 256×8 table gives the zeros
before each one of the byte, eight slots are written unconditionally and the count
advances by the byte's population; LLVM's SLP vectorizer turns the eight slots into one
widening load, one addition and one store. ``z[t] − Z_g`` is then the high part of the
``t``-th column (``Z_g`` the zeros of the fields before group ``g``). In rows of at most
``2**15`` columns (every layer of the benchmarks) ``z`` is 16-bit and the columns are
rebuilt four at a time in the 16-bit lanes of a 64-bit word, ``((z[t:t+4] − Z_g) << L) |
pdep(low parts)``, from two reads per 8 columns that advance by ``L`` bytes; then they
are summed with 8 accumulators. Wider rows keep 32-bit ``z`` and one column at a time.
The order of the bits is the only change from the first layout (one group after the
other, each with its low parts and high field): the same bits, priced from the same
statistics.

Measured on VGG-16 fc6 rows (thread CPU time per stored entry on one core, on a machine
shared with other jobs; medians of 9–11, interleaved): the whole product 1.23–1.26 ns
against CER's 0.69–0.70 ns (1.78× CER's time), where the 32-bit decoder with the
textbook ``L`` took 1.62–1.69 ns (2.35×) and the first layout's 2.7–3.0 ns. Of it, the
rows' headers (the gamma codes) 0.1 ns, the unary pass 0.2–0.25 ns (0.3 ns with the
textbook ``L``), the columns and the gather 0.8 ns (1.1 ns with the 32-bit decoder). The
columns bound it, not the gather: summing the rebuilt columns as integers instead of
gathering ``x`` takes 97 % of the time (about 50 instructions for 8 columns, about 3 a
cycle). Tried and no faster (within 1 %): a last masked block of 8 instead of the loop
over the last 1–7 columns, ``bextr`` to take the lanes apart, two gamma codes from one
read in the headers; AVX2's ``vgatherdps`` gathered ``x`` no faster than scalar loads
(0.55–0.66 against 0.50–0.56 ns an entry).

On CPUs with AVX2 (:mod:`lowentropy.formats._efr_lanes`, numba intrinsics emitting LLVM
IR; the scalar code stays the definition and the fallback, and a test holds both to the
same bits), three steps, each measured against the kernel before it (same measure, 4096
rows, medians of 11 rounds interleaved in one process, the machine shared, load 2–3.7 on
its 2 cores; the results the same bit for bit):

- eight columns in the eight 32-bit lanes of one vector: ``z[t:t+8]`` widened, minus
  ``Z_g``, shifted by ``L``, or'ed with the 8 low parts, which one 16-byte read, a byte
  shuffle and a shift per lane (``vpsrlvd``) take apart; each lane is moved to a
  general register (``vmovd``/``vpextrd``) to address ``x`` and added into its own
  accumulator, as before: about 27 instructions for 8 columns instead of 43, but only
  3 % faster (1.09 against 1.12 ns; 0.97 of the time). Tried and not kept, as shares of
  the time before: AVX2's gather ``vgatherdps`` (1.07), the vector stored to the stack
  and its lanes read back (0.98; later, with the two other steps, 0.877 against
  0.87–0.89; half stored and half moved: 0.863–0.865 against 0.861–0.876), the lanes
  moved two by two (``vmovq``/``vpextrq`` and a shift: 0.98–0.995). With every column
  replaced by 0 (wrong sums, to measure; LLVM then drops the rebuild too) it took 0.64
  ns: rebuilding and moving the lanes and gathering ``x`` take the other 0.45 ns; with
  the columns masked to the first 4 or 16 KB of ``x`` (inside the L1 cache; wrong sums)
  1.00–1.06 against 1.09 ns: the gather's L2 misses cost little.
- a group's last ``c % 8`` columns (about 11 % of them on VGG-16 fc6: 31 groups of about
  32 columns a row) rebuilt like a block and added into the first sum in order, without
  a loop: 7 additions always, the lanes past the group's end addressing a ``+0.0``
  appended to a copy of ``x`` (a float sum that starts at ``+0.0`` is never ``−0.0``, so
  adding ``+0.0`` changes no bit). The loop's exit, a branch on ``c % 8``, was
  mispredicted about once a group: leaving those columns out (wrong sums, to measure)
  took 0.97 against 1.09 ns. With the tail, 0.99 against 1.10 ns (0.90 of the time).
  Selecting ``0.0`` instead of the loaded value for those lanes was slower (1.22 against
  1.13 ns): LLVM turned each selection into a branch. (The masked last block tried
  before added the lanes into their own sums, another order.)
- the unary pass into 16-bit ``z`` with its running ``zeros − k`` in a vector register,
  advanced by a 256-entry table of ``8 − popcount`` vectors: about 8 instructions a
  byte of the high fields instead of 12 (the SLP-vectorized code moved the count to a
  vector and broadcast it for every byte).

All three: 0.95–1.03 ns an entry against 1.10–1.16 ns (0.87–0.89 of the time; three
runs of 11 rounds). The batches use the vector unary pass and store each block of 8
columns with one vector store: 3.81–3.95 against 4.03–4.05 ns an entry at batch 8
(0.93–0.97), 9.66 against 9.98 ns at batch 64 (0.97; same measure). The reads of 16
bytes go up to two words past a row's last word: the rows ending less than two words
before the end of ``bits`` are decoded from a copy followed by two zero words.

In a program the product follows other work, which has pushed the rows' words (5.3 MB on
VGG-16 fc6) out of the caches, and their first reads waited for memory: with the product
run just after a pass over 411 MB, 2.9–3.1 ms on two cores against 2.1–2.3 ms with warm
caches. The vector product now asks for the next row's words (:func:`prefetch_words`,
one prefetch a cache line) as it starts a row, a row's decoding time (about a
microsecond) ahead: in ``benchmarks/run.py``, which interleaves the product with dense,
CSR and the other formats, 2.25–2.28 against 2.42–2.54 ms (two runs each, alternated);
after that pass 2.56–2.91 against 3.01–3.11 ms, and 2.05–2.14 against 2.26–2.54 ms
warm (minima of 25, five processes each, alternated). Tried and not kept: one loop per
row over every group's blocks, the group's fields switched by selects so that only a
row's last block ends a loop (about 70 instructions a block against 27: 1.13–1.25× the
time; with every group of exactly 32 columns, the group loops' exits predictable, the
product was only 1.4–6.6 % faster than with varied counts, which bounds what those
exits cost); the lanes moved out two at a time (``vmovq``/``vpextrq`` and a shift,
instead of ``vpextrd`` each): 0–2 %.

Before the 16-bit decoder, after the reordering (ns an entry, same measure): the whole
product 1.6–1.7 ns; the ``tzcnt`` walk over the whole high region, 8, 16 or 24 slots
unrolled then a loop (0.95–1.2 ns for the walk alone: about 1.5 cycles a slot, bound by
the ALUs); one unaligned read per column for the low parts (1.67 ns against 1.46 with
four low parts per read). For the layout, estimated from the counts before coding: one
``L`` per row over the keys ``(rank − 1)·n + column`` (1.19× and 1.21× the floor on
VGG-16 and AlexNet fc6: the rare values' groups need a larger ``L``); ``L`` capped at 8
so that the low parts are bytes (1.14× and 1.12×, and slower: twice the zeros in the
unary fields, 2.9 ns with a ``tzcnt`` walk).

Before the reordering, group by group (``tzcnt`` walk, low parts from one 64-bit read per
``64 // L`` columns, then CER's 8-accumulator gather): about 2.7–3 ns an entry. Tried
and slower then: summing while decoding (one chain of float additions; 3.5 ns),
decoding high and low parts in two passes (4.7 ns), fixed-width column gaps per group
instead of Elias–Fano (2.4 ns, but 1.18× the floor: the widest gap sets the width); the
unary high parts alone took 1.9 ns an entry (a ``tzcnt`` walk whose word and group ends
are unpredictable branches), the low parts alone 1.0 ns, the gather 0.6 ns; a fused loop
reading the low parts with unaligned loads was slower (4.8 ns), and so was a
branch-free walk of the high parts by bytes (the 256×8 table above, not vectorized,
with group ends): 3.4 ns against 2.7 ns.

Dense rows decode one Huffman code per element through a 2**11-entry table (longer
codes out of line). One row is a chain of dependent steps (read at ``p``, look up, ``p +=
length``), so the vector product decodes four dense rows side by side, four chains in
flight: on the unpruned 4096×8192 layer (one core, loaded machine) 122 ms against 384 ms
one row at a time, about 9 cycles an element; still about 10× dense BLAS, which reads
32 bits an element at memory speed. Batches decode the same way, each gathered row of
``X`` serving four rows: 128 → 88 ms at batch 8 and 210 → 83 ms at batch 64 on that
layer (2 threads, idle machine; medians of 5).

Side by side at batch 1 (``benchmarks/run.py --cases vgg16_fc6 --budget 3``, 2 threads,
five runs on a machine shared with another engineer's benchmarks, read bandwidth 14–23
GB/s where 32 is the idle figure), before the AVX2 path: EFR took 2.96–6.19 ms against
dense's 15.2–25.4 ms, ×3.7–5.5 as fast (median ×4.0; the run with the least contention
×5.5: dense 16.3, CER 1.53, EFR 2.96 ms), 1.76–2.06× CER's time (median 1.86; 2.5×
before). Batch 8: ×4.3–4.8 (×3.4 in the most loaded run); batch 64: ×3.3–4.0. With a
quiet machine's times (dense 12.0 ms, CER 1.43 ms), SPEC §9's 5× needs about 1.1 ns of
one core per stored entry, where the 16-bit decoder took 1.15–1.25 ns.

With the AVX2 path (same command, batch 1 only, runs alternated with the kernel before
it in separate processes, the machine shared and loaded: read bandwidth 8–28 GB/s, dense
14.1–32.1 ms): EFR ×4.5, ×5.8, ×6.0 and ×8.1 as fast as dense (median ×5.9; 2.55–5.34
ms), 1.68–1.90× CER's time (one run 0.84×, CER slowed down); the kernel before it ×3.7,
×3.7, ×4.9 (median ×3.7; 2.89–5.84 ms), 1.86–3.7× CER's time. Three more pairs of
runs once the machine was quieter (read bandwidth 23–29 GB/s): EFR 2.54, 2.60 and 2.59 ms
against 2.80, 2.85 and 2.93 ms (0.91 of the time), ×5.9, ×4.6 and ×5.9 as fast as dense
(dense 14.9, 11.9 and 15.2 ms; the kernel before it ×5.0, ×5.2 and ×5.0), 1.72–1.88×
CER's time (1.97–2.10 before). Against a quiet machine's dense (12 ms) ×5 needs EFR at
2.4 ms, about 0.9 ns of one core an entry in this measure. What bounds it now:
moving the columns from vector lanes to the registers that address ``x`` (one
``vpextrd`` a column, two operations each on Zen 3), the gather itself, the loops'
exits (one mispredicted branch a group), and the unary pass; AVX2's gathers were no
faster than scalar loads.

Arrays
------
omega : (K,) float32 or float64
    ``Ω``, distinct values by decreasing count, ties by ascending value.
lengths : (K,) uint8
    Huffman code length of each rank (at most 32; ``[0]`` when ``K = 1``): the lengths
    of :func:`lowentropy._huffman.huffman_lengths` over the counts of ``Ω`` (the code of
    the ``huffman`` format).
bits : (words,) uint64
    The rows' codes; storage counts ``64·words`` bits (a stream of bits, SPEC §9).
row_ptr : (m+1,) int64
    Row ``i`` is ``bits[row_ptr[i]:row_ptr[i+1]]`` (at least one word).

Examples
--------
>>> import numpy as np, lowentropy as le
>>> f = le.EFR.from_dense(np.array([[0., 2., 0., 3.], [2., 0., 2., 0.]]))
>>> [(name, a.tolist()) for name, a in f.arrays().items()][:2]
[('omega', [0.0, 2.0, 3.0]), ('lengths', [1, 2, 2])]
>>> f.arrays()["row_ptr"].tolist()
[0, 1, 2]
>>> f @ np.ones(4)
array([5., 4.])
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import int64, uint64

from .._jit import kernel, prange, serial, use_threads
from .._rowcodes import (
    EFRSizes,
    canonical_tables,
    ctz,
    decode_symbol,
    ef_low,
    efr_sizes_from_hist,
    huffman_lengths,
    low_mask,
    peek,
    plan_rows,
    put,
    row_costs,
    tally,
    write_gamma,
)
from .._values import count_values, row_entries
from ..memory import check_memory
from ._checks import check_pointer, check_values, check_vector
from ._efr_sparse import (
    group_cols,
    group_cols16,
    group_sum,
    group_sum16,
    prefetch_words,
    sparse_header,
    unary_zeros,
)
from ._sums import gather_sum_rows, row_chunks
from .base import ArraySpec, Format, Sizes

__all__ = ["EFR", "EFRSizes", "efr_sizes_from_hist"]

_inline = numba.njit(inline="always", nogil=True)

#: Rows of at most this many columns are decoded with 16-bit ``z`` (:func:`group_sum16`):
#: every column and every count of zeros before a one of a sparse row's high fields
#: (fewer than ``2n`` bits) then fits a 16-bit lane.
_NARROW = 1 << 15


# --- encoding -------------------------------------------------------------------------------

@kernel(parallel=True)
def _efr_write(start, col, rank, n, lengths, codes, row_ptr, dense, chunks, words):
    """Write every row (entries sorted by rank then column, as ``row_entries`` gives)."""
    for c in prange(chunks.shape[0] - 1):
        row = np.zeros(n, np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            pos = row_ptr[i] * 64
            a = start[i]
            b = start[i + 1]
            if dense[i]:
                put(words, pos, 1, 1)
                pos += 1
                for p in range(a, b):
                    row[col[p]] = rank[p]
                for j in range(n):
                    k = row[j]
                    put(words, pos, codes[k], lengths[k])
                    pos += lengths[k]
                for p in range(a, b):
                    row[col[p]] = 0
                continue
            top = rank[b - 1] if b > a else 0
            pos = write_gamma(words, pos + 1, top + 1)
            p = a
            for k in range(1, top + 1):  # the counts
                q = p
                while q < b and rank[q] == k:
                    q += 1
                pos = write_gamma(words, pos, q - p + 1)
                p = q
            for p, q, L in _groups(rank, a, b, n):  # the low parts
                mask = (int64(1) << L) - 1
                for t in range(q - p):
                    put(words, pos + t * L, int64(col[p + t]) & mask, L)
                pos += (q - p) * L
            for p, q, L in _groups(rank, a, b, n):  # the high fields
                for t in range(q - p):
                    put(words, pos + (int64(col[p + t]) >> L) + t, 1, 1)
                pos += (q - p) + ((n - 1) >> L)


@kernel()
def _groups(rank, a, b, n):
    """``(first, end, L)`` of every non-empty group of a row's entries ``a:b`` (sorted by
    rank), ``L`` its low bits."""
    out = []
    p = a
    while p < b:
        q = p
        while q < b and rank[q] == rank[p]:
            q += 1
        out.append((p, q, ef_low(n, q - p)))
        p = q
    return out


_efr_write_serial = serial(_efr_write)


# --- decoding with every bound checked (check() and to_dense) ----------------------------------

#: Messages of the decoder's error codes.
_ERRORS = {
    1: "has no words (every row holds at least its mode bit)",
    2: "runs past its words",
    3: "holds a malformed count (gamma code)",
    4: "names a rank out of range",
    5: "holds more columns than the matrix has",
    6: "holds an Elias–Fano field with a wrong number of ones",
    7: "holds a column out of range or not ascending within its group",
    8: "holds a column twice",
    9: "ends with non-zero padding bits or unused words",
    10: "is not EFR's encoding of its entries (the cheaper mode, groups up to the largest "
        "rank, Huffman codes of the given lengths)",
}


@kernel()
def _checked_gamma(words, pos, end):
    """``(v, new pos)`` of a gamma code inside ``[pos, end)``, or ``(-1, pos)``."""
    if pos >= end:
        return -1, pos
    w = peek(words, pos)
    if w == 0:
        return -1, pos
    z = ctz(w)
    if z > 31 or pos + 2 * z + 1 > end:
        return -1, pos
    return (int64(1) << z) | int64((w >> uint64(z + 1)) & low_mask(z)), pos + 2 * z + 1


@kernel()
def _checked_group(words, low, high, end, n, cnt, k, i, seen, omega, out, write):
    """Decode one Elias–Fano group, its low parts at ``low`` and its high field at
    ``high``; returns ``(error code, end of its high field)``."""
    L = ef_low(n, cnt)
    stop = high + cnt + ((n - 1) >> L)
    if stop > end:
        return 2, high
    mask = low_mask(L)
    t = 0
    prev = -1
    for b in range(high, stop):
        if (words[b >> 6] >> uint64(b & 63)) & uint64(1):
            if t >= cnt:
                return 6, high
            j = ((b - high - t) << L) | int64(peek(words, low + t * L) & mask)
            if j >= n or j <= prev:
                return 7, high
            if seen[j] == i + 1:
                return 8, high
            seen[j] = i + 1
            if write:
                out[i, j] = omega[k]
            prev = j
            t += 1
    if t != cnt:
        return 6, high
    return 0, stop


@kernel()
def _checked_sparse(words, pos, end, n, K, i, hist, touched, seen, cnts, omega, out, write):
    """Decode a sparse row (its counts, then every group's low parts, then every group's
    high field); returns ``(error code, end of its codes, groups touched)``."""
    v, pos = _checked_gamma(words, pos, end)
    if v < 1:
        return 3, pos, 0
    top = v - 1
    if top >= max(K, 1):
        return 4, pos, 0
    total = 0
    high = 0
    for k in range(1, top + 1):
        v, pos = _checked_gamma(words, pos, end)
        if v < 1:
            return 3, pos, 0
        cnt = v - 1
        if cnt > n - total:
            return 5, pos, 0
        cnts[k] = cnt
        total += cnt
        if cnt > 0:
            high += cnt * ef_low(n, cnt)
    low = pos
    high += pos
    nt = 0
    for k in range(1, top + 1):
        cnt = cnts[k]
        if cnt > 0:
            err, high = _checked_group(words, low, high, end, n, cnt, k, i, seen, omega, out,
                                       write)
            if err:
                return err, high, nt
            low += cnt * ef_low(n, cnt)
            hist[k] = cnt
            touched[nt] = k
            nt += 1
    return 0, high, nt


@kernel()
def _checked_dense(words, pos, end, n, i, tables, hist, touched, omega, out, write):
    """Decode a dense row; returns ``(error code, end of its codes, ranks touched)``."""
    lut, lut_bits, first, count, index, ranks, max_length = tables
    nt = 0
    for j in range(n):
        if pos >= end:
            return 2, pos, nt
        k, length = decode_symbol(words, pos, lut, lut_bits, first, count, index, ranks,
                                  max_length)
        if k < 0:
            return 4, pos, nt
        pos += length
        if k > 0:
            nt = tally(hist, touched, nt, k)
        if write:
            out[i, j] = omega[k]
    if pos > end:
        return 2, pos, nt
    return 0, pos, nt


@kernel()
def _padding_ok(words, pos, end):
    """The bits from ``pos`` to the end of the row's last word are zero, and no whole
    word follows the row's codes."""
    if end - pos >= 64:
        return False
    if pos & 63 and (words[pos >> 6] >> uint64(pos & 63)) != 0:
        return False
    return True


@kernel(parallel=True)
def _efr_decode(words, row_ptr, n, lengths, tables, omega, chunks, out, write, errors,
                counts, info):
    """Decode every row, checking every bound; ``errors[i]`` gets the first error of row
    ``i`` (0 when valid), ``counts[c]`` the counts per rank of run ``c``'s rows, ``info[i]``
    row ``i``'s entries other than ``ω_0``, largest rank and distinct ranks."""
    K = lengths.shape[0]
    for c in prange(chunks.shape[0] - 1):
        hist = np.zeros(max(K, 1), np.int64)
        touched = np.empty(max(K, 1), np.int64)
        seen = np.zeros(n, np.int64)
        cnts = np.zeros(max(K, 1), np.int64)
        for i in range(chunks[c], chunks[c + 1]):
            base = row_ptr[i] * 64
            end = row_ptr[i + 1] * 64
            if end == base:
                errors[i] = 1
                continue
            is_dense = (words[row_ptr[i]] & uint64(1)) == 1
            if write and not is_dense and K:
                for j in range(n):
                    out[i, j] = omega[0]
            if is_dense:
                err, pos, nt = _checked_dense(words, base + 1, end, n, i, tables, hist,
                                              touched, omega, out, write)
            else:
                err, pos, nt = _checked_sparse(words, base + 1, end, n, K, i, hist, touched,
                                               seen, cnts, omega, out, write)
            if err == 0 and not _padding_ok(words, pos, end):
                err = 9
            if err == 0:
                d, s, entries, top = row_costs(hist, touched, nt, n, lengths)
                if (d < s) != is_dense or (d if is_dense else s) != pos - base:
                    err = 10
                info[i, 0] = entries
                info[i, 1] = top
                info[i, 2] = nt
            errors[i] = err
            for q in range(nt):
                counts[c, touched[q]] += hist[touched[q]]
                hist[touched[q]] = 0


# --- products ---------------------------------------------------------------------------------

@_inline
def _upeek(words, p, last):  # pragma: no cover - compiled
    """:func:`peek` with unsigned positions (no wrap-around test on the indices)."""
    w = p >> uint64(6)
    s = p & uint64(63)
    return (words[w] >> s) | ((words[min(w + uint64(1), last)] << uint64(1)) << (uint64(63) - s))


@_inline
def _row_words(words, row_ptr, i, tail):  # pragma: no cover - compiled
    """The words a sparse row is decoded from and its first bit there: ``words`` itself,
    except for the rows ending less than two words before the array's end, which are
    copied into ``tail`` (two zero words more; see :func:`_tail_words`) so that the
    unaligned reads of their low parts (8 or 16 bytes, see
    :mod:`lowentropy.formats._efr_lanes`) stay inside an array."""
    a = row_ptr[i]
    b = row_ptr[i + 1]
    if b + 2 <= words.shape[0]:
        return words, a * 64, b
    for w in range(b - a):
        tail[w] = words[a + w]
    tail[b - a] = 0
    tail[b - a + 1] = 0
    return tail, 0, b - a


@_inline
def _tail_words(row_ptr):  # pragma: no cover - compiled
    """The buffer of :func:`_row_words`: the last two rows' words (each row holds at
    least one word, so only they end less than two words before the end), plus two."""
    m = row_ptr.shape[0] - 1
    return np.empty(row_ptr[m] - row_ptr[max(m - 2, 0)] + 2, np.uint64)


@kernel(vectorize=True)
def _sparse_row_dot(words, start, end_word, n, deltas, x, offset, z,
                    cnts):  # pragma: no cover - compiled
    """``offset + Σ_groups (ω_k − ω_0)·Σ x[cols]`` (``x`` followed by a ``+0.0``, see
    :func:`tail_sum16`) of the sparse row starting at bit ``start`` (its mode bit) and
    ending with word ``end_word - 1``: the zeros before
    every one of its high fields in one pass (:func:`unary_zeros`), then group by group
    the columns and their sum (:func:`group_sum`). A function of its own, compiled with
    the SLP vectorizer (the unary pass) and apart from the dense rows' decoder."""
    top, low, high = sparse_header(words, start + 1, n, cnts)
    unary_zeros(words, high, end_word, z)
    acc = offset
    t0 = 0
    zeros = 0
    for k in range(1, top):
        c = cnts[k]
        if c > 0:
            L = ef_low(n, c)
            if z.itemsize == 2:  # known when compiling: one of the two is compiled
                acc += deltas[k] * group_sum16(words, low, L, z, t0, c, zeros, x)
            else:
                acc += deltas[k] * group_sum(words, low, L, z, t0, c, zeros, x)
            low += c * L
            t0 += c
            zeros += (n - 1) >> L
    return acc


@kernel(vectorize=True)
def _sparse_row_zeros(words, start, end_word, n, z, cnts):  # pragma: no cover - compiled
    """Read the header of the sparse row starting at bit ``start`` (``cnts``, see
    :func:`sparse_header`) and the zeros before every one of its high fields (``z``, see
    :func:`unary_zeros`); returns ``(r + 1, start of the low parts)``. A function of its
    own, compiled with the SLP vectorizer, for the batches, whose group sums stay in the
    calling kernel (there LLVM knows that the sums' buffer aliases nothing)."""
    top, low, high = sparse_header(words, start + 1, n, cnts)
    unary_zeros(words, high, end_word, z)
    return top, low


@kernel()
def _long_code(v, lut_bits, first, count, index, ranks, max_length):
    """``rank·64 + length`` of a code longer than the table at the bits ``v`` (the slow,
    rare path of :func:`_dense_rows_dot`, compiled out of line so that the fast path
    stays tight)."""
    code = int64(0)
    for length in range(1, max_length + 1):
        code = 2 * code + int64((v >> uint64(length - 1)) & uint64(1))
        d = code - first[length]
        if d >= 0 and d < count[length]:
            return ranks[index[length] + d] * 64 + length
    return int64(0)  # not reached on a complete code


@_inline
def _starts4(row_ptr, rows, nrows):  # pragma: no cover - compiled
    """The rows ``rows[:nrows]`` (``nrows <= 4``; the last one again in the missing
    places) and the bit after each one's mode bit."""
    i0 = rows[0]
    i1 = rows[min(1, nrows - 1)]
    i2 = rows[min(2, nrows - 1)]
    i3 = rows[min(3, nrows - 1)]
    return (i0, i1, i2, i3, uint64(row_ptr[i0] * 64 + 1), uint64(row_ptr[i1] * 64 + 1),
            uint64(row_ptr[i2] * 64 + 1), uint64(row_ptr[i3] * 64 + 1))


@kernel()
def _dense_rows_dot(words, row_ptr, rows, nrows, n, vals, tables, x, out):
    """``out[rows[r]] = Σ_j ω(i, j)·x_j`` for the ``nrows <= 4`` dense rows ``rows``,
    decoded side by side: decoding a row is a chain of dependent steps (the next code
    starts where this one ends), so four rows keep four independent chains in flight.
    Each row sums in column order, as the one-row loop did."""
    lut, lut_bits, first, count, index, ranks, max_length = tables
    last = uint64(words.shape[0] - 1)
    mask = low_mask(lut_bits)
    i0, i1, i2, i3, p0, p1, p2, p3 = _starts4(row_ptr, rows, nrows)
    a0 = a1 = a2 = a3 = x.dtype.type(0)
    for j in range(n):
        xj = x[j]
        v0 = _upeek(words, p0, last)
        v1 = _upeek(words, p1, last)
        v2 = _upeek(words, p2, last)
        v3 = _upeek(words, p3, last)
        e0 = lut[v0 & mask]
        e1 = lut[v1 & mask]
        e2 = lut[v2 & mask]
        e3 = lut[v3 & mask]
        if e0 < 0 or e1 < 0 or e2 < 0 or e3 < 0:  # rare: a code longer than the table
            if e0 < 0:
                e0 = _long_code(v0, lut_bits, first, count, index, ranks, max_length)
            if e1 < 0:
                e1 = _long_code(v1, lut_bits, first, count, index, ranks, max_length)
            if e2 < 0:
                e2 = _long_code(v2, lut_bits, first, count, index, ranks, max_length)
            if e3 < 0:
                e3 = _long_code(v3, lut_bits, first, count, index, ranks, max_length)
        a0 += vals[e0 >> 6] * xj
        a1 += vals[e1 >> 6] * xj
        a2 += vals[e2 >> 6] * xj
        a3 += vals[e3 >> 6] * xj
        p0 += uint64(e0 & 63)
        p1 += uint64(e1 & 63)
        p2 += uint64(e2 & 63)
        p3 += uint64(e3 & 63)
    out[i0] = a0
    out[i1] = a1
    out[i2] = a2
    out[i3] = a3


@kernel()
def _dense_rows_matmat(words, row_ptr, rows, nrows, n, vals, tables, X, acc, out):
    """``out[rows[r]] = Σ_j ω(i, j)·X[j]`` for the ``nrows <= 4`` dense rows ``rows``,
    decoded side by side as in :func:`_dense_rows_dot`; each gathered row of ``X`` serves
    four rows, summed in ``acc`` (4 × B, zeroed here), in column order. The four rows'
    decoding is written out in both functions: an inlined helper returning the four codes
    made the vector product twice as slow (numba did not keep the loop tight)."""
    lut, lut_bits, first, count, index, ranks, max_length = tables
    last = uint64(words.shape[0] - 1)
    mask = low_mask(lut_bits)
    B = X.shape[1]
    acc[:] = 0
    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
    i0, i1, i2, i3, p0, p1, p2, p3 = _starts4(row_ptr, rows, nrows)
    for j in range(n):
        xr = X[j]
        v0 = _upeek(words, p0, last)
        v1 = _upeek(words, p1, last)
        v2 = _upeek(words, p2, last)
        v3 = _upeek(words, p3, last)
        e0 = lut[v0 & mask]
        e1 = lut[v1 & mask]
        e2 = lut[v2 & mask]
        e3 = lut[v3 & mask]
        if e0 < 0 or e1 < 0 or e2 < 0 or e3 < 0:  # rare: a code longer than the table
            if e0 < 0:
                e0 = _long_code(v0, lut_bits, first, count, index, ranks, max_length)
            if e1 < 0:
                e1 = _long_code(v1, lut_bits, first, count, index, ranks, max_length)
            if e2 < 0:
                e2 = _long_code(v2, lut_bits, first, count, index, ranks, max_length)
            if e3 < 0:
                e3 = _long_code(v3, lut_bits, first, count, index, ranks, max_length)
        w0 = vals[e0 >> 6]
        w1 = vals[e1 >> 6]
        w2 = vals[e2 >> 6]
        w3 = vals[e3 >> 6]
        for b in range(B):
            a0[b] += w0 * xr[b]
            a1[b] += w1 * xr[b]
            a2[b] += w2 * xr[b]
            a3[b] += w3 * xr[b]
        p0 += uint64(e0 & 63)
        p1 += uint64(e1 & 63)
        p2 += uint64(e2 & 63)
        p3 += uint64(e3 & 63)
    out[i0] = a0
    out[i1] = a1
    out[i2] = a2
    out[i3] = a3


@kernel(parallel=True)
def _efr_matvec(words, row_ptr, n, deltas, vals, tables, x, offset, chunks, out):
    """Sparse rows one by one; dense rows four at a time (:func:`_dense_rows_dot`)."""
    for c in prange(chunks.shape[0] - 1):
        narrow = n <= _NARROW
        z = np.empty(0 if narrow else n + 64, np.int32)
        z16 = np.empty(n + 64 if narrow else 0, np.uint16)
        cnts = np.empty(deltas.shape[0] + 1, np.int64)
        tail = _tail_words(row_ptr)
        dense = np.empty(4, np.int64)
        x0 = np.empty(n + 1, x.dtype)  # x and a zero (see tail_sum16)
        x0[:n] = x
        x0[n] = 0
        waiting = 0
        for i in range(chunks[c], chunks[c + 1]):
            if i + 2 < row_ptr.shape[0]:  # the next row's words, while this one is decoded
                prefetch_words(words, row_ptr[i + 1], row_ptr[i + 2])
            if words[row_ptr[i]] & uint64(1):
                dense[waiting] = i
                waiting += 1
                if waiting == 4:
                    _dense_rows_dot(words, row_ptr, dense, 4, n, vals, tables, x, out)
                    waiting = 0
                continue
            src, start, end_word = _row_words(words, row_ptr, i, tail)
            if narrow:
                out[i] = _sparse_row_dot(src, start, end_word, n, deltas, x0, offset, z16, cnts)
            else:
                out[i] = _sparse_row_dot(src, start, end_word, n, deltas, x0, offset, z, cnts)
        if waiting:
            _dense_rows_dot(words, row_ptr, dense, waiting, n, vals, tables, x, out)


@kernel(parallel=True)
def _efr_matmat(words, row_ptr, n, deltas, vals, tables, X, offset, chunks, out):
    """Sparse rows one by one; dense rows four at a time (:func:`_dense_rows_matmat`)."""
    B = X.shape[1]
    for c in prange(chunks.shape[0] - 1):
        s = np.empty(B, X.dtype)
        acc = np.empty((4, B), X.dtype)
        cols = np.empty(n + 64, np.uint32)
        narrow = n <= _NARROW
        z = np.empty(0 if narrow else n + 64, np.int32)
        z16 = np.empty(n + 64 if narrow else 0, np.uint16)
        cnts = np.empty(deltas.shape[0] + 1, np.int64)
        tail = _tail_words(row_ptr)
        dense = np.empty(4, np.int64)
        waiting = 0
        for i in range(chunks[c], chunks[c + 1]):
            if words[row_ptr[i]] & uint64(1):
                dense[waiting] = i
                waiting += 1
                if waiting == 4:
                    _dense_rows_matmat(words, row_ptr, dense, 4, n, vals, tables, X, acc, out)
                    waiting = 0
                continue
            src, start, end_word = _row_words(words, row_ptr, i, tail)
            if narrow:
                top, low = _sparse_row_zeros(src, start, end_word, n, z16, cnts)
            else:
                top, low = _sparse_row_zeros(src, start, end_word, n, z, cnts)
            o = out[i]
            for b in range(B):
                o[b] = offset[b]
            t0 = 0
            zeros = 0
            for k in range(1, top):
                cnt = cnts[k]
                if cnt > 0:
                    L = ef_low(n, cnt)
                    if narrow:
                        group_cols16(src, low, L, z16, t0, cnt, zeros, cols)
                    else:
                        group_cols(src, low, L, z, t0, cnt, zeros, cols)
                    gather_sum_rows(cols, X, 0, cnt, s)
                    d = deltas[k]
                    for b in range(B):
                        o[b] += d * s[b]
                    low += cnt * L
                    t0 += cnt
                    zeros += (n - 1) >> L
        if waiting:
            _dense_rows_matmat(words, row_ptr, dense, waiting, n, vals, tables, X, acc, out)


_efr_matvec_serial = serial(_efr_matvec)
_efr_matmat_serial = serial(_efr_matmat)
_efr_decode_serial = serial(_efr_decode)


# --- the format ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sizes(Sizes):
    efr: EFRSizes = EFRSizes()


class EFR(Format):
    __doc__ = __doc__

    name = "efr"
    array_names = ("omega", "lengths", "bits", "row_ptr")

    # --- conversion -----------------------------------------------------------------------
    @classmethod
    def _encode(cls, W: np.ndarray) -> EFR:
        m, n = W.shape
        values = count_values(W)
        plan = plan_rows(W, values)
        lengths = huffman_lengths(values.counts)
        tables = canonical_tables(lengths)
        row_ptr = np.zeros(m + 1, np.int64)
        np.cumsum(plan.words, out=row_ptr[1:])
        check_memory(8 * int(row_ptr[-1]), f"the EFR bitstream of a {m}×{n} matrix")
        entries = row_entries(W, values)
        words = np.zeros(int(row_ptr[-1]), np.uint64)
        if W.size:
            parallel, chunks = _chunks(row_ptr, n)
            (_efr_write if parallel else _efr_write_serial)(
                entries.start, entries.col, entries.rank, n, lengths, tables.codes, row_ptr,
                plan.dense, chunks, words)
        else:  # no columns: every row is a lone dense mode bit
            words[row_ptr[:-1]] = 1
        f = cls._trusted(W.shape, W.dtype, omega=values.omega, lengths=lengths.astype(np.uint8),
                         bits=words, row_ptr=row_ptr)
        f._efr_sizes = plan.sizes(lengths)
        return f

    def to_dense(self) -> np.ndarray:
        self._check_dense_memory()
        m, n = self.shape
        out = np.empty((m, n), self.dtype)
        if m and n:
            errors, _, _ = self._decode(out, True)
            if errors.any():  # pragma: no cover - the arrays were checked
                raise ValueError("EFR bitstream does not decode")
        return out

    # --- arrays and invariants -------------------------------------------------------------
    def _memory_dtype(self, name: str, arr: np.ndarray) -> np.dtype:
        if name == "bits":
            return np.dtype(np.uint64)
        if name == "lengths":
            return np.dtype(np.uint8)
        return super()._memory_dtype(name, arr)

    @classmethod
    def _memory_dtype_of(cls, spec: ArraySpec, sizes: Sizes) -> np.dtype:
        if spec.name == "bits":
            return np.dtype(np.uint64)
        if spec.name == "lengths":
            return np.dtype(np.uint8)
        return super()._memory_dtype_of(spec, sizes)

    @property
    def _words(self) -> np.ndarray:
        bits = self._arrays["bits"]
        if bits.dtype != np.uint64:  # a user's int64 words, before the copy to uint64
            bits = np.ascontiguousarray(bits).view(np.uint64)
        return bits

    @property
    def _tables(self):
        cached = self.__dict__.get("_tables_cache")
        if cached is None:
            t = canonical_tables(self._arrays["lengths"].astype(np.int64))
            cached = (t.lut, t.lut_bits, t.first, t.count, t.index, t.ranks, t.max_length)
            self._tables_cache = cached
        return cached

    def _decode(self, out: np.ndarray, write: bool):
        """Decode (into ``out`` when ``write``) and check every row: per-row error codes,
        the counts of every rank (rank 0 excepted) and the per-row information of
        ``_efr_decode``."""
        m, n = self.shape
        a = self._arrays
        row_ptr = a["row_ptr"].astype(np.int64)
        lengths = a["lengths"].astype(np.int64)
        parallel, chunks = _chunks(row_ptr, n)
        errors = np.zeros(m, np.int64)
        counts = np.zeros((chunks.size - 1, max(lengths.size, 1)), np.int64)
        info = np.zeros((m, 3), np.int64)
        (_efr_decode if parallel else _efr_decode_serial)(
            self._words, row_ptr, n, lengths, self._tables, a["omega"], chunks, out, write,
            errors, counts, info)
        return errors, counts.sum(axis=0)[:lengths.size], info

    def _check_arrays(self) -> None:
        m, n = self.shape
        a = self._arrays
        omega, lengths, bits, row_ptr = a["omega"], a["lengths"], a["bits"], a["row_ptr"]
        check_values("omega", omega, None, self.dtype)
        K = omega.size
        if (m * n == 0) != (K == 0):
            raise ValueError(
                f"omega must be empty exactly when the matrix is (K = {K}, shape {m}x{n})")
        if np.unique(omega).size != K:
            raise ValueError("omega must hold distinct values")
        check_vector("lengths", lengths, K, "iu")
        check_vector("bits", bits, None, "iu")
        if bits.dtype.itemsize != 8:
            raise ValueError(f"bits must hold 64-bit words (uint64), got {bits.dtype}")
        check_pointer("row_ptr", row_ptr, m + 1, bits.size)
        _check_code_lengths(lengths.astype(np.int64))
        errors, counts, info = self._decode(np.empty((1, 1), self.dtype), False)
        if errors.any():
            row = int(np.argmax(errors != 0))
            raise ValueError(f"EFR row {row} {_ERRORS[int(errors[row])]}")
        if K:
            counts[0] = m * n - counts[1:].sum()
            self._check_counts(omega, counts, lengths)
        dense = _dense_rows(self._words, row_ptr)
        sparse = ~dense
        self._efr_sizes = EFRSizes(
            words=int(bits.size), dense_rows=int(dense.sum()),
            sparse_entries=int(info[sparse, 0].sum()), sparse_groups=int(info[sparse, 1].sum()),
            sparse_nonempty=int(info[sparse, 2].sum()),
            max_length=int(lengths.max()) if K else 0)

    @staticmethod
    def _check_counts(omega, counts, lengths) -> None:
        if (counts < 1).any():
            k = int(np.argmax(counts < 1))
            raise ValueError(f"omega[{k}] = {omega[k]} occurs nowhere in the matrix")
        if (np.lexsort((omega, -counts)) != np.arange(omega.size)).any():
            raise ValueError("omega must be ordered by decreasing count, ties by ascending "
                             f"value (counts {counts[:8].tolist()}...)")
        expected = huffman_lengths(counts)
        if not np.array_equal(expected, lengths.astype(np.int64)):
            raise ValueError(f"lengths must be the Huffman code lengths of omega's counts "
                             f"{expected[:8].tolist()}..., got {lengths[:8].tolist()}...")

    # --- products --------------------------------------------------------------------------
    def _row_work(self) -> np.ndarray:
        row_ptr = self._arrays["row_ptr"]
        return 16 * row_ptr + np.arange(row_ptr.size)

    def _deltas_offset(self, x: np.ndarray):
        omega = self._arrays["omega"]
        dtype = x.dtype
        vals = omega.astype(dtype)
        deltas = (omega.astype(np.float64) - float(omega[0])).astype(dtype)
        if omega[0] == 0:
            offset = np.zeros(x.shape[1:], dtype)
        else:
            offset = (omega[0].astype(dtype) * x.sum(axis=0, dtype=dtype)).astype(dtype)
        return deltas, vals, offset

    def _matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        deltas, vals, offset = self._deltas_offset(x)
        parallel, chunks = self._plan(1)
        run = _efr_matvec if parallel else _efr_matvec_serial
        run(self._words, self._arrays["row_ptr"], self.shape[1], deltas, vals,
            self._tables, x, offset[()], chunks, out)

    def _matmat(self, X: np.ndarray, out: np.ndarray) -> None:
        deltas, vals, offset = self._deltas_offset(X)
        parallel, chunks = self._plan(X.shape[1])
        run = _efr_matmat if parallel else _efr_matmat_serial
        run(self._words, self._arrays["row_ptr"], self.shape[1], deltas, vals,
            self._tables, X, offset, chunks, out)

    # --- accounting ------------------------------------------------------------------------
    def _sizes(self) -> Sizes:
        efr = self.__dict__.get("_efr_sizes")
        if efr is None:
            self._check_arrays()  # records the sizes
            efr = self._efr_sizes
        omega = self._arrays["omega"]
        return _Sizes(self.shape, self.dtype, K=int(omega.size),
                      omega0_nonzero=bool(omega.size and omega[0] != 0), efr=efr)

    @classmethod
    def _sizes_of(cls, stats) -> Sizes:
        efr = getattr(stats, "efr", None)
        if efr is None:
            raise ValueError("these statistics carry no EFR sizes; compute them with "
                             "lowentropy.stats(W)")
        return _Sizes(stats.shape, stats.dtype, K=stats.K, N=stats.N,
                      omega0_nonzero=bool(stats.K and stats.omega[0] != 0), efr=efr)

    @classmethod
    def _layout_of(cls, sizes: Sizes) -> list[ArraySpec]:
        m = sizes.shape[0]
        efr = sizes.efr
        return [
            ArraySpec("omega", sizes.K, "value"),
            ArraySpec("lengths", sizes.K, "index", efr.max_length),
            ArraySpec("bits", 64 * efr.words, "bits"),
            ArraySpec("row_ptr", m + 1, "index", efr.words),
        ]

    @classmethod
    def _op_table_of(cls, sizes: Sizes):
        """Per vector: a sparse row adds its entries and one product per non-empty group
        (SPEC §3); a dense row multiplies and adds every element. ``bits`` is read once per
        decoded item (a column, a group's count, an element of a dense row)."""
        m, n = sizes.shape
        e = sizes.efr
        shifted = sizes.omega0_nonzero
        sparse_rows = m - e.dense_rows
        dense_elements = e.dense_rows * n
        adds = e.sparse_entries + e.sparse_nonempty + dense_elements
        mults = e.sparse_nonempty + dense_elements
        if shifted:
            adds += n + sparse_rows
            mults += 1
        reads = {
            "omega": e.sparse_nonempty + dense_elements,
            "lengths": 0,
            "bits": e.sparse_entries + e.sparse_groups + sparse_rows + dense_elements,
            "row_ptr": m + 1,
        }
        x_reads = e.sparse_entries + dense_elements + (n if shifted else 0)
        return adds, mults, reads, x_reads


def _chunks(row_ptr: np.ndarray, n: int) -> tuple[bool, np.ndarray]:
    """Runs of rows of about equal size for the encoder and the decoder."""
    work = 16 * row_ptr.astype(np.int64) + np.arange(row_ptr.size)
    parallel = use_threads(int(work[-1]) + n)
    return parallel, row_chunks(work, numba.get_num_threads() if parallel else 1)


def _dense_rows(words: np.ndarray, row_ptr: np.ndarray) -> np.ndarray:
    """The mode bit of every row (rows hold at least one word)."""
    starts = row_ptr[:-1].astype(np.int64)
    return (words[starts] & np.uint64(1)).astype(bool) if starts.size else np.zeros(0, bool)


def _check_code_lengths(lengths: np.ndarray) -> None:
    """A complete prefix code of at most 32 bits (or ``[0]`` for one value)."""
    K = lengths.size
    if K == 1:
        if lengths[0] != 0:
            raise ValueError(f"lengths must be [0] for a single value, got {lengths.tolist()}")
        return
    if not K:
        return
    if lengths.min() < 1 or lengths.max() > 32:
        raise ValueError("lengths must lie in [1, 32] (a Huffman code of K >= 2 values)")
    per_length = np.bincount(lengths, minlength=33)
    if sum(int(c) << (32 - ell) for ell, c in enumerate(per_length)) != 1 << 32:
        raise ValueError("lengths must describe a complete prefix code (Kraft sum 1)")

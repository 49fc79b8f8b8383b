"""Decoding EFR's sparse rows in the products (SPEC §9, :mod:`lowentropy.formats.efr`).

A sparse row holds, after its mode bit, ``gamma(r + 1)``, the counts ``gamma(c_k + 1)``
of its groups ``k = 1..r``, then the low parts of every non-empty group (``c_k·L_k``
bits each, rank after rank), then their unary high fields (``c_k + ((n - 1) >> L_k)``
bits each, rank after rank), the row's last codes. The product decodes it in two
passes:

1. :func:`unary_zeros` walks the row's whole high region, byte by byte, with no test
   of where a group ends: ``z[t]`` = the zeros before the ``t``-th one. For each byte a
   table gives the positions of its ones (minus their order), eight slots written
   unconditionally and the count advanced by the byte's population; LLVM's SLP
   vectorizer turns the eight slots into one widening load, one addition and one store
   (the kernels using it are compiled with ``vectorize=True``).
2. Per group: the high part of its ``t``-th column is ``z[t] − Z_g`` (``Z_g`` the zeros of
   the fields before it, ``Σ (n − 1) >> L``), its low part ``L`` bits of the group's low
   parts; :func:`group_sum` sums ``x`` at the columns with 8 accumulators,
   :func:`group_cols` writes them out for the batches. In rows of at most ``2**15``
   columns (:func:`group_sum16`) ``z`` is 16-bit and four columns are rebuilt at once in
   the 16-bit lanes of one 64-bit word: ``((z[t:t+4] − Z_g) << L) | spread4(low parts)``,
   ``spread4`` being BMI2's ``pdep`` (one instruction; shifts and masks on CPUs without
   it): :func:`block_sums16` for the blocks of 8 columns, :func:`tail_sum16` for the
   last 1–7.

:func:`unary_zeros`, :func:`block_sums16` and :func:`tail_sum16` are plain functions,
the definitions (run as they are under ``NUMBA_DISABLE_JIT``), and so is
:func:`block_cols16` (the batches' columns); compiled for a CPU with AVX2 and 16-bit
``z``, an ``@overload`` of each takes the vector code of
:mod:`._efr_lanes` instead (eight columns in one vector, the tail without a loop, the
unary pass's running count in a vector), which gives the same results bit for bit.

Measured on VGG-16 fc6 rows (one core, thread CPU time per stored entry, shared
machine): the headers 0.1 ns, the unary pass 0.2–0.25 ns (0.95–1.2 ns as a ``tzcnt``
walk over the same region), the columns and the gather 0.8 ns; the whole product
1.15–1.25 ns (1.6–1.7 ns with 32-bit ``z`` and one column at a time, CER 0.65–0.7 ns).
With the vector code 0.87–0.89 of that time (0.95–1.03 against 1.10–1.16 ns in the
same runs; :mod:`lowentropy.formats.efr` gives each step).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import int32, int64, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._rowcodes import ctz, ef_low, low_mask
from ._efr_lanes import (
    block_cols16_avx2,
    block_cols_apply,
    block_sums16_avx2,
    tail_sum16_avx2,
    unary_zeros16_avx2,
    unary_zeros_apply,
    vector_columns_apply,
)

__all__ = ["load64", "prefetch_words", "popcount", "spread4", "spread4_shifts", "HAS_PDEP",
           "UNARY_TABLE", "sparse_header", "unary_zeros", "group_sum", "group_sum16",
           "block_sums16", "tail_sum16", "group_cols", "group_cols16", "block_cols16"]

_inline = numba.njit(inline="always", nogil=True)


# --- two instructions: plain Python under NUMBA_DISABLE_JIT -----------------------------

def load64(words, byte):
    """The 64 bits of ``words`` (a ``uint64`` array) from byte ``byte`` on, little-endian;
    the caller keeps ``byte + 8`` within the array."""
    raw = np.ascontiguousarray(words).view(np.uint8)[int(byte):int(byte) + 8].tobytes()
    return np.uint64(int.from_bytes(raw.ljust(8, b"\0"), "little"))


@intrinsic
def _load64_unaligned(typingctx, words, byte):  # pragma: no cover - compiled
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        p = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [args[1]])
        return builder.load(builder.bitcast(p, ir.IntType(64).as_pointer()), align=1)
    return types.uint64(words, types.uint64), codegen


@overload(load64, inline="always")
def _load64_compiled(words, byte):  # pragma: no cover - compiled
    def impl(words, byte):
        return _load64_unaligned(words, uint64(byte))
    return impl


def prefetch_words(words, a, b):
    """Ask the CPU to bring ``words[a:b]`` into its caches, one request per 64-byte line
    (nothing under ``NUMBA_DISABLE_JIT``: a hint that changes no result)."""
    return None


@intrinsic
def _prefetch(typingctx, words, index):  # pragma: no cover - compiled
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        p = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [p.type, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [p, i32(0), i32(3), i32(1)])  # read, keep in all levels, data
        return context.get_dummy_value()
    return types.void(words, types.int64), codegen


@overload(prefetch_words, inline="always")
def _prefetch_words_compiled(words, a, b):  # pragma: no cover - compiled
    def impl(words, a, b):
        for w in range(int64(a), int64(b), 8):
            _prefetch(words, int64(w))
    return impl


def popcount(w):
    """Ones in a 64-bit word."""
    return bin(int(w)).count("1")


@intrinsic
def _ctpop(typingctx, w):  # pragma: no cover - compiled
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@overload(popcount, inline="always")
def _popcount_compiled(w):  # pragma: no cover - compiled
    def impl(w):
        return int64(_ctpop(uint64(w)))
    return impl


#: CPUs whose ``pdep`` is microcoded (tens to hundreds of cycles, against 3 elsewhere):
#: AMD's before Zen 3, by LLVM's names.
_SLOW_PDEP = ("znver1", "znver2", "bdver")


def _host_has_pdep() -> bool:
    """Whether numba compiles for an x86-64 CPU with a fast BMI2 ``pdep``: the host's,
    unless ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` name another target."""
    import platform

    from numba.core import config

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if config.CPU_NAME or config.CPU_FEATURES:
        name = (config.CPU_NAME or "").lower()
        return "+bmi2" in (config.CPU_FEATURES or "") and not name.startswith(_SLOW_PDEP)
    import llvmlite.binding as llvm

    if llvm.get_host_cpu_name().lower().startswith(_SLOW_PDEP):
        return False
    return bool(llvm.get_host_cpu_features().get("bmi2", False))


#: ``pdep`` is one fast instruction on this machine (else :func:`spread4` shifts and masks,
#: 2–8 % slower a product on VGG-16 fc6 rows, Zen 3).
HAS_PDEP = _host_has_pdep()


def spread4(v, L, lanes):
    """The four ``L``-bit fields at the bottom of ``v`` (``L <= 16``), one per 16-bit lane
    of the result (``lanes``: ``low_mask(L)`` in each lane): BMI2's ``pdep(v, lanes)``
    when the CPU has it, else three shifts, four masks and three ors."""
    v = int(v)
    L = int(L)
    out = 0
    for q in range(4):
        out |= ((v >> (q * L)) & ((1 << L) - 1)) << (16 * q)
    return np.uint64(out & int(lanes))


@intrinsic
def _pdep(typingctx, v, mask):  # pragma: no cover - compiled
    from llvmlite import ir
    from numba.core import cgutils

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, i64]),
                                            "llvm.x86.bmi.pdep.64")
        return builder.call(fn, args)
    return types.uint64(types.uint64, types.uint64), codegen


@_inline
def spread4_shifts(v, L, lanes):  # pragma: no cover - compiled
    """:func:`spread4` without ``pdep``: three shifts, four masks and three ors."""
    uL = uint64(L)
    w = uint64(v)
    m = uint64(lanes) & uint64(0xFFFF)
    return ((w & m) | ((w << (uint64(16) - uL)) & (m << uint64(16)))
            | ((w << (uint64(32) - uL - uL)) & (m << uint64(32)))
            | ((w << (uint64(48) - uL - uL - uL)) & (m << uint64(48))))


@overload(spread4, inline="always")
def _spread4_compiled(v, L, lanes):  # pragma: no cover - compiled
    if HAS_PDEP:
        def impl(v, L, lanes):
            return _pdep(uint64(v), uint64(lanes))
        return impl
    return lambda v, L, lanes: spread4_shifts(v, L, lanes)


def _unary_table() -> np.ndarray:
    """``table[8·b + i]`` = position of the ``i``-th one of byte ``b`` minus ``i`` (the
    zeros before it), 0 past its last one."""
    table = np.zeros(256 * 8, np.uint8)
    for b in range(256):
        ones = [p for p in range(8) if b >> p & 1]
        for i, p in enumerate(ones):
            table[8 * b + i] = p - i
    return table


#: The byte table of :func:`unary_zeros`.
UNARY_TABLE = _unary_table()


# --- the passes -----------------------------------------------------------------------------

@_inline
def _gamma_at(words, pos):  # pragma: no cover - compiled
    """``(v, pos after the code)`` of the gamma code at ``pos``, from one unaligned read
    (:func:`lowentropy._rowcodes.read_gamma` with a shorter chain from one code to the
    next: the header of a row is a chain of them)."""
    w = load64(words, uint64(pos) >> uint64(3)) >> (uint64(pos) & uint64(7))
    z = ctz(w)
    v = (int64(1) << z) | int64((w >> uint64(z + 1)) & low_mask(z))
    return v, pos + 2 * z + 1


@_inline
def sparse_header(words, pos, n, cnts):  # pragma: no cover - compiled
    """Read a sparse row's ``gamma(r + 1)`` and counts (``pos`` after its mode bit):
    ``cnts[1..r]`` the counts; returns ``(r + 1, start of the low parts, start of the
    high fields)``. The codes are read 8 bytes at a time: the row's words must be
    followed by at least one word."""
    top, pos = _gamma_at(words, pos)
    lows = 0
    for k in range(1, top):
        c, pos = _gamma_at(words, pos)
        c -= 1
        cnts[k] = c
        if c > 0:
            lows += c * ef_low(n, c)
    return top, pos, pos + lows


@_inline
def _byte_slots(z, k, zb, table, ix):  # pragma: no cover - compiled
    """``z[k + i] = zb + table[ix + i]`` for ``i < 8``: eight neighbouring statements
    that the SLP vectorizer turns into one vector operation."""
    z[k] = zb + table[ix]
    z[k + uint64(1)] = zb + table[ix + uint64(1)]
    z[k + uint64(2)] = zb + table[ix + uint64(2)]
    z[k + uint64(3)] = zb + table[ix + uint64(3)]
    z[k + uint64(4)] = zb + table[ix + uint64(4)]
    z[k + uint64(5)] = zb + table[ix + uint64(5)]
    z[k + uint64(6)] = zb + table[ix + uint64(6)]
    z[k + uint64(7)] = zb + table[ix + uint64(7)]


def unary_zeros(words, high, end_word, z):
    """``z[t]`` = zeros before the ``t``-th one of the bits from ``high`` to the end of
    word ``end_word - 1`` (the row's high fields; the bits after them are zero). ``z``
    (``int32``, or ``uint16`` when every count is below ``2**16``) holds at least 8 slots
    more than there are ones. Returns the ones.

    The table is a global (a constant of the compiled code): passed as an argument, LLVM
    could not tell that the stores into ``z`` leave it unchanged, and did not vectorize.
    The definition, and the fallback: compiled for AVX2 and 16-bit ``z``, the running
    ``zeros − k`` stays in a vector (:func:`._efr_lanes.unary_zeros16_avx2`; the same
    slots)."""
    wi = high >> 6
    if wi >= end_word:  # no high field (a row of ω_0 only ends before its last word)
        return int64(0)
    w = words[wi] & (~uint64(0) << uint64(high & 63))
    base = wi * 64 - high  # position of the word's bit 0 relative to ``high``
    k = uint64(0)
    while True:
        for j in range(8):
            b = (w >> uint64(8 * j)) & uint64(255)
            _byte_slots(z, k, int32(base + 8 * j - int64(k)), UNARY_TABLE, b * uint64(8))
            k += uint64(popcount(b))
        wi += 1
        if wi >= end_word:
            break
        w = words[wi]
        base += 64
    return int64(k)


@overload(unary_zeros, inline="always")
def _unary_zeros_compiled(words, high, end_word, z):  # pragma: no cover - compiled
    if unary_zeros_apply(words, z):
        return lambda words, high, end_word, z: unary_zeros16_avx2(words, int64(high),
                                                                   int64(end_word), z)
    return unary_zeros


@_inline
def _col(words, p, uL, mask, high):  # pragma: no cover - compiled
    """``(high << L) | low`` with the ``L``-bit low part at bit ``p``."""
    return (high << uL) | ((load64(words, p >> uint64(3)) >> (p & uint64(7))) & mask)


@_inline
def _group_sum_wide(words, low, L, z, t0, c, Z, x):  # pragma: no cover - compiled
    """:func:`group_sum` for any ``L``: one unaligned read per column."""
    uL = uint64(L)
    mask = low_mask(L)
    s0 = s1 = s2 = s3 = x.dtype.type(0)
    p = uint64(low)
    t = uint64(t0)
    e = uint64(t0 + c)
    uZ = uint64(Z)
    while t + uint64(4) <= e:
        s0 += x[_col(words, p, uL, mask, uint64(z[t]) - uZ)]
        s1 += x[_col(words, p + uL, uL, mask, uint64(z[t + uint64(1)]) - uZ)]
        s2 += x[_col(words, p + uint64(2) * uL, uL, mask, uint64(z[t + uint64(2)]) - uZ)]
        s3 += x[_col(words, p + uint64(3) * uL, uL, mask, uint64(z[t + uint64(3)]) - uZ)]
        p += uint64(4) * uL
        t += uint64(4)
    while t < e:
        s0 += x[_col(words, p, uL, mask, uint64(z[t]) - uZ)]
        p += uL
        t += uint64(1)
    return (s0 + s1) + (s2 + s3)


@_inline
def group_sum(words, low, L, z, t0, c, Z, x):  # pragma: no cover - compiled
    """``Σ x[col]`` over a group's ``c`` columns: low parts from bit ``low`` (``L`` bits
    each), high parts ``z[t0:t0 + c] − Z``; 8 accumulators.

    When ``L <= 14``, four low parts fit one unaligned 64-bit read (``4·L + 7 <= 64``):
    two reads per 8 columns, then a shift and a mask each (5 instructions a column
    fewer than a read per column; VGG-16 fc6, one core: 1.67 -> 1.46 ns an entry).
    """
    if L > 14:
        return _group_sum_wide(words, low, L, z, t0, c, Z, x)
    uL = uint64(L)
    L2 = uL + uL
    L3 = L2 + uL
    L4 = L2 + L2
    mask = low_mask(L)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = x.dtype.type(0)
    p = uint64(low)
    t = uint64(t0)
    e = uint64(t0 + c)
    ZL = uint64(Z) << uL
    while t + uint64(8) <= e:
        v = load64(words, p >> uint64(3)) >> (p & uint64(7))
        q = p + L4
        u = load64(words, q >> uint64(3)) >> (q & uint64(7))
        s0 += x[((uint64(z[t]) << uL) | (v & mask)) - ZL]
        s1 += x[((uint64(z[t + uint64(1)]) << uL) | ((v >> uL) & mask)) - ZL]
        s2 += x[((uint64(z[t + uint64(2)]) << uL) | ((v >> L2) & mask)) - ZL]
        s3 += x[((uint64(z[t + uint64(3)]) << uL) | ((v >> L3) & mask)) - ZL]
        s4 += x[((uint64(z[t + uint64(4)]) << uL) | (u & mask)) - ZL]
        s5 += x[((uint64(z[t + uint64(5)]) << uL) | ((u >> uL) & mask)) - ZL]
        s6 += x[((uint64(z[t + uint64(6)]) << uL) | ((u >> L2) & mask)) - ZL]
        s7 += x[((uint64(z[t + uint64(7)]) << uL) | ((u >> L3) & mask)) - ZL]
        p += L4 + L4
        t += uint64(8)
    while t < e:
        s0 += x[_col(words, p, uL, mask, uint64(z[t])) - ZL]
        p += uL
        t += uint64(1)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def block_sums16(words, byte, shift, L, z, zbyte, blocks, Z, x):
    """The eight running sums of :func:`group_sum16` over ``blocks`` blocks of 8 columns:
    ``s[k] = Σ_b x[col(8b + k)]`` in block order, from zero. The low parts of block ``b``
    start at bit ``shift`` of byte ``byte + b·L`` of ``words``, its ``z`` at byte
    ``zbyte + 16·b`` of ``z`` (``uint16``); ``L <= 14``.

    The definition of the order, and the fallback: compiled for AVX2 and contiguous
    ``float32``/``float64`` operands, eight columns are rebuilt at once in a vector
    (:mod:`._efr_lanes`), each lane summed as here, so the sums are the same bit for bit."""
    uL = uint64(L)
    lanes = low_mask(L) * uint64(0x0001000100010001)
    ZZ = uint64(Z) * uint64(0x0001000100010001)
    m16 = uint64(0xFFFF)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = x.dtype.type(0)
    byte = uint64(byte)
    shift = uint64(shift)
    half = (uL + uL + uL + uL) >> uint64(3)
    shift2 = shift + ((uL + uL + uL + uL) & uint64(7))
    zbyte = uint64(zbyte)
    for _ in range(uint64(blocks)):  # a count, not a bound: one register less
        a = ((load64(z, zbyte) - ZZ) << uL) | spread4(load64(words, byte) >> shift, L, lanes)
        b = ((load64(z, zbyte + uint64(8)) - ZZ) << uL) | spread4(
            load64(words, byte + half) >> shift2, L, lanes)
        s0 += x[a & m16]
        s1 += x[(a >> uint64(16)) & m16]
        s2 += x[(a >> uint64(32)) & m16]
        s3 += x[a >> uint64(48)]
        s4 += x[b & m16]
        s5 += x[(b >> uint64(16)) & m16]
        s6 += x[(b >> uint64(32)) & m16]
        s7 += x[b >> uint64(48)]
        byte += uL
        zbyte += uint64(16)
    return s0, s1, s2, s3, s4, s5, s6, s7


@overload(block_sums16, inline="always")
def _block_sums16_compiled(words, byte, shift, L, z, zbyte, blocks, Z,
                           x):  # pragma: no cover - compiled
    if vector_columns_apply(words, z, x):
        def impl(words, byte, shift, L, z, zbyte, blocks, Z, x):
            return block_sums16_avx2(words, uint64(byte), uint64(shift), uint64(L), z,
                                     uint64(zbyte), uint64(blocks), uint64(Z), x)
        return impl
    return block_sums16


def tail_sum16(words, byte, shift, L, z, zbyte, rem, Z, x, s0):
    """``s0`` plus ``x`` at a group's last ``rem < 8`` columns, in order: low parts from bit
    ``shift`` of byte ``byte`` of ``words``, ``z`` from byte ``zbyte`` of ``z``; ``L <= 14``.
    ``x`` ends with a ``+0.0`` that is no column: the vector code adds it for the lanes
    past the group's end (``s0`` starts at ``+0.0``, so it is never ``−0.0``, and adding
    ``+0.0`` leaves it unchanged).

    The definition and the fallback: compiled for AVX2 (:func:`block_sums16`'s
    conditions), the ``rem`` columns are rebuilt at once and added without a loop
    (:mod:`._efr_lanes`), to the same sum."""
    uL = uint64(L)
    mask = low_mask(L)
    p = (uint64(byte) << uint64(3)) + uint64(shift)
    t = uint64(zbyte) >> uint64(1)
    uZ = uint64(Z)
    for _ in range(uint64(rem)):
        s0 += x[_col(words, p, uL, mask, uint64(z[t]) - uZ)]
        p += uL
        t += uint64(1)
    return s0


@overload(tail_sum16, inline="always")
def _tail_sum16_compiled(words, byte, shift, L, z, zbyte, rem, Z, x,
                         s0):  # pragma: no cover - compiled
    if vector_columns_apply(words, z, x):
        def impl(words, byte, shift, L, z, zbyte, rem, Z, x, s0):
            return tail_sum16_avx2(words, uint64(byte), uint64(shift), uint64(L), z,
                                   uint64(zbyte), uint64(rem), uint64(Z), x, s0)
        return impl
    return tail_sum16


@_inline
def group_sum16(words, low, L, z, t0, c, Z, x):  # pragma: no cover - compiled
    """:func:`group_sum` with ``z`` in 16 bits (``uint16``; rows of ``n <= 32768``
    columns, so that every column and every ``z`` fits a 16-bit lane): eight columns at a
    time (:func:`block_sums16`), in the four 16-bit lanes of two 64-bit words,
    ``((z[t:t+4] − Z) << L) | spread4(low parts)``, one subtraction, one shift, one
    ``pdep`` and one or for four columns (``L <= 14``; wider groups go to
    :func:`_group_sum_wide`), or in the eight 32-bit lanes of an AVX2 vector.

    No lane borrows from the next: ``z[t] >= Z`` within the group, and each lane's result
    is a column, below ``2**15``. Eight low parts take ``8·L`` bits, a whole number of
    bytes: the reads advance by ``L`` bytes and shift by two offsets fixed for the group
    (the second four low parts start ``4·L`` bits after the first, ``4·L + 11 <= 64``)."""
    if L > 14:
        return _group_sum_wide(words, low, L, z, t0, c, Z, x)
    uL = uint64(L)
    byte = uint64(low) >> uint64(3)
    shift = uint64(low) & uint64(7)
    blocks = uint64(c) >> uint64(3)
    s0, s1, s2, s3, s4, s5, s6, s7 = block_sums16(words, byte, shift, L, z, uint64(t0 + t0),
                                                  blocks, Z, x)
    s0 = tail_sum16(words, byte + blocks * uL, shift, L, z, uint64(t0 + t0) + (blocks << uint64(4)),
                    uint64(c) & uint64(7), Z, x, s0)
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def block_cols16(words, byte, shift, L, z, zbyte, blocks, Z, cols):
    """``cols[:8·blocks]`` = the columns of ``blocks`` blocks of 8, rebuilt as
    :func:`block_sums16` rebuilds them (``L <= 14``).

    The definition and the fallback: compiled for AVX2 (:func:`block_sums16`'s
    conditions, ``cols`` contiguous ``uint32``), each block is one vector stored at once
    (:mod:`._efr_lanes`)."""
    uL = uint64(L)
    lanes = low_mask(L) * uint64(0x0001000100010001)
    ZZ = uint64(Z) * uint64(0x0001000100010001)
    m16 = uint64(0xFFFF)
    byte = uint64(byte)
    shift = uint64(shift)
    half = (uL + uL + uL + uL) >> uint64(3)
    shift2 = shift + ((uL + uL + uL + uL) & uint64(7))
    zbyte = uint64(zbyte)
    j = uint64(0)
    for _ in range(uint64(blocks)):
        a = ((load64(z, zbyte) - ZZ) << uL) | spread4(load64(words, byte) >> shift, L, lanes)
        b = ((load64(z, zbyte + uint64(8)) - ZZ) << uL) | spread4(
            load64(words, byte + half) >> shift2, L, lanes)
        cols[j] = a & m16
        cols[j + uint64(1)] = (a >> uint64(16)) & m16
        cols[j + uint64(2)] = (a >> uint64(32)) & m16
        cols[j + uint64(3)] = a >> uint64(48)
        cols[j + uint64(4)] = b & m16
        cols[j + uint64(5)] = (b >> uint64(16)) & m16
        cols[j + uint64(6)] = (b >> uint64(32)) & m16
        cols[j + uint64(7)] = b >> uint64(48)
        byte += uL
        zbyte += uint64(16)
        j += uint64(8)
    return None


@overload(block_cols16, inline="always")
def _block_cols16_compiled(words, byte, shift, L, z, zbyte, blocks, Z,
                           cols):  # pragma: no cover - compiled
    if block_cols_apply(words, z, cols):
        def impl(words, byte, shift, L, z, zbyte, blocks, Z, cols):
            return block_cols16_avx2(words, uint64(byte), uint64(shift), uint64(L), z,
                                     uint64(zbyte), uint64(blocks), uint64(Z), cols)
        return impl
    return block_cols16


@_inline
def group_cols16(words, low, L, z, t0, c, Z, cols):  # pragma: no cover - compiled
    """:func:`group_cols` from 16-bit ``z``: blocks of 8 columns by
    :func:`block_cols16`, then the last 1–7 one at a time (``L <= 14``; wider groups one
    column at a time)."""
    if L > 14:
        return group_cols(words, low, L, z, t0, c, Z, cols)
    uL = uint64(L)
    mask = low_mask(L)
    byte = uint64(low) >> uint64(3)
    shift = uint64(low) & uint64(7)
    blocks = uint64(c) >> uint64(3)
    block_cols16(words, byte, shift, L, z, uint64(t0 + t0), blocks, Z, cols)
    t = uint64(t0) + (blocks << uint64(3))
    e = uint64(t0 + c)
    j = blocks << uint64(3)
    p = ((byte + blocks * uL) << uint64(3)) + shift
    uZ = uint64(Z)
    while t < e:
        cols[j] = _col(words, p, uL, mask, uint64(z[t]) - uZ)
        p += uL
        t += uint64(1)
        j += uint64(1)
    return None


@_inline
def group_cols(words, low, L, z, t0, c, Z, cols):  # pragma: no cover - compiled
    """``cols[:c]`` = a group's columns (as :func:`group_sum` reads them)."""
    uL = uint64(L)
    mask = low_mask(L)
    p = uint64(low)
    uZ = uint64(Z)
    for t in range(c):
        cols[t] = numba.uint32(_col(words, p, uL, mask, uint64(z[t0 + t]) - uZ))
        p += uL

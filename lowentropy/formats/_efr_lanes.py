"""EFR's sparse rows in AVX2 vectors (LLVM IR through numba intrinsics).

:func:`lowentropy.formats._efr_sparse.block_sums16` rebuilds a group's columns four at a
time in the 16-bit lanes of 64-bit words, ``((z[t:t+4] − Z) << L) | pdep(low parts)``,
then takes the four lanes apart with shifts and masks before gathering ``x``: about 43
instructions for 8 columns. Here the 8 columns are the eight 32-bit lanes of one vector:

- ``z[t:t+8]`` widened from 16 to 32 bits, minus ``Z``, shifted left by ``L``;
- the 8 low parts (``8·L <= 112`` bits from bit ``shift <= 7`` of a byte: inside 16
  bytes) from one 16-byte read copied to both halves of the vector; a byte shuffle
  (``vpshufb``) puts the 3 bytes holding lane ``k``'s low part (from bit ``shift + k·L``)
  in lane ``k``, a shift per lane (``vpsrlvd``) and a mask finish it; the shuffle's
  control and the shifts depend only on ``shift`` and ``L``, fixed for a group;
- one or: the 8 columns, each extracted to a general register (``vmovd``/``vpextrd``)
  to address ``x``, added into its own accumulator (lane ``k`` into sum ``k``).

About 27 instructions for 8 columns. Each lane's column is added into the sum the scalar
code adds it to, in the same order, so the sums are the same bit for bit.

:func:`tail_sum16_avx2` takes a group's last 1–7 columns the same way, without a loop:
all 7 lanes are rebuilt, the ones past the group's end address ``x``'s last entry, a
``+0.0`` that the caller appends (the product copies ``x`` once per run of rows), and
add it, which changes no sum here (the sums start at ``+0.0``, and a float sum that starts at
``+0.0`` is never ``−0.0``: adding ``+0.0`` to it gives it back unchanged, NaN and
infinities included). The scalar loop's exit, a branch on ``c % 8``, was mispredicted
about once per group.

Both read 16 bytes of ``words`` from the byte of a block's first low part: up to two
words past the row's last one (:func:`lowentropy.formats.efr._row_words` copies the rows
too close to the end of ``words``).

:func:`unary_zeros16_avx2` is ``unary_zeros`` into 16-bit ``z``: for each byte of the
high fields, ``z[k:k+8] = table[byte] + (zeros − k)``, eight 16-bit lanes. The SLP
vectorizer's code computed ``zeros − k`` in a general register and broadcast it to a
vector for every byte (about 12 instructions a byte); here it stays in a vector,
advanced by ``8 − popcount(byte)`` from a second table of 256 vectors (about 8).

:func:`block_cols16_avx2` writes the blocks' columns out for the batches, each block one
vector store (the scalar code takes the lanes apart and stores them one by one).

Measured on VGG-16 fc6 rows (thread CPU time per stored entry on one core): 0.87–0.89 of
the scalar code's time at batch 1, step by step in :mod:`lowentropy.formats.efr`;
0.93–0.97 at batch 8 and 0.97 at batch 64.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["HAS_AVX2", "vector_columns_apply", "block_sums16_avx2", "tail_sum16_avx2",
           "block_cols_apply", "block_cols16_avx2", "unary_zeros_apply", "unary_zeros16_avx2"]

_FLOATS = (types.float32, types.float64)


def _host_has_avx2() -> bool:
    """Whether numba compiles for an x86-64 CPU with AVX2: the host's, unless
    ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` name another target."""
    import platform

    from numba.core import config

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if config.CPU_NAME or config.CPU_FEATURES:
        return "+avx2" in (config.CPU_FEATURES or "")
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("avx2", False))


#: numba compiles for a CPU with AVX2 (else the scalar definitions are compiled).
HAS_AVX2 = _host_has_avx2()


def _array(t, dtypes) -> bool:
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype in dtypes


def vector_columns_apply(words, z, x) -> bool:
    """Whether the intrinsics take the numba types ``words``, ``z`` and ``x``: AVX2, and
    1-D C-contiguous ``uint64`` words, ``uint16`` ``z`` and ``float32``/``float64`` ``x``."""
    return (HAS_AVX2 and _array(words, (types.uint64,)) and _array(z, (types.uint16,))
            and _array(x, _FLOATS))


_U64 = types.uint64


@intrinsic
def block_sums16_avx2(typingctx, words, byte, shift, L, z, zbyte, blocks, Z,
                      x):  # pragma: no cover - compiled
    """``block_sums16`` with the 8 columns of a block in one vector (same sums)."""
    if not vector_columns_apply(words, z, x):
        return None
    sig = types.UniTuple(x.dtype, 8)(words, _U64, _U64, _U64, z, _U64, _U64, _U64, x)

    def codegen(context, builder, signature, args):
        return _emit_blocks(context, builder, signature, args)
    return sig, codegen


def block_cols_apply(words, z, cols) -> bool:
    """Whether :func:`block_cols16_avx2` takes these numba types (``cols`` 1-D
    C-contiguous ``uint32``)."""
    return (HAS_AVX2 and _array(words, (types.uint64,)) and _array(z, (types.uint16,))
            and _array(cols, (types.uint32,)))


@intrinsic
def block_cols16_avx2(typingctx, words, byte, shift, L, z, zbyte, blocks, Z,
                      cols):  # pragma: no cover - compiled
    """``block_cols16`` with each block of 8 columns one vector, stored at once."""
    if not block_cols_apply(words, z, cols):
        return None
    sig = types.none(words, _U64, _U64, _U64, z, _U64, _U64, _U64, cols)

    def codegen(context, builder, signature, args):
        return _emit_cols(context, builder, signature, args)
    return sig, codegen


@intrinsic
def tail_sum16_avx2(typingctx, words, byte, shift, L, z, zbyte, rem, Z, x,
                    s0):  # pragma: no cover - compiled
    """``tail_sum16`` without a loop (same sum)."""
    if not vector_columns_apply(words, z, x):
        return None
    sig = x.dtype(words, _U64, _U64, _U64, z, _U64, _U64, _U64, x, x.dtype)

    def codegen(context, builder, signature, args):
        return _emit_tail(context, builder, signature, args)
    return sig, codegen


class _Columns:  # pragma: no cover - compiled
    """The IR that rebuilds 8 columns of a group: its constants, emitted once, then
    :meth:`at` for the block whose low parts start at byte ``byte`` and whose ``z`` is at
    byte ``zbyte``."""

    def __init__(self, context, builder, signature, args):
        from llvmlite import ir

        tw, _, _, _, tz, _, _, _, tx = signature.args[:9]
        words, _, shift, L, z, _, _, Z, x = args[:9]
        self.ir, self.builder = ir, builder
        i8, i32 = ir.IntType(8), ir.IntType(32)
        self.v8 = v8 = ir.VectorType(i32, 8)
        self.v32b = v32b = ir.VectorType(i8, 32)
        self.words = builder.bitcast(context.make_array(tw)(context, builder, words).data,
                                     i8.as_pointer())
        self.z = builder.bitcast(context.make_array(tz)(context, builder, z).data,
                                 i8.as_pointer())
        xa = context.make_array(tx)(context, builder, x)
        self.x = xa.data
        self.shape0 = builder.extract_value(xa.shape, 0)
        self.vL = vL = self.splat(builder.trunc(L, i32))
        bitpos = builder.add(self.splat(builder.trunc(shift, i32)),
                             builder.mul(ir.Constant(v8, list(range(8))), vL))
        # lane k: bytes (bitpos >> 3) + 0, 1, 2, 3 of the 16 read (its low part lies in
        # the first three: 7 + 14 bits), then shifted right by bitpos & 7
        self.ctrl = builder.bitcast(builder.add(builder.mul(builder.lshr(bitpos, self.const(3)),
                                                            self.const(0x01010101)),
                                                self.const(0x03020100)), v32b)
        self.sh = builder.and_(bitpos, self.const(7))
        self.mask = builder.sub(builder.shl(self.const(1), vL), self.const(1))
        self.vZ = self.splat(builder.trunc(Z, i32))
        self.pshufb = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v32b, [v32b, v32b]), "llvm.x86.avx2.pshuf.b")

    def const(self, c):
        return self.ir.Constant(self.v8, [c] * 8)

    def splat(self, v):
        ir, b = self.ir, self.builder
        undef = ir.Constant(self.v8, ir.Undefined)
        one = b.insert_element(undef, v, ir.Constant(ir.IntType(32), 0))
        return b.shuffle_vector(one, undef, ir.Constant(self.v8, [0] * 8))

    def at(self, byte, zbyte):
        """The 8 columns (``<8 x i32>``)."""
        ir, b = self.ir, self.builder
        i32 = ir.IntType(32)
        v16b = ir.VectorType(ir.IntType(8), 16)
        raw = b.load(b.bitcast(b.gep(self.words, [byte]), v16b.as_pointer()), align=1)
        both = b.shuffle_vector(raw, raw, ir.Constant(ir.VectorType(i32, 32),
                                                      list(range(16)) * 2))
        low = b.bitcast(b.call(self.pshufb, [both, self.ctrl]), self.v8)
        low = b.and_(b.lshr(low, self.sh), self.mask)
        v8h = ir.VectorType(ir.IntType(16), 8)
        zv = b.load(b.bitcast(b.gep(self.z, [zbyte]), v8h.as_pointer()), align=2)
        return b.or_(b.shl(b.sub(b.zext(zv, self.v8), self.vZ), self.vL), low)

    def x_at(self, cols, k):
        """``x`` at lane ``k``'s column."""
        ir, b = self.ir, self.builder
        col = b.zext(b.extract_element(cols, ir.Constant(ir.IntType(32), k)), ir.IntType(64))
        return b.load(b.gep(self.x, [col]))


def _emit_blocks(context, builder, signature, args):  # pragma: no cover - compiled
    from llvmlite import ir

    cols = _Columns(context, builder, signature, args)
    _, byte, _, L, _, zbyte, blocks, _, _ = args
    i64 = ir.IntType(64)
    fl = context.get_data_type(signature.args[8].dtype)
    byte_at = cgutils.alloca_once_value(builder, byte)
    z_at = cgutils.alloca_once_value(builder, zbyte)
    sums = [cgutils.alloca_once_value(builder, ir.Constant(fl, 0.0)) for _ in range(8)]
    with cgutils.for_range(builder, blocks, intp=i64):
        b = builder.load(byte_at)
        zb = builder.load(z_at)
        block = cols.at(b, zb)
        for k, s in enumerate(sums):
            builder.store(builder.fadd(builder.load(s), cols.x_at(block, k)), s)
        builder.store(builder.add(b, L), byte_at)
        builder.store(builder.add(zb, ir.Constant(i64, 16)), z_at)
    return context.make_tuple(builder, signature.return_type, [builder.load(s) for s in sums])


def _emit_cols(context, builder, signature, args):  # pragma: no cover - compiled
    from llvmlite import ir

    cols = _Columns(context, builder, signature, args)
    _, byte, _, L, _, zbyte, blocks, _, out = args
    i64 = ir.IntType(64)
    data = context.make_array(signature.args[8])(context, builder, out).data
    byte_at = cgutils.alloca_once_value(builder, byte)
    z_at = cgutils.alloca_once_value(builder, zbyte)
    with cgutils.for_range(builder, blocks, intp=i64) as loop:
        b = builder.load(byte_at)
        zb = builder.load(z_at)
        where = builder.gep(data, [builder.shl(loop.index, ir.Constant(i64, 3))])
        builder.store(cols.at(b, zb), builder.bitcast(where, cols.v8.as_pointer()), align=4)
        builder.store(builder.add(b, L), byte_at)
        builder.store(builder.add(zb, ir.Constant(i64, 16)), z_at)
    return context.get_dummy_value()


def _emit_tail(context, builder, signature, args):  # pragma: no cover - compiled
    from llvmlite import ir

    cols = _Columns(context, builder, signature, args)
    _, byte, _, _, _, zbyte, rem, _, _, s0 = args
    rem32 = builder.trunc(rem, ir.IntType(32))
    inside = builder.icmp_unsigned("<", cols.ir.Constant(cols.v8, list(range(8))),
                                   cols.splat(rem32))
    last = builder.trunc(builder.sub(cols.shape0, ir.Constant(ir.IntType(64), 1)),
                         ir.IntType(32))
    block = builder.select(inside, cols.at(byte, zbyte), cols.splat(last))
    for k in range(7):
        s0 = builder.fadd(s0, cols.x_at(block, k))
    return s0


def unary_zeros_apply(words, z) -> bool:
    """Whether :func:`unary_zeros16_avx2` takes the numba types ``words`` and ``z``."""
    return HAS_AVX2 and _array(words, (types.uint64,)) and _array(z, (types.uint16,))


@intrinsic
def unary_zeros16_avx2(typingctx, words, high, end_word, z):  # pragma: no cover - compiled
    """``unary_zeros`` into 16-bit ``z`` with the running ``zeros − k`` kept in a vector."""
    if not unary_zeros_apply(words, z):
        return None
    sig = types.int64(words, types.int64, types.int64, z)

    def codegen(context, builder, signature, args):
        return _emit_unary(context, builder, signature, args)
    return sig, codegen


def _byte_tables():
    """The tables of :func:`unary_zeros16_avx2`: ``UNARY_TABLE`` (positions of a byte's
    ones minus their order) and, per byte, ``8 − popcount`` in eight 16-bit lanes."""
    import numpy as np

    from ._efr_sparse import UNARY_TABLE

    pops = np.array([bin(b).count("1") for b in range(256)])
    return UNARY_TABLE, np.repeat(8 - pops, 8).astype(np.uint16)


def _global_table(builder, name, values, bits):  # pragma: no cover - compiled
    from llvmlite import ir

    module = builder.module
    if name in module.globals:
        return module.globals[name]
    ty = ir.ArrayType(ir.IntType(bits), len(values))
    g = ir.GlobalVariable(module, ty, name)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(ty, [int(v) for v in values])
    g.align = 16
    return g


def _emit_unary(context, builder, signature, args):  # pragma: no cover - compiled
    from llvmlite import ir

    tw, _, _, tz = signature.args
    words, high, end_word, z = args
    i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
    v8h, v8b = ir.VectorType(i16, 8), ir.VectorType(i8, 8)
    positions, steps = _byte_tables()
    pos_table = builder.bitcast(_global_table(builder, "efr_unary_positions", positions, 8),
                                i8.as_pointer())
    step_table = builder.bitcast(_global_table(builder, "efr_unary_steps", steps, 16),
                                 v8h.as_pointer())
    wdata = context.make_array(tw)(context, builder, words).data
    zdata = builder.bitcast(context.make_array(tz)(context, builder, z).data, i8.as_pointer())
    wi0 = builder.ashr(high, ir.Constant(i64, 6))
    k_out = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))
    with builder.if_then(builder.icmp_signed("<", wi0, end_word)):
        shift = builder.and_(high, ir.Constant(i64, 63))
        first = builder.and_(builder.load(builder.gep(wdata, [wi0])),
                             builder.shl(ir.Constant(i64, -1), shift))
        base = builder.trunc(builder.neg(shift), i16)  # word's bit 0, relative to ``high``
        undef = ir.Constant(v8h, ir.Undefined)
        zk0 = builder.shuffle_vector(builder.insert_element(undef, base, ir.Constant(i32, 0)),
                                     undef, ir.Constant(ir.VectorType(i32, 8), [0] * 8))
        wi_at = cgutils.alloca_once_value(builder, wi0)
        w_at = cgutils.alloca_once_value(builder, first)
        zk_at = cgutils.alloca_once_value(builder, zk0)  # zeros before bit 8j − k, per lane
        loop = builder.append_basic_block("unary_word")
        done = builder.append_basic_block("unary_done")
        builder.branch(loop)
        builder.position_at_end(loop)
        w = builder.load(w_at)
        zk = builder.load(zk_at)
        k = builder.load(k_out)
        for j in range(8):
            b = builder.and_(builder.lshr(w, ir.Constant(i64, 8 * j)), ir.Constant(i64, 255))
            p = builder.bitcast(builder.gep(pos_table, [builder.shl(b, ir.Constant(i64, 3))]),
                                v8b.as_pointer())
            slots = builder.add(builder.zext(builder.load(p, align=1), v8h), zk)
            where = builder.gep(zdata, [builder.shl(k, ir.Constant(i64, 1))])
            builder.store(slots, builder.bitcast(where, v8h.as_pointer()), align=2)
            zk = builder.add(zk, builder.load(builder.gep(step_table, [b]), align=16))
            k = builder.add(k, builder.ctpop(b))
        builder.store(zk, zk_at)
        builder.store(k, k_out)
        wi = builder.add(builder.load(wi_at), ir.Constant(i64, 1))
        builder.store(wi, wi_at)
        more = builder.icmp_signed("<", wi, end_word)
        with builder.if_then(more):
            builder.store(builder.load(builder.gep(wdata, [wi])), w_at)
        builder.cbranch(more, loop, done)
        builder.position_at_end(done)
    return builder.load(k_out)

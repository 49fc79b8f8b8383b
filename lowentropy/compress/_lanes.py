"""The error sums' four lanes as one 4-wide vector (LLVM IR through a numba intrinsic).

:func:`lowentropy.compress.error.lane_sums` adds entry ``i`` into lane ``i % 4``. Written
as four scalar chains, numba compiles it to scalar instructions (``vcvtss2sd``,
``vmulsd``, ``vaddsd``: about 2.6 cycles per entry on Zen 3; LLVM's SLP vectorizer packs
the chains two by two at best). Here each group of four entries is one vector of four
float64 lanes: one load per operand (widened from float32 when needed), one subtraction,
two multiplications and two additions (no fused multiply-add: every operation rounds as
the scalar code does), an absolute value and a compare-select for the largest error.
Lane ``k`` of the vectors therefore sees exactly the operations of the scalar lane ``k``,
in the same order, and the result is the same bit for bit (about 0.6 cycles per entry).
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["vector_lanes_apply", "lane_sums4"]

_FLOATS = (types.float32, types.float64)


def vector_lanes_apply(a, b) -> bool:
    """Whether :func:`lane_sums4` takes the numba types ``a`` and ``b``: 1-D C-contiguous
    float32/float64 arrays."""
    return all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"
               and t.dtype in _FLOATS for t in (a, b))


@intrinsic
def lane_sums4(typingctx, a, b, n):  # pragma: no cover - compiled
    """``lane_sums(a, b, n)`` with the four lanes in one vector (same result)."""
    if not (vector_lanes_apply(a, b) and isinstance(n, types.Integer)):
        return None
    sig = types.UniTuple(types.float64, 3)(a, b, types.int64)

    def codegen(context, builder, signature, args):
        return _emit(context, builder, signature, args)
    return sig, codegen


def _emit(context, builder, signature, args):  # pragma: no cover - compiled
    from llvmlite import ir

    ta, tb = signature.args[0], signature.args[1]
    arrays = [context.make_array(t)(context, builder, v)
              for t, v in zip((ta, tb), args[:2], strict=True)]
    n = args[2]
    f64 = ir.DoubleType()
    v4 = ir.VectorType(f64, 4)
    i64 = ir.IntType(64)
    module = builder.module
    fabs4 = cgutils.get_or_insert_function(module, ir.FunctionType(v4, [v4]),
                                           "llvm.fabs.v4f64")
    fabs1 = cgutils.get_or_insert_function(module, ir.FunctionType(f64, [f64]),
                                           "llvm.fabs.f64")

    def load(k, i, width):
        """Entries ``i .. i + width - 1`` of operand ``k`` as float64 (a vector when
        ``width`` is 4)."""
        t = (ta, tb)[k]
        elem = context.get_data_type(t.dtype)
        ptr = builder.gep(arrays[k].data, [i])
        if width == 4:
            ptr = builder.bitcast(ptr, ir.VectorType(elem, 4).as_pointer())
        value = builder.load(ptr, align=t.dtype.bitwidth // 8)
        if t.dtype == types.float32:
            value = builder.fpext(value, v4 if width == 4 else f64)
        return value

    def larger(x, y):
        """``max(x, y)`` for values that are not NaN (the scalar code's ``max``)."""
        return builder.select(builder.fcmp_ordered(">", y, x), y, x)

    def step(acc, i, width, fabs):
        """One entry (or four) into the running ``(Σ d², Σ a², max |d|)`` slots."""
        x = load(0, i, width)
        d = builder.fsub(x, load(1, i, width))
        e, r, p = acc
        builder.store(builder.fadd(builder.load(e), builder.fmul(d, d)), e)
        builder.store(builder.fadd(builder.load(r), builder.fmul(x, x)), r)
        builder.store(larger(builder.load(p), builder.call(fabs, [d])), p)

    zeros = ir.Constant(v4, [0.0] * 4)
    vec = [cgutils.alloca_once_value(builder, zeros) for _ in range(3)]
    n4 = builder.sub(n, builder.srem(n, ir.Constant(i64, 4)))
    with cgutils.for_range_slice(builder, ir.Constant(i64, 0), n4, ir.Constant(i64, 4),
                                 intp=i64) as (i, _):
        step(vec, i, 4, fabs4)
    lanes = [[builder.extract_element(builder.load(v), ir.Constant(ir.IntType(32), k))
              for k in range(4)] for v in vec]
    first = [cgutils.alloca_once_value(builder, lane[0]) for lane in lanes]
    with cgutils.for_range_slice(builder, n4, n, ir.Constant(i64, 1), intp=i64) as (i, _):
        step(first, i, 1, fabs1)  # the tail after the last multiple of 4 goes to lane 0
    for lane, slot in zip(lanes, first, strict=True):
        lane[0] = builder.load(slot)
    (e0, e1, e2, e3), (r0, r1, r2, r3), (p0, p1, p2, p3) = lanes
    out = [builder.fadd(builder.fadd(e0, e1), builder.fadd(e2, e3)),
           builder.fadd(builder.fadd(r0, r1), builder.fadd(r2, r3)),
           larger(larger(p0, p1), larger(p2, p3))]
    return context.make_tuple(builder, signature.return_type, out)

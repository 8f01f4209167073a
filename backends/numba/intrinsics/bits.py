"""LLVM-level scalars for the generated kernels: float32/int32 bit casts, ldexp and maxnum for
vmath.py's vectorizable math, and `nonneg`, a non-negativity hint for split loops.

They compile to single LLVM instructions, so loops using them still vectorize (a call to libm's
expf/logf would not: PyPI's llvmlite has no SVML)."""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic


@intrinsic
def i32_as_f32(typingctx, i):
    """The float32 whose bits are the int32 i."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        v = args[0]
        if v.type.width != 32:
            v = builder.trunc(v, ir.IntType(32)) if v.type.width > 32 else builder.sext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())
    return types.float32(i), codegen


@intrinsic
def f32_as_i32(typingctx, x):
    """The int32 with the bits of the float32 x."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(x), codegen


@intrinsic
def ldexp_f32(typingctx, x, n):
    """x * 2**n for a float32 x and an int32 n, rounded once (LLVM's llvm.ldexp): on AVX-512 one
    vscalefps per vector, where building 2**n from its bits takes two multiplies and six integer
    operations. Without AVX-512 it is a call to libm's ldexpf: vmath uses it only where the
    host has AVX-512 (vmath.HAS_SCALEF)."""
    if x != types.float32 or n != types.int32:
        return None

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        from numba.core import cgutils
        fnty = ir.FunctionType(ir.FloatType(), [ir.FloatType(), ir.IntType(32)])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.ldexp.f32.i32"), args)
    return types.float32(x, n), codegen


@intrinsic
def fmax(typingctx, a, b):
    """llvm.maxnum: the larger of two floats of one type, ignoring a NaN operand. LLVM vectorizes a
    loop reducing with it (a compare-and-select max, which must keep NaN, it does not)."""
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        f = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [f], ir.FunctionType(f, [f, f]))
        return builder.call(fn, args)
    return a(a, b), codegen


@intrinsic
def radd(typingctx, a, b):
    """a + b, an fadd LLVM may reassociate: a loop summing into a local with it vectorizes (one
    partial sum per lane, added up after the loop), where a plain + is one serial chain of adds,
    one add per ~4 cycles. Only the accumulation is reassociable, not the work around it."""
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1], flags=("reassoc",))
    return a(a, b), codegen


@intrinsic
def nonneg(typingctx, i):
    """i, with LLVM told it is not negative (llvm.assume). A split kernel's outer loop runs from
    lo, not 0: without this LLVM cannot drop numba's negative-index wraparound on each access
    (numba's adds carry no no-wrap flag), and the loop ran ~5x slower."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        fn = builder.module.declare_intrinsic("llvm.assume", (), ir.FunctionType(ir.VoidType(), [ir.IntType(1)]))
        builder.call(fn, [builder.icmp_signed(">=", args[0], ir.Constant(args[0].type, 0))])
        return args[0]
    return i(i), codegen

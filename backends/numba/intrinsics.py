"""Bit casts between float32 and int32 for the generated modules' vectorizable math (vmath.py).

They compile to a single LLVM bitcast, so loops using them still vectorize (a call to libm's
expf/logf would not: PyPI's llvmlite has no SVML). Generated modules import them by this path.
"""
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

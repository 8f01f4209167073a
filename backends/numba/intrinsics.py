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

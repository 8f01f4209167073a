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


@intrinsic
def at(typingctx, arr, offset):
    """A pointer to element `offset` of the 1-d array arr: the driver makes its workspaces with
    `nb.carray(at(arena, offset), shape)`, arrays without a reference count, so neither making
    them nor passing them to a kernel costs an atomic increment (a workspace passed in from
    Python costs ~37 ns of unboxing, a refcounted slice ~18 ns; this, ~1 ns)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(offset, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.gep(a.data, [args[1]])
    return types.CPointer(arr.dtype)(arr, offset), codegen


@intrinsic
def kcall(typingctx, kernel, address, *args):
    """kernel(*args), called through its native entry point at `address` (an int the executable
    passes in) instead of by name: numba links a callee's LLVM module into its caller and compiles
    it all again, so a driver calling 40 kernels by name took as long to compile as the kernels.
    The kernel (its dispatcher, one explicit signature) only types the call: arguments must convert
    to its parameters, and are cast to them; an exception it raises propagates as from any call."""
    from numba.core.errors import TypingError
    if not isinstance(kernel, types.Dispatcher) or not isinstance(address, types.Integer):
        return None
    (want,) = [s.args for s in kernel.dispatcher.nopython_signatures]
    if len(want) != len(args) or not all(typingctx.can_convert(a, w) for a, w in zip(args, want)):
        raise TypingError(f"kcall: {kernel.dispatcher.__name__} takes {want}, got {args}")

    def codegen(context, builder, sig, llargs):
        from numba.core import cgutils
        vals = [context.cast(builder, v, have, w)
                for v, have, w in zip(cgutils.unpack_tuple(builder, llargs[2]), sig.args[2].types, want)]
        fn = builder.inttoptr(llargs[1], context.call_conv.get_function_type(types.none, want).as_pointer())
        status, _ = context.call_conv.call_function(builder, fn, types.none, want, vals)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()
    return types.none(kernel, address, types.StarArgTuple.from_types(args)), codegen

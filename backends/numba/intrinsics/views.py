"""The driver's arrays with no reference count: arena workspaces, reshape and transpose views,
and `ints`, a tuple read of a run-time int64 array."""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic


@intrinsic
def ints(typingctx, arr, n):
    """The first n (a literal) elements of the 1-d int64 array arr as a tuple. The driver reads
    its run-time sizes (`dims[k]`) and the kernels' addresses (`fns[k]`) from such tuples: a
    constant index into a tuple compiles to one extract, where each getitem on the array compiled
    NumPy's whole indexing (negative indices, bounds) again, a fifth of a large driver's compile."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(arr.dtype, types.Integer)
            and isinstance(n, types.IntegerLiteral)):
        return None
    count = n.literal_value

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        vals = [builder.load(builder.gep(a.data, [context.get_constant(types.intp, i)])) for i in range(count)]
        return context.make_tuple(builder, sig.return_type, vals)
    return types.UniTuple(arr.dtype, count)(arr, n), codegen


@intrinsic
def arena_view(typingctx, arena, offset, shape):
    """A C-order array of `shape` (a tuple of ints) over the 1-d arena from element `offset`, with
    no reference count: the driver's workspaces. Neither making them nor passing them to a kernel
    costs an atomic increment (a workspace passed in from Python costs ~37 ns of unboxing, a
    refcounted slice ~18 ns; this, ~1 ns). nb.carray on a pointer does the same, but each call
    resolves and compiles its overload: typed and lowered here directly, a workspace costs the
    driver's compile next to nothing."""
    if not (isinstance(arena, types.Array) and arena.ndim == 1 and isinstance(offset, types.Integer)
            and isinstance(shape, types.BaseTuple) and all(isinstance(t, types.Integer) for t in shape)):
        return None
    out = types.Array(arena.dtype, len(shape), "C")

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        return _c_view(context, builder, out, src, builder.gep(src.data, [args[1]]), args[2], sig.args[2])
    return out(arena, offset, shape), codegen


def _borrowed(context, builder, aryty, data, shape, strides, itemsize):
    """An array of type aryty over data with no reference count (meminfo NULL): a view the
    driver makes of an array that outlives the call."""
    from numba.core import cgutils
    from numba.np.arrayobj import populate_array
    intp = context.get_value_type(types.intp)
    ary = context.make_array(aryty)(context, builder)
    populate_array(ary, data=data, shape=cgutils.pack_array(builder, shape, ty=intp),
                   strides=cgutils.pack_array(builder, strides, ty=intp), itemsize=itemsize, meminfo=None)
    return ary._getvalue()


def _c_view(context, builder, aryty, src, data, shape, shape_ty):
    """A C-order view of type aryty over data (inside the array src) of the tuple `shape`."""
    from numba.core import cgutils
    dims = [context.cast(builder, v, t, types.intp)
            for v, t in zip(cgutils.unpack_tuple(builder, shape, len(shape_ty)), shape_ty)]
    strides, step = [], src.itemsize
    for d in reversed(dims):
        strides.insert(0, step)
        step = builder.mul(step, d)
    return _borrowed(context, builder, aryty, data, dims, strides, src.itemsize)


@intrinsic
def reshaped(typingctx, arr, shape):
    """arr (C order) as `shape` (a tuple of ints of the same product): the driver's reshape
    views, typed and lowered directly (numba's reshape resolves and compiles its overload at
    each one), with no reference count."""
    if not (isinstance(arr, types.Array) and arr.layout == "C" and isinstance(shape, types.BaseTuple)
            and all(isinstance(t, types.Integer) for t in shape)):
        return None
    out = types.Array(arr.dtype, len(shape), "C", readonly=not arr.mutable)

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, args[0])
        return _c_view(context, builder, out, src, src.data, args[1], sig.args[1])
    return out(arr, shape), codegen


@intrinsic
def transposed(typingctx, arr):
    """The C-order arr with its last two axes swapped, with no reference count: for a 2-d arr a
    column-major view (what `arr.T` is); for more dims a strided one ("A"), each of whose matrices
    is column-major (what BLAS reads, transposed, as it stands)."""
    if not (isinstance(arr, types.Array) and arr.layout == "C" and arr.ndim >= 2):
        return None
    nd = arr.ndim
    out = types.Array(arr.dtype, nd, "F" if nd == 2 else "A", readonly=not arr.mutable)

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        src = context.make_array(sig.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape, nd)
        strides = cgutils.unpack_tuple(builder, src.strides, nd)
        shape[-2:], strides[-2:] = shape[-2:][::-1], strides[-2:][::-1]
        return _borrowed(context, builder, out, src.data, shape, strides, src.itemsize)
    return out(arr), codegen


@intrinsic
def permuted(typingctx, arr, *perm):
    """The C-order arr with its axes in the order perm (integer literals, as np.transpose takes
    them), a strided ("A") view with no reference count: the batched matmuls' operands whose every
    matrix keeps one unit stride (attention's heads split off, (0, 2, 1, 3))."""
    if not (isinstance(arr, types.Array) and arr.layout == "C" and len(perm) == arr.ndim
            and all(isinstance(t, types.IntegerLiteral) for t in perm)):
        return None
    order = [t.literal_value for t in perm]
    if sorted(order) != list(range(arr.ndim)):
        return None
    out = types.Array(arr.dtype, arr.ndim, "A", readonly=not arr.mutable)

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        src = context.make_array(sig.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape, arr.ndim)
        strides = cgutils.unpack_tuple(builder, src.strides, arr.ndim)
        return _borrowed(context, builder, out, src.data, [shape[q] for q in order], [strides[q] for q in order],
                         src.itemsize)
    return out(arr, types.StarArgTuple.from_types(perm)), codegen

"""Bit casts between float32 and int32 for the generated modules' vectorizable math (vmath.py).

They compile to a single LLVM bitcast, so loops using them still vectorize (a call to libm's
expf/logf would not: PyPI's llvmlite has no SVML). Generated modules import them by this path.
"""
from __future__ import annotations

import numba
from numba import types
from numba.extending import intrinsic


def kernel(signature, **options):
    """@kernel(sig, **options): a function of a generated module, compiled for `signature` by the
    module's loader (cache.compile_module) rather than at definition, so the loader may share the
    compile out among processes. Until then only its signature is known: enough for kcall/pcall to
    type a call to it."""
    def define(fn):
        disp = numba.njit(**options)(fn)
        disp.graphc_signature = signature
        return disp
    return define


def _params(disp, who: str) -> tuple:
    """The parameter types of a @kernel function (its dispatcher), from its signature."""
    from numba.core.errors import TypingError
    sig = getattr(disp, "graphc_signature", None)
    if sig is None:
        raise TypingError(f"{who}: {disp.__name__} is not a @kernel function (intrinsics.kernel)")
    return tuple(sig.args)


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
def kcall(typingctx, kernel, address, *args):
    """kernel(*args), called through its native entry point at `address` (an int the executable
    passes in) instead of by name: numba links a callee's LLVM module into its caller and compiles
    it all again, so a driver calling 40 kernels by name took as long to compile as the kernels.
    The kernel (its dispatcher, one explicit signature) only types the call: arguments must convert
    to its parameters, and are cast to them; an exception it raises propagates as from any call."""
    from numba.core.errors import TypingError
    if not isinstance(kernel, types.Dispatcher) or not isinstance(address, types.Integer):
        return None
    want = _params(kernel.dispatcher, "kcall")
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


@intrinsic
def gemm(typingctx, a, b, o):
    """o[:, :] = a @ b for 2-d float32/float64 arrays in C or F order (o in C order), one call
    into BLAS's ?gemm through numba's own wrapper (numba_xxgemm, the function np.dot calls).
    np.dot in a kernel compiles numba's whole dot implementation (checks, copies for other
    layouts, its own allocation) into every matmul kernel: ~0.3 s each on a cold cache; this is
    the call alone. Empty products (a size of 0) do nothing: the caller fills o when k is 0."""
    from numba.core.errors import TypingError
    arrs = (a, b, o)
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in arrs):
        return None
    if not (a.dtype == b.dtype == o.dtype and a.dtype in (types.float32, types.float64)):
        raise TypingError(f"gemm: float32 or float64 arrays of one dtype, got {a}, {b}, {o}")
    if a.layout not in "CF" or b.layout not in "CF" or o.layout != "C":
        raise TypingError(f"gemm: operands in C or F order and a C-order output, got {a}, {b}, {o}")
    from numba.np.linalg import ensure_blas
    ensure_blas()

    def codegen(context, builder, sig, args):
        from llvmlite import ir
        from numba.core import cgutils
        from numba.np.linalg import check_blas_return
        A, B, O = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args, args)]
        m, k = cgutils.unpack_tuple(builder, A.shape)
        n = cgutils.unpack_tuple(builder, B.shape)[1]
        intp = context.get_value_type(types.intp)
        char, void_p = ir.IntType(8), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, void_p, void_p, intp,
                                                void_p, intp, void_p, void_p, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        dt = sig.args[0].dtype
        lty = context.get_value_type(dt)
        alpha, beta = cgutils.alloca_once_value(builder, ir.Constant(lty, 1.0)), \
            cgutils.alloca_once_value(builder, ir.Constant(lty, 0.0))
        zero = ir.Constant(intp, 0)
        nonempty = builder.and_(builder.and_(builder.icmp_signed(">", m, zero), builder.icmp_signed(">", n, zero)),
                                builder.icmp_signed(">", k, zero))
        with builder.if_then(nonempty, likely=True):
            # BLAS is column-major: the row-major o (m, n) is o.T (n, m) there, and o.T = b.T @ a.T;
            # a row-major operand is its transpose there as it stands, a column-major one is transposed
            def operand(ty, ary, rows, cols):
                c = ty.layout == "C"
                return ir.Constant(char, ord("n" if c else "t")), (cols if c else rows), \
                    builder.bitcast(ary.data, void_p)
            ta, lda, pa = operand(sig.args[1], B, k, n)
            tb, ldb, pb = operand(sig.args[0], A, m, k)
            res = builder.call(fn, (ir.Constant(char, ord("s" if dt == types.float32 else "d")), ta, tb, n, m, k,
                                    builder.bitcast(alpha, void_p), pa, lda, pb, ldb, builder.bitcast(beta, void_p),
                                    builder.bitcast(O.data, void_p), n))
            check_blas_return(context, builder, res)
        return context.get_dummy_value()
    return types.none(a, b, o), codegen


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


CHUNKS_MAX = 64        # the most threads one parallel call runs on
CHUNKS_PER_THREAD = 4  # a parallel call's range is cut into this many chunks per thread, taken in turn


def launch_threads() -> None:
    """Start numba's thread pool, which also makes its parallel_for known to the linker: before
    a module calling pcall is compiled or loaded from numba's cache."""
    from numba.np.ufunc.parallel import _launch_threads
    _launch_threads()


@intrinsic
def pcall(typingctx, kernel, address, extent, threads, *args):
    """kernel(*args, lo, hi) on every thread at once, the ranges [lo, hi) cutting [0, extent)
    into chunks: a loop kernel's outer loop runs `for i in range(lo, hi)`. When `threads` (a bool)
    is false, kernel(*args, 0, extent) on the calling thread instead: the driver decides so per
    call for a kernel over a run-time size, and the choice is a branch here rather than in the
    driver, whose compile time grows much faster than linearly with its branches (a driver of 220
    kernels took 300 s with an if/else around each call, 9 s without).

    numba's prange does the same through parfors, which compile each parallel loop a second time
    as a gufunc and link it: a parallel kernel took 0.4-0.6 s to compile on a cold cache, a serial
    one 0.1. Here the kernel compiles serially; the call goes through numba's own thread pool
    (numba_parallel_for, the function parfors call, so the threading layer and its thread count,
    numba.set_num_threads included, are the same) with a small wrapper written in LLVM IR here.
    The range is cut into CHUNKS_PER_THREAD chunks per thread (at most `extent`), and each thread
    takes the next chunk from a shared counter (an atomic add) until none is left, so a thread
    that starts late or is preempted on a shared machine leaves its share to the others instead
    of holding up the call: numba's pool hands out one fixed piece per thread.
    The kernel must not raise: a worker thread has nowhere to send an exception."""
    from numba.core.errors import TypingError
    if not isinstance(kernel, types.Dispatcher) or not isinstance(address, types.Integer) \
            or not isinstance(extent, types.Integer) or not isinstance(threads, types.Boolean):
        return None
    want = _params(kernel.dispatcher, "pcall")
    if len(want) != len(args) + 2 or not all(typingctx.can_convert(a, w) for a, w in zip(args, want)) \
            or want[-2:] != (types.int64, types.int64):
        raise TypingError(f"pcall: {kernel.dispatcher.__name__} takes {want}, got {args} and (lo, hi)")
    launch_threads()

    def codegen(context, builder, sig, llargs):
        from llvmlite import ir
        from numba.core import cgutils
        i64, i32 = ir.IntType(64), ir.IntType(32)
        void_p = ir.IntType(8).as_pointer()
        kty = context.call_conv.get_function_type(types.none, want).as_pointer()
        vals = [context.cast(builder, v, have, w)
                for v, have, w in zip(cgutils.unpack_tuple(builder, llargs[4]), sig.args[4].types, want)]
        # the block every thread reads: the chunk counter, the chunk count, the extent, the kernel
        # and its arguments
        block_ty = ir.LiteralStructType([i64, i64, i64, kty] + [v.type for v in vals])
        mod = builder.module
        # the wrapper numba_parallel_for calls once per thread: chunks from the counter until none
        # is left (the pieces numba hands it are ignored)
        wty = ir.FunctionType(ir.VoidType(), [void_p.as_pointer(), i64.as_pointer(), i64.as_pointer(), void_p])
        wrapper = ir.Function(mod, wty, name=mod.get_unique_name("graphc_pcall"))
        wrapper.linkage = "internal"
        wb = ir.IRBuilder(wrapper.append_basic_block())
        block = wb.bitcast(wrapper.args[3], block_ty.as_pointer())
        counter = wb.gep(block, [i32(0), i32(0)])
        chunks, n = wb.load(wb.gep(block, [i32(0), i32(1)])), wb.load(wb.gep(block, [i32(0), i32(2)]))
        fields = [wb.load(wb.gep(block, [i32(0), i32(j + 3)])) for j in range(len(vals) + 1)]
        take, run, done = (wrapper.append_basic_block(name) for name in ("take", "run", "done"))
        wb.branch(take)
        wb.position_at_end(take)
        c = wb.atomic_rmw("add", counter, i64(1), "monotonic")
        wb.cbranch(wb.icmp_signed("<", c, chunks), run, done)
        wb.position_at_end(run)
        lo = wb.sdiv(wb.mul(n, c), chunks)
        hi = wb.sdiv(wb.mul(n, wb.add(c, i64(1))), chunks)
        context.call_conv.call_function(wb, fields[0], types.none, want, fields[1:] + [lo, hi])
        wb.branch(take)
        wb.position_at_end(done)
        wb.ret_void()
        n = context.cast(builder, llargs[2], sig.args[2], types.int64)
        on_threads = context.cast(builder, llargs[3], sig.args[3], types.boolean)
        with builder.if_else(on_threads, likely=True) as (parallel, serial):
            with serial:
                status, _ = context.call_conv.call_function(
                    builder, builder.inttoptr(llargs[1], kty), types.none, want, vals + [i64(0), n])
                with cgutils.if_unlikely(builder, status.is_error):
                    context.call_conv.return_status_propagate(builder, status)
            with parallel:
                _parallel_call(context, builder, wrapper, block_ty, kty, llargs[1], n, vals)
        return context.get_dummy_value()
    return types.none(kernel, address, extent, threads, types.StarArgTuple.from_types(args)), codegen


def _parallel_call(context, builder, wrapper, block_ty, kty, address, n, vals):
    """pcall's call of numba_parallel_for: one piece per thread (at most CHUNKS_MAX, at most the
    extent n), none when n is 0; the threads run `wrapper` over chunks of [0, n)."""
    from llvmlite import ir
    from numba.core import cgutils
    i64, i32 = ir.IntType(64), ir.IntType(32)
    void_p = ir.IntType(8).as_pointer()
    mod = builder.module
    get_threads = cgutils.get_or_insert_function(mod, ir.FunctionType(i64, []), "get_num_threads")
    pieces = builder.call(get_threads, [])
    pieces = builder.select(builder.icmp_signed("<", pieces, i64(CHUNKS_MAX)), pieces, i64(CHUNKS_MAX))
    pieces = builder.select(builder.icmp_signed("<", n, pieces), n, pieces)
    with builder.if_then(builder.icmp_signed(">", n, i64(0)), likely=True):
        chunks = builder.mul(pieces, i64(CHUNKS_PER_THREAD))
        chunks = builder.select(builder.icmp_signed("<", n, chunks), n, chunks)
        data = cgutils.alloca_once(builder, block_ty)
        for j, v in enumerate([i64(0), chunks, n, builder.inttoptr(address, kty)] + vals):
            builder.store(v, builder.gep(data, [i32(0), i32(j)]))
        sched = cgutils.alloca_once(builder, i64, size=2 * CHUNKS_MAX)  # numba's pieces: [i, i + 1)
        with cgutils.for_range(builder, pieces) as loop:
            piece = builder.gep(sched, [builder.mul(loop.index, i64(2))])
            builder.store(loop.index, piece)
            builder.store(builder.add(loop.index, i64(1)), builder.gep(piece, [i64(1)]))
        pargs = cgutils.alloca_once(builder, void_p)
        builder.store(builder.bitcast(sched, void_p), pargs)
        pdims = cgutils.alloca_once(builder, i64)
        builder.store(pieces, pdims)
        psteps = cgutils.alloca_once(builder, i64)
        builder.store(i64(16), psteps)  # one piece: two int64
        pfor = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [void_p] * 5 + [i64] * 3), "numba_parallel_for")
        builder.call(pfor, [builder.bitcast(wrapper, void_p), builder.bitcast(pargs, void_p),
                            builder.bitcast(pdims, void_p), builder.bitcast(psteps, void_p),
                            builder.bitcast(data, void_p), i64(0), i64(1), pieces])


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
    """The 2-d C-order arr transposed: a column-major view (what `arr.T` is), with no reference
    count."""
    if not (isinstance(arr, types.Array) and arr.layout == "C" and arr.ndim == 2):
        return None
    out = types.Array(arr.dtype, 2, "F", readonly=not arr.mutable)

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        src = context.make_array(sig.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape, 2)[::-1]
        strides = cgutils.unpack_tuple(builder, src.strides, 2)[::-1]
        return _borrowed(context, builder, out, src.data, shape, strides, src.itemsize)
    return out(arr), codegen


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

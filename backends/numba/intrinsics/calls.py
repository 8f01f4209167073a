"""How a driver calls its kernels: `@kernel` (a function compiled by the module's loader), `kcall`
(a call through a native address) and `pcall` (a call on every thread over pieces of a range)."""
from __future__ import annotations

import numba
from numba import types
from numba.extending import intrinsic


def kernel(signature, entry: bool = False, **options):
    """@kernel(sig, **options): a function of a generated module, compiled for `signature` by the
    module's loader (cache.compile_module) rather than at definition, so the loader may share the
    compile out among processes. Until then only its signature is known: enough for kcall/pcall to
    type a call to it. Only the entry (the driver) gets numba's Python wrapper: the others are
    called through their native address alone, and a wrapper unboxing each parameter is ~15% of a
    compile (a kernel run from Python, as profile() does: `call`)."""
    def define(fn):
        disp = numba.njit(**options, **({} if entry else {"no_cpython_wrapper": True}))(fn)
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


def _same_but_layout(a, w) -> bool:
    return isinstance(a, types.Array) and isinstance(w, types.Array) and (a.dtype, a.ndim) == (w.dtype, w.ndim)


def _kcall(typingctx, kernel, address, args, relayout: bool):
    from numba.core.errors import TypingError
    if not isinstance(kernel, types.Dispatcher) or not isinstance(address, types.Integer):
        return None
    want = _params(kernel.dispatcher, "kcall")
    if len(want) != len(args) or not all(typingctx.can_convert(a, w) or (relayout and _same_but_layout(a, w))
                                         for a, w in zip(args, want)):
        raise TypingError(f"kcall: {kernel.dispatcher.__name__} takes {want}, got {args}")

    def codegen(context, builder, sig, llargs):
        from numba.core import cgutils
        # an array's layout is in its type only (one data model): passed on as it is
        vals = [v if relayout and _same_but_layout(have, w) else context.cast(builder, v, have, w)
                for v, have, w in zip(cgutils.unpack_tuple(builder, llargs[2]), sig.args[2].types, want)]
        fn = builder.inttoptr(llargs[1], context.call_conv.get_function_type(types.none, want).as_pointer())
        status, _ = context.call_conv.call_function(builder, fn, types.none, want, vals)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()
    return types.none(kernel, address, types.StarArgTuple.from_types(args)), codegen


@intrinsic
def kcall(typingctx, kernel, address, *args):
    """kernel(*args), called through its native entry point at `address` (an int the executable
    passes in) instead of by name: numba links a callee's LLVM module into its caller and compiles
    it all again, so a driver calling 40 kernels by name took as long to compile as the kernels.
    The kernel (its dispatcher, one explicit signature) only types the call: arguments must convert
    to its parameters, and are cast to them; an exception it raises propagates as from any call."""
    return _kcall(typingctx, kernel, address, args, relayout=False)


@intrinsic
def kcall_relayout(typingctx, kernel, address, *args):
    """kcall, but an array of the parameter's dtype and rank in another layout is passed as the
    parameter's layout, unchecked: for profile(), whose arrays are the driver's (a (1, n) view is
    both C- and F-contiguous, but NumPy types it C where the kernel takes F)."""
    return _kcall(typingctx, kernel, address, args, relayout=True)


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

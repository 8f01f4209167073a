"""`gemm`: one call into BLAS's ?gemm from a kernel, for float32/float64 in C or F order.

The BLAS is the OpenBLAS NumPy ships where there is one (its cblas_?gemm, 64-bit integers),
else scipy's, through numba's own wrapper. They are different builds: at an LSTM step's
(32, 128) @ (128, 512) NumPy's (OpenBLAS 0.3.31) took 31-33 us where scipy's (0.3.30) took
37-51 us, alternated in one process on 2 threads; at (1024, 64) @ (64, 512) 387-401 against
435-458 us.
"""
from __future__ import annotations

import ctypes
import glob
import os

from numba import types
from numba.extending import intrinsic

CBLAS = {"float32": "graphc_cblas_sgemm", "float64": "graphc_cblas_dgemm"}  # the symbols kernels call
# OpenBLAS's idle worker threads spin (yielding) for 2**28 cycles, ~0.1 s, after each threaded call
# before they sleep: through a whole training step, on the cores graphc's own parallel kernels run
# on. With 2**4 (OpenBLAS's least) they sleep at once. Alternated on 2 cores, against the tree
# before: W8's GPT step 71-77 -> 60-72 ms (min of 30, four pairs; medians 80-97 -> 71-85), W6's
# convolution 12.7 -> 8.9-10.9 ms, W9's CNN 11.8-14.8 -> 8.4-11.7 ms; W2 and W10, whose threaded
# GEMMs come in long runs or are few, unchanged. A user's own OPENBLAS_THREAD_TIMEOUT is kept.
THREAD_TIMEOUT = 4


def _numpy_openblas() -> str:
    """The path of NumPy's OpenBLAS, its cblas_sgemm/dgemm registered with LLVM under CBLAS's
    names; '' where NumPy has none (built against another BLAS) or GRAPHC_BLAS=scipy asks for
    scipy's."""
    import numpy as np
    from llvmlite import binding
    if os.environ.get("GRAPHC_BLAS", "").strip().lower() == "scipy":
        return ""
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*.so*"))):
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
            fns = {t: ctypes.cast(getattr(lib, f"scipy_cblas_{t[0]}gemm64_"), ctypes.c_void_p).value
                   for t in ("single", "double")}
        except (OSError, AttributeError):
            continue
        binding.add_symbol(CBLAS["float32"], fns["single"])
        binding.add_symbol(CBLAS["float64"], fns["double"])
        _short_thread_timeout(lib)
        return path
    return ""


def _short_thread_timeout(lib) -> None:
    """Set THREAD_TIMEOUT in NumPy's OpenBLAS (in this process; the environment is left as it
    was), unless the user set OPENBLAS_THREAD_TIMEOUT: OpenBLAS reads it from the environment
    (openblas_read_env) and applies it when it starts its threads, so its pool is stopped here and
    starts again, with the new timeout, at its next threaded call. This runs once, when this module
    is first imported (the first numba compile); OpenBLAS must not be running a product in another
    thread at that moment (stopping its pool then would be unsafe): import graphc.backends.numba
    first where a program runs NumPy products in threads of its own."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return
    try:
        read_env, shutdown = lib.openblas_read_env, lib.blas_thread_shutdown_
    except AttributeError:  # another build: left as it is
        return
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(THREAD_TIMEOUT)
    try:
        read_env()
    finally:
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]
    shutdown()


def blas_thread_timeout() -> int:
    """The thread timeout (log2 of cycles) NumPy's OpenBLAS starts its threads with, 0 where graphc
    does not call NumPy's OpenBLAS."""
    if not LIBRARY:
        return 0
    fn = getattr(ctypes.CDLL(LIBRARY), "openblas_thread_timeout", None)
    return int(fn()) if fn is not None else 0


LIBRARY = _numpy_openblas()  # part of the compiled modules' cache key (backends.numba.cache)


@intrinsic
def gemm(typingctx, a, b, o):
    """o[:, :] = a @ b for 2-d float32/float64 arrays in C or F order (o in C order), or strided
    ("A") ones with one unit stride (a matrix of a batch of transposed views), one call
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
    if o.layout != "C":
        raise TypingError(f"gemm: a C-order output, got {o}")
    if not LIBRARY:
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
                if ty.layout in "CF":
                    c = ty.layout == "C"
                    return ir.Constant(char, ord("n" if c else "t")), (cols if c else rows), \
                        builder.bitcast(ary.data, void_p)
                # strided: row-major when its column stride is one element (or it has one column),
                # its leading dimension the other stride, at least what BLAS requires
                s0, s1 = cgutils.unpack_tuple(builder, ary.strides, 2)
                item = ir.Constant(intp, context.get_abi_sizeof(lty))
                one = ir.Constant(intp, 1)
                c = builder.or_(builder.icmp_signed("==", s1, item), builder.icmp_signed("<=", cols, one))
                lead = builder.select(c, builder.sdiv(s0, item), builder.sdiv(s1, item))
                need = builder.select(c, cols, rows)
                need = builder.select(builder.icmp_signed(">", need, one), need, one)
                lead = builder.select(builder.icmp_signed(">", lead, need), lead, need)
                return builder.select(c, ir.Constant(char, ord("n")), ir.Constant(char, ord("t"))), lead, \
                    builder.bitcast(ary.data, void_p)
            ta, lda, pa = operand(sig.args[1], B, k, n)
            tb, ldb, pb = operand(sig.args[0], A, m, k)
            if LIBRARY:  # cblas_?gemm(ColMajor, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                i32, i64 = ir.IntType(32), ir.IntType(64)
                ptr = lty.as_pointer()

                def trans(t):  # 'n' or 't' -> CblasNoTrans (111) or CblasTrans (112)
                    return builder.select(builder.icmp_unsigned("==", t, ir.Constant(char, ord("n"))),
                                          ir.Constant(i32, 111), ir.Constant(i32, 112))

                def i(v):
                    return builder.sext(v, i64) if v.type.width < 64 else v
                cty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, lty, ptr, i64, ptr, i64, lty,
                                                      ptr, i64])
                cfn = cgutils.get_or_insert_function(builder.module, cty, CBLAS[str(dt)])
                builder.call(cfn, (ir.Constant(i32, 102), trans(ta), trans(tb), i(n), i(m), i(k),
                                   ir.Constant(lty, 1.0), builder.bitcast(pa, ptr), i(lda), builder.bitcast(pb, ptr),
                                   i(ldb), ir.Constant(lty, 0.0), builder.bitcast(O.data, ptr), i(n)))
            else:
                fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, void_p, void_p, intp,
                                                        void_p, intp, void_p, void_p, intp])
                fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
                res = builder.call(fn, (ir.Constant(char, ord("s" if dt == types.float32 else "d")), ta, tb, n, m,
                                        k, builder.bitcast(alpha, void_p), pa, lda, pb, ldb,
                                        builder.bitcast(beta, void_p), builder.bitcast(O.data, void_p), n))
                check_blas_return(context, builder, res)
        return context.get_dummy_value()
    return types.none(a, b, o), codegen

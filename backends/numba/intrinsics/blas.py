"""`gemm`: one call into BLAS's ?gemm from a kernel, for float32/float64 in C or F order."""
from __future__ import annotations

from numba import types
from numba.extending import intrinsic


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
            res = builder.call(fn, (ir.Constant(char, ord("s" if dt == types.float32 else "d")), ta, tb, n, m, k,
                                    builder.bitcast(alpha, void_p), pa, lda, pb, ldb, builder.bitcast(beta, void_p),
                                    builder.bitcast(O.data, void_p), n))
            check_blas_return(context, builder, res)
        return context.get_dummy_value()
    return types.none(a, b, o), codegen

"""graphc generated module: 2 kernels and a driver for one compiled graph.

Each kernel is one @njit function; `driver` runs them all in order, so a call is one native call.
"""
import math

import numba as nb
import numpy as np
from numba import types as T

from graphc.backends.numba.intrinsics import (arena_view, fmax, gemm, ints, kcall, kernel, nonneg, pcall,
                                              permuted, radd, reshaped, transposed)

OPTS = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)  # contract: a*b+c may be one FMA


@nb.njit(**OPTS)
def copy_into(dst, src):
    d = dst.reshape(dst.size)
    s = src.reshape(src.size)
    for i in range(d.size):
        d[i] = s[i]


@nb.njit(**OPTS)
def all_finite(a):
    f = a.reshape(a.size)
    for i in range(f.size):
        if not np.isfinite(f[i]):
            return False
    return True


from graphc.backends.numba.intrinsics import f32_as_i32, i32_as_f32, ldexp_f32


@nb.njit(inline="always", **OPTS)
def exp_reduce_f32(x):
    # exp(x) = 2**n * exp(r), n = round(x / ln 2), |r| <= ln(2) / 2 (ln 2 in two parts: r is exact);
    # exp(r) = 1 + r + r**2 P(r), P of degree 4 (module docstring): (n, exp(r)). x is clamped to
    # [-110, 89], where 2**n * exp(r) rounds to 0 and to inf as exp(x) would; min and max pass NaN
    # on, so p is NaN for NaN. n is converted only where it is a number: LLVM makes the int of a
    # NaN poison, and where it can see the NaN (a constant, as in a row kernel's branch for rows
    # with no finite maximum) the result was garbage (the stores of a poison value dropped).
    xc = min(max(x, np.float32(-110.0)), np.float32(89.0))
    n = np.floor(xc * np.float32(1.44269504088896341) + np.float32(0.5))
    r = xc - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.381453825e-3)
    p = p * r + np.float32(8.368745446e-3)
    p = p * r + np.float32(4.166838899e-2)
    p = p * r + np.float32(1.666652113e-1)
    p = p * r + np.float32(4.999999404e-1)
    return np.int32(n if n == n else np.float32(0.0)), (p * r + np.float32(1.0)) * r + np.float32(1.0)


@nb.njit(inline="always", **OPTS)
def exp_f32(x):
    # 2**n * exp(r), applied by AVX-512's scale instruction: one rounding, into the denormals
    k, p = exp_reduce_f32(x)
    return ldexp_f32(p, k)


@kernel(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64, T.int64, T.int64), parallel=False, **{**OPTS, 'fastmath': {'contract', 'reassoc'}})
def k0_log_softmax_exp(a0, eo0, n0, lo, hi):
    # log_softmax exp
    for i0_ in range(lo, hi):
        i0 = nonneg(i0_)
        m = np.float32(-np.inf)
        for i1 in range(10):
            m = fmax(m, a0[i0, i1])
        if abs(m) < np.float32(np.inf):
            s = np.float32(0)
            for i1 in range(10):
                e = np.float32(exp_f32(a0[i0, i1] - m))
                eo0[i0, i1] = e
                s += e
            ls = np.float32(math.log(s))
            r = np.float32(1) / s
            for i1 in range(10):
                eo0[i0, i1] *= r
        else:
            m = np.float32(np.nan)
            ls = np.float32(0)
            for i1 in range(10):
                ev1 = np.float32(exp_f32((((a0[i0, i1]) - m) - ls)))
                eo0[i0, i1] = ev1

@kernel(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 1, "C"), T.int64), parallel=False, **OPTS)
def k1_sum(a0, o0, n0):
    # sum
    for j0 in range(10):
        o0[j0] = np.float32(0.0)
    for i0 in range(n0):
        for i1 in range(10):
            x0 = a0[i0, i1]
            o0[i1] = o0[i1] + x0

@kernel(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 1, "C"), T.Array(T.int64, 1, "C"), T.Array(T.int64, 1, "C")), entry=True, **OPTS)
def driver(v0, v1, v2, sizes, addresses):
    dims = ints(sizes, 2)
    fns = ints(addresses, 2)
    pcall(k0_log_softmax_exp, fns[0], dims[0], dims[0] * 10 >= 32768, v0, v1, dims[0])
    kcall(k1_sum, fns[1], v0, v2, dims[1])

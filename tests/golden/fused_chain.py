"""graphc generated module: 1 kernels and a driver for one compiled graph.

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


@nb.njit(inline="always", **OPTS)
def sigmoid_f32(x):
    # e = exp(-|x|) <= 1: 1 / (1 + e) for x >= 0, e / (1 + e) below (and for NaN, which e carries),
    # exact down to the denormals
    e = exp_f32(-abs(x))
    s = np.float32(1.0) / (np.float32(1.0) + e)
    return s if x >= np.float32(0.0) else e * s


@nb.njit(inline="always", **OPTS)
def tanh_f32(x):
    # tanh(|x|) with x's sign (llvm.copysign: -0 stays -0, NaN stays NaN): below 0.625 an odd
    # polynomial, else 1 - 2 / (exp(2|x|) + 1)
    ax = abs(x)
    z = ax * ax
    p = np.float32(-5.70498872745e-3)
    p = p * z + np.float32(2.06390887954e-2)
    p = p * z - np.float32(5.37397155531e-2)
    p = p * z + np.float32(1.33314422036e-1)
    p = p * z - np.float32(3.33332819422e-1)
    small = p * z * ax + ax
    big = np.float32(1.0) - np.float32(2.0) / (exp_f32(ax + ax) + np.float32(1.0))
    return math.copysign(small if ax < np.float32(0.625) else big, x)


@kernel(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64, T.int64, T.int64), parallel=False, **OPTS)
def k0_mul_add_tanh_sigmoid_relu_neg_exp(a0, a2, o0, n0, lo, hi):
    # mul add tanh sigmoid mul add relu neg mul exp mul add
    for i0_ in range(lo, hi):
        i0 = nonneg(i0_)
        for i1 in range(4):
            x0 = a0[i0, i1]
            x2 = a2[i0, i1]
            v4 = np.float32((x0 * np.float32(1.5)))
            v5 = np.float32((v4 + x2))
            v6 = np.float32(tanh_f32(v5))
            v7 = np.float32(sigmoid_f32(x0))
            v8 = np.float32((v6 * v7))
            v9 = np.float32((x2 + np.float32(-0.5)))
            v10 = np.float32((v9 if not (v9 <= np.float32(0)) else np.float32(0)))
            v11 = np.float32((-x0))
            v12 = np.float32((v11 * x0))
            v13 = np.float32(exp_f32(v12))
            v14 = np.float32((v10 * v13))
            v15 = np.float32((v8 + v14))
            o0[i0, i1] = v15

@kernel(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.int64, 1, "C"), T.Array(T.int64, 1, "C")), entry=True, **OPTS)
def driver(v0, v1, v2, sizes, addresses):
    dims = ints(sizes, 1)
    fns = ints(addresses, 1)
    pcall(k0_mul_add_tanh_sigmoid_relu_neg_exp, fns[0], dims[0], dims[0] * 4 >= 32768, v0, v1, v2, dims[0])

"""graphc generated module: 4 kernels and a driver for one compiled graph.

Each kernel is one @njit function; `driver` runs them all in order, so a call is one native call.
"""
import math

import numba as nb
import numpy as np
from numba import types as T

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


from graphc.backends.numba.intrinsics import f32_as_i32, i32_as_f32


@nb.njit(inline="always", **OPTS)
def exp_f32(x):
    # exp(x) = 2**n * exp(r), n = round(x / ln 2), |r| <= ln(2) / 2; exp(r) by a degree-6 polynomial;
    # 2**n as two factors so every exponent field stays normal (results down to the denormals)
    xc = min(max(x, np.float32(-104.0)), np.float32(89.0))
    n = np.floor(xc * np.float32(1.44269504088896341) + np.float32(0.5))
    r = xc - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    k = np.int32(n)
    k1 = k >> np.int32(1)
    y = p * i32_as_f32((k1 + np.int32(127)) << np.int32(23)) * i32_as_f32((k - k1 + np.int32(127)) << np.int32(23))
    return x if x != x else (np.float32(0.0) if x < np.float32(-104.0) else y)


@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64), parallel=False, **{**OPTS, 'fastmath': {'contract', 'reassoc'}})
def k0_logsumexp(a0, o0, n0):
    # logsumexp
    for i0 in range(n0):
        m = np.float32(-np.inf)
        bad = False
        for i1 in range(10):
            v = a0[i0, i1]
            bad = bad or v != v
            m = v if v > m else m
        if bad:
            o0[i0, 0] = np.float32(np.nan)
        elif m == np.inf or m == -np.inf:
            o0[i0, 0] = m
        else:
            s = np.float32(0)
            for i1 in range(10):
                s += exp_f32(a0[i0, i1] - m)
            o0[i0, 0] = m + np.float32(math.log(s))

@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64), parallel=False, **OPTS)
def k1_neg(a0, o0, n0):
    # neg
    for i0 in range(n0):
        for i1 in range(1):
            x0 = a0[i0, 0]
            v1 = np.float32((-x0))
            o0[i0, i1] = v1

@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64), parallel=False, **OPTS)
def k2_add_exp(a0, a1, o0, n0):
    # add exp
    for i0 in range(n0):
        for i1 in range(10):
            x0 = a0[i0, i1]
            x1 = a1[i0, 0]
            v2 = np.float32((x0 + x1))
            v3 = np.float32(exp_f32(v2))
            o0[i0, i1] = v3

@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 1, "C"), T.int64), parallel=False, **OPTS)
def k3_sum(a0, o0, n0):
    # sum
    for j0 in range(10):
        o0[j0] = np.float32(0.0)
    for i0 in range(n0):
        for i1 in range(10):
            x0 = a0[i0, i1]
            o0[i1] = o0[i1] + x0

@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 1, "C"), T.Array(T.int64, 1, "C")), **OPTS)
def driver(v0, v1, v2, v3, v4, dims):
    k0_logsumexp(v0, v1, dims[0])
    k1_neg(v1, v2, dims[1])
    k2_add_exp(v0, v2, v3, dims[2])
    k3_sum(v0, v4, dims[3])

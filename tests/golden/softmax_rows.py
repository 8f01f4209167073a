"""graphc generated module: 4 kernels and a driver for one compiled graph.

Each kernel is one @njit function; `driver` runs them all in order, so a call is one native call.
"""
import math

import numba as nb
import numpy as np
from numba import types as T

OPTS = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


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


@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64), parallel=False, **OPTS)
def k0_logsumexp(a0, o0, n0):
    # logsumexp
    for i0 in range(n0):
        m = np.float32(-np.inf)
        s = np.float32(0)
        for i1 in range(10):
            v = a0[i0, i1]
            if v > m:
                s = s * math.exp(m - v) + np.float32(1)
                m = v
            elif v == m:
                s += np.float32(1)
            elif v == v:
                s += math.exp(v - m)
            else:
                m = v
                s = np.float32(1)
        o0[i0, 0] = m + math.log(s) if m == m and not (m == np.inf or m == -np.inf) else m

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
            v3 = np.float32(math.exp(v2))
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

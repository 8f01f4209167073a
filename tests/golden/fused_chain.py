"""graphc generated module: 1 kernels and a driver for one compiled graph.

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


@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.int64), parallel=False, **OPTS)
def k0_mul_add_tanh_sigmoid_relu_neg_exp(a0, a2, o0, n0):
    # mul add tanh sigmoid mul add relu neg mul exp mul add
    for i0 in range(n0):
        for i1 in range(4):
            x0 = a0[i0, i1]
            x2 = a2[i0, i1]
            v4 = np.float32((x0 * np.float32(1.5)))
            v5 = np.float32((v4 + x2))
            v6 = np.float32(math.tanh(v5))
            v7 = np.float32(((np.float32(1) / (np.float32(1) + math.exp(-x0))) if x0 >= np.float32(0) else (math.exp(x0) / (np.float32(1) + math.exp(x0)))))
            v8 = np.float32((v6 * v7))
            v9 = np.float32((x2 + np.float32(-0.5)))
            v10 = np.float32((v9 if not (v9 <= np.float32(0)) else np.float32(0)))
            v11 = np.float32((-x0))
            v12 = np.float32((v11 * x0))
            v13 = np.float32(math.exp(v12))
            v14 = np.float32((v10 * v13))
            v15 = np.float32((v8 + v14))
            o0[i0, i1] = v15

@nb.njit(nb.void(T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.float32, 2, "C"), T.Array(T.int64, 1, "C")), **OPTS)
def driver(v0, v1, v2, dims):
    k0_mul_add_tanh_sigmoid_relu_neg_exp(v0, v1, v2, dims[0])

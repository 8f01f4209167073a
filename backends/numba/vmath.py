"""float32 exp, log, log1p, tanh, sigmoid and softplus written so LLVM vectorizes the loops that
call them: range reduction, a short polynomial and 2**n applied by AVX-512's vscalefps where the
host has it, else built from its bits (intrinsics.py).

numba's math.exp/math.tanh become calls to libm's scalar expf/tanhf, which stop LLVM from
vectorizing a fused loop (numba's SVML path needs an SVML-patched llvmlite, which PyPI's is not),
so a loop with a transcendental ran at a tenth of memory speed. These functions use only
arithmetic, comparisons and bit casts. The polynomials are Cephes' single-precision ones (S. L.
Moshier) except exp's: P in exp(r) = 1 + r + r**2 P(r), |r| <= ln(2)/2, is our degree-4 fit, minimax
in relative error (Lawson's reweighted least squares in float64, coefficients rounded to float32;
its own error 3.1e-9, a tenth of Cephes' degree-5 one's ulp budget, one FMA fewer; the test file
refits and checks it). Max errors against float64 over the float32 range are pinned in tests/backends/
test_vmath.py. Special values follow C99/NumPy: exp(-inf) = 0, exp(inf) = inf, log(0) = -inf,
log(x < 0) = nan, nan in -> nan out.

The code generator copies the source of the functions a module uses into that module (see
FUNCTIONS, NEEDS), so fn.source() shows exactly what runs and the module cache key covers it.
"""
from __future__ import annotations

import inspect
import math

import numba as nb
import numpy as np

from .intrinsics import f32_as_i32, i32_as_f32, ldexp_f32

OPTS = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)  # contract: a*b+c may be one FMA


def _host_has_avx512() -> bool:
    """Whether numba compiles for this machine (no NUMBA_CPU_NAME) and it has AVX-512F."""
    import llvmlite.binding as ll
    if nb.config.CPU_NAME:
        return False
    try:
        return bool(ll.get_host_cpu_features().get("avx512f"))
    except Exception:
        return False


# AVX-512's vscalefps scales by 2**n in one instruction (intrinsics.ldexp_f32); elsewhere ldexp is a
# libm call, which would stop the loop vectorizing, so 2**n is built from its bits instead. Both
# give the same bits (one rounding, into the denormals too; tests/backends/test_vmath.py).
HAS_SCALEF = _host_has_avx512()


@nb.njit(inline="always", **OPTS)
def exp_reduce_f32(x):
    # exp(x) = 2**n * exp(r), n = round(x / ln 2), |r| <= ln(2) / 2 (ln 2 in two parts: r is exact);
    # exp(r) = 1 + r + r**2 P(r), P of degree 4 (module docstring): (n, exp(r)). x is clamped to
    # [-110, 89], where 2**n * exp(r) rounds to 0 and to inf as exp(x) would; min and max pass NaN
    # on, so NaN gives NaN with no test of its own (n is then the conversion's 0x80000000, which
    # the NaN mantissa ignores).
    xc = min(max(x, np.float32(-110.0)), np.float32(89.0))
    n = np.floor(xc * np.float32(1.44269504088896341) + np.float32(0.5))
    r = xc - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.381453825e-3)
    p = p * r + np.float32(8.368745446e-3)
    p = p * r + np.float32(4.166838899e-2)
    p = p * r + np.float32(1.666652113e-1)
    p = p * r + np.float32(4.999999404e-1)
    return np.int32(n), (p * r + np.float32(1.0)) * r + np.float32(1.0)


@nb.njit(inline="always", **OPTS)
def exp_f32_scalef(x):
    # 2**n * exp(r), applied by AVX-512's scale instruction: one rounding, into the denormals
    k, p = exp_reduce_f32(x)
    return ldexp_f32(p, k)


@nb.njit(inline="always", **OPTS)
def exp_f32_bits(x):
    # 2**n * exp(r), 2**n as two factors so every exponent field stays normal (the first product
    # is exact, the second rounds once, into the denormals)
    k, p = exp_reduce_f32(x)
    k1 = k >> np.int32(1)
    return p * i32_as_f32((k1 + np.int32(127)) << np.int32(23)) * i32_as_f32((k - k1 + np.int32(127)) << np.int32(23))


@nb.njit(inline="always", **OPTS)
def log_f32(x):
    # x = m * 2**e with m in [sqrt(1/2), sqrt(2)); log(m) = f - f*f/2 + f**3 P(f), f = m - 1
    tiny = x < np.float32(1.17549435e-38)  # denormals: scale into the normal range first
    xs = x * np.float32(8388608.0) if tiny else x
    bits = f32_as_i32(xs)
    e = np.float32(((bits >> np.int32(23)) & np.int32(255)) - np.int32(126)) - (np.float32(23.0) if tiny else np.float32(0.0))
    m = i32_as_f32((bits & np.int32(8388607)) | np.int32(1056964608))  # mantissa in [0.5, 1)
    low = m < np.float32(0.707106781186547524)
    e = e - np.float32(1.0) if low else e
    f = (m + m - np.float32(1.0)) if low else (m - np.float32(1.0))
    z = f * f
    p = np.float32(7.0376836292e-2)
    p = p * f - np.float32(1.1514610310e-1)
    p = p * f + np.float32(1.1676998740e-1)
    p = p * f - np.float32(1.2420140846e-1)
    p = p * f + np.float32(1.4249322787e-1)
    p = p * f - np.float32(1.6668057665e-1)
    p = p * f + np.float32(2.0000714765e-1)
    p = p * f - np.float32(2.4999993993e-1)
    p = p * f + np.float32(3.3333331174e-1)
    y = p * f * z + e * np.float32(-2.12194440e-4) - np.float32(0.5) * z
    y = f + y + e * np.float32(0.693359375)
    if x > np.float32(0.0) and x < np.float32(np.inf):
        return y
    return (np.float32(-np.inf) if x == np.float32(0.0) else
            (x if x > np.float32(0.0) or x != x else np.float32(np.nan)))


@nb.njit(inline="always", **OPTS)
def log1p_f32(x):
    # log(1 + x) = log(w) * x / (w - 1), w = 1 + x rounded: the rounding error of w cancels
    w = x + np.float32(1.0)
    d = w - np.float32(1.0)
    y = log_f32(w)
    return x if d == np.float32(0.0) else (y if w == np.float32(np.inf) else y * (x / d))


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


@nb.njit(inline="always", **OPTS)
def sigmoid_f32(x):
    # e = exp(-|x|) <= 1: 1 / (1 + e) for x >= 0, e / (1 + e) below (and for NaN, which e carries),
    # exact down to the denormals
    e = exp_f32(-abs(x))
    s = np.float32(1.0) / (np.float32(1.0) + e)
    return s if x >= np.float32(0.0) else e * s


@nb.njit(inline="always", **OPTS)
def softplus_f32(x):
    # max(x, 0) + log1p(exp(-|x|)): no overflow for large x, exact exp(x) for very negative x
    return (x if x > np.float32(0.0) else np.float32(0.0)) + log1p_f32(exp_f32(-abs(x))) if x == x else x


exp_f32 = exp_f32_scalef if HAS_SCALEF else exp_f32_bits

# op name -> helper for float32 operands; NEEDS: helpers a helper calls (emitted first)
FUNCTIONS = {"exp": "exp_f32", "log": "log_f32", "log1p": "log1p_f32", "tanh": "tanh_f32",
             "sigmoid": "sigmoid_f32", "softplus": "softplus_f32"}
NEEDS = {"exp_f32": ["exp_reduce_f32"], "log1p_f32": ["log_f32"], "tanh_f32": ["exp_f32"],
         "sigmoid_f32": ["exp_f32"], "softplus_f32": ["exp_f32", "log_f32", "log1p_f32"]}
IMPORT = "from graphc.backends.numba.intrinsics import f32_as_i32, i32_as_f32, ldexp_f32\n"


def source_of(names) -> str:
    """The source of these helpers and what they call, in dependency order, for a generated module
    (exp_f32 is this machine's variant, written under that name)."""
    order: list[str] = []

    def add(n):
        for d in NEEDS.get(n, []):
            add(d)
        if n not in order:
            order.append(n)
    for n in sorted(names):
        add(n)

    def text(n):
        src = inspect.getsource(globals()[n])
        return src.replace(f"def {globals()[n].__name__}(", f"def {n}(", 1)
    return "".join("\n\n" + text(n) for n in order)

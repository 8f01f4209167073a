"""float32 exp, log, log1p, tanh, sigmoid, softplus, erf, sin and cos written so LLVM vectorizes
the loops that call them: range reduction, a short polynomial and 2**n applied by AVX-512's
vscalefps where the host has it, else built from its bits (intrinsics/bits.py).

numba's math.exp/math.tanh become calls to libm's scalar expf/tanhf, which stop LLVM from
vectorizing a fused loop (numba's SVML path needs an SVML-patched llvmlite, which PyPI's is not), so
a loop with a transcendental ran at a tenth of memory speed. These functions use only arithmetic,
comparisons, bit casts and (sin, cos) reads of a table of 2/pi's bits, which become vector gathers.
The polynomials are Cephes' single-precision ones (S. L. Moshier) except exp's, erf's (ours, fitted
the same way) and sin/cos's (Taylor, in float64 after a float64 or integer range reduction, so they
round once: 0.5 ulp). exp's: P in exp(r) = 1 + r + r**2 P(r), |r| <= ln(2)/2, is our degree-4 fit,
minimax in relative error (Lawson's reweighted least squares in float64, coefficients rounded to
float32; its own error 3.1e-9, a tenth of Cephes' degree-5 one's ulp budget, one FMA fewer; the test
file checks it). Max errors against float64 over the float32 range are pinned in
tests/numba/test_vmath.py. Special values follow C99/NumPy: exp(-inf) = 0, exp(inf) = inf, log(0)
= -inf, log(x < 0) = nan, nan in -> nan out.

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
# give the same bits (one rounding, into the denormals too; tests/numba/test_vmath.py).
HAS_SCALEF = _host_has_avx512()


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
    e = np.float32(((bits >> np.int32(23)) & np.int32(255)) - np.int32(126)) \
        - (np.float32(23.0) if tiny else np.float32(0.0))
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


@nb.njit(inline="always", **OPTS)
def erf_f32(x):
    # |x| < 1: x * P(x**2), as x + x * (P - 1); else 1 - exp(-x**2) * R(1/|x|) with x's sign,
    # R = erfcx fitted over 1/|x| in [0.25, 1] in powers of t = 1/|x| - 0.625 (its own error
    # 1.2e-8 relative) and held at its x = 4 value beyond, where exp(-x**2) * R is below half an
    # ulp of 1. P: degree 6 in x**2, 1.4e-9 relative. Both are our fits (Lawson's reweighted least
    # squares, coefficients rounded to float32 one at a time and the rest refitted after each;
    # the test file checks them). inf gives 1 (exp(-inf) = 0), NaN NaN.
    ax = abs(x)
    z = x * x
    p = np.float32(7.806903158780187e-05)
    p = p * z + np.float32(-0.0007997853099368513)
    p = p * z + np.float32(0.005187162198126316)
    p = p * z + np.float32(-0.026853347197175026)
    p = p * z + np.float32(0.11283578723669052)
    p = p * z + np.float32(-0.3761262595653534)
    p = p * z + np.float32(0.12837916612625122)  # P's 2/sqrt(pi) less 1: erf = x + x * p, one FMA
    u = np.float32(1.0) / ax
    t = (u if u > np.float32(0.25) else np.float32(0.25)) - np.float32(0.625)
    r = np.float32(-0.0651346743106842)
    r = r * t + np.float32(0.024488665163517)
    r = r * t + np.float32(0.01592922769486904)
    r = r * t + np.float32(-0.026418162509799004)
    r = r * t + np.float32(0.04181243106722832)
    r = r * t + np.float32(-0.04699815437197685)
    r = r * t + np.float32(0.023402279242873192)
    r = r * t + np.float32(0.04376917704939842)
    r = r * t + np.float32(-0.17239604890346527)
    r = r * t + np.float32(0.3822837471961975)
    r = r * t + np.float32(0.3059529960155487)
    big = np.float32(1.0) - exp_f32(-z) * r
    return x * p + x if ax < np.float32(1.0) else math.copysign(big, x)


def _two_over_pi_words(count: int = 32) -> np.ndarray:
    """Words of F = floor(2**256 * 2/pi): word k is bits [8k, 8k + 32) of F (overlapping, so any
    96 bits starting at a multiple of 8 are three words, k, k + 4, k + 8). pi by Machin's formula
    in integers, 600 bits."""
    def atan_inv(k, bits):  # atan(1/k) * 2**bits
        s, t, n, sign = 0, (1 << bits) // k, 1, 1
        while t:
            s, t, n, sign = s + sign * (t // n), t // (k * k), n + 2, -sign
        return s
    bits = 600
    pi = 16 * atan_inv(5, bits) - 4 * atan_inv(239, bits)
    f = (2 << (bits + 256)) // pi
    return np.array([(f >> (8 * k)) & 0xFFFFFFFF for k in range(count)], dtype=np.uint64)


TWO_OVER_PI_WORDS = _two_over_pi_words()


@nb.njit(inline="always", **OPTS)
def trig_reduce_f32(x):
    # |x| = n * pi/2 + r, |r| <= pi/4 (a hair more for large |x|): (r as float64, n mod 4).
    # Below 2**19, in float64: n = round(|x| * 2/pi), r = |x| - n * P1 - n * P1T with P1 pi/2's
    # first 33 bits (n * P1 exact) and P1T the next 53. From 2**19 on (and for inf, NaN, whose
    # result the callers replace), |x| = m * 2**(e - 150) times 96 bits of 2/pi chosen by e, in
    # 64-bit integers: the 2 integer and 62 fraction bits of |x| * 2/pi mod 4 (the bits above
    # are a multiple of 4, the bits below change it by < 2**-63). Both are computed and one is
    # selected, so loops stay vectorized (the table reads become gathers).
    ax = abs(x)
    a = np.float64(ax if ax < np.float32(524288.0) else np.float32(524288.0))
    fn = math.floor(a * 0.6366197723675814 + 0.5)
    r_small = (a - fn * 1.5707963267341256) - fn * 6.077100506506192e-11
    b = f32_as_i32(ax)
    e = b >> 23
    e = e if e > 146 else 146
    e = e if e < 254 else 254
    q = (319 - e) >> 3
    m = np.uint64((b & 0x7FFFFF) | 0x800000) << np.uint64(8 * q + e - 312)
    w0, w1, w2 = TWO_OVER_PI_WORDS[q], TWO_OVER_PI_WORDS[q + 4], TWO_OVER_PI_WORDS[q + 8]
    res = ((m * w0) >> np.uint64(32)) + m * w1 + ((m * w2) << np.uint64(32))
    n_large = (res + np.uint64(1 << 61)) >> np.uint64(62)
    r_large = np.float64(np.int64(res - (n_large << np.uint64(62)))) * 3.4061215800865545e-19
    large = ax >= np.float32(524288.0)
    return (r_large if large else r_small), (np.int64(n_large) if large else np.int64(fn))


@nb.njit(inline="always", **OPTS)
def sincos_poly(r):
    # sin(r) and cos(r) in float64 for |r| <= pi/4: Taylor to r**11 and r**12 (< 1e-11 relative)
    z = r * r
    s = r + r * z * (-1.6666666666666666e-01 + z * (8.333333333333333e-03 + z * (-1.984126984126984e-04
        + z * (2.7557319223985893e-06 + z * (-2.505210838544172e-08 + z * 1.6059043836821613e-10)))))
    c = 1.0 + z * (-0.5 + z * (4.1666666666666664e-02 + z * (-1.388888888888889e-03 + z * (
        2.48015873015873e-05 + z * (-2.755731922398589e-07 + z * 2.08767569878681e-09)))))
    return s, c


@nb.njit(inline="always", **OPTS)
def sin_f32(x):
    # sin and cos of the reduced r, the quadrant n picks one and its sign, one rounding to
    # float32 (at most a hair over half an ulp from the float64 steps). x - x is 0
    # for finite x and NaN for inf and NaN; sin is odd (sin(-0) = -0).
    r, n = trig_reduce_f32(x)
    s, c = sincos_poly(r)
    v = c if n & 1 else s
    v = -v if n & 2 else v
    return np.float32(math.copysign(1.0, x) * (v + (x - x)))


@nb.njit(inline="always", **OPTS)
def cos_f32(x):
    # as sin_f32, the quadrant shifted by one; even in x
    r, n = trig_reduce_f32(x)
    s, c = sincos_poly(r)
    v = s if n & 1 else c
    v = -v if (n + 1) & 2 else v
    return np.float32(v + (x - x))


exp_f32 = exp_f32_scalef if HAS_SCALEF else exp_f32_bits

# op name -> helper for float32 operands; NEEDS: helpers a helper calls (emitted first)
FUNCTIONS = {"exp": "exp_f32", "log": "log_f32", "log1p": "log1p_f32", "tanh": "tanh_f32",
             "sigmoid": "sigmoid_f32", "softplus": "softplus_f32", "erf": "erf_f32", "sin": "sin_f32",
             "cos": "cos_f32"}
NEEDS = {"exp_f32": ["exp_reduce_f32"], "log1p_f32": ["log_f32"], "tanh_f32": ["exp_f32"],
         "sigmoid_f32": ["exp_f32"], "softplus_f32": ["exp_f32", "log_f32", "log1p_f32"],
         "erf_f32": ["exp_f32"], "sin_f32": ["trig_reduce_f32", "sincos_poly"],
         "cos_f32": ["trig_reduce_f32", "sincos_poly"]}
IMPORT = "from graphc.backends.numba.intrinsics import f32_as_i32, i32_as_f32, ldexp_f32\n"


def source_of(names) -> str:
    """The source of these helpers and what they call, in dependency order, for a generated module
    (exp_f32 is this machine's variant, written under that name), after the import of sin/cos's
    table where they need it."""
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
    table = "from graphc.backends.numba.vmath import TWO_OVER_PI_WORDS\n" if "trig_reduce_f32" in order else ""
    return table + "".join("\n\n" + text(n) for n in order)

"""The numba backend's vectorizable float32 math (backends/numba/vmath.py) against float64 NumPy
over the whole float32 range: random bit patterns, denormals, overflow and underflow edges,
infinities, NaN and signed zeros; and the loops that use it really vectorize."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import special

import graphc as gc

# max error in units of the last place of the float32 result (float64 reference)
ULPS = {"exp": 1.0, "log": 1.0, "log1p": 3.0, "tanh": 2.0, "sigmoid": 3.0, "softplus": 3.0, "erf": 1.5,
        "sin": 0.501, "cos": 0.501}
REF = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
       "sigmoid": lambda x: np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))),
                                     np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))),
       "softplus": lambda x: np.logaddexp(0.0, x), "erf": special.erf, "sin": np.sin, "cos": np.cos}
SPECIAL = [524288.0, -524288.0, 524287.97, 3.9, 4.0, 4.1, 0.99999994, 1.0000001,  # sin/cos's and erf's seams
           0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 1.1754944e-38, 3.4028235e38,
           -3.4028235e38, 88.72283, 88.72284, 88.8, -87.33655, -103.27893, -103.97208, -104.0, -110.0,
           1.0, -1.0, 0.625, -0.625, 0.62499994, 9.0, -9.0, 44.0, 0.70710677, 0.7071068, 1.4142135,
           2.0, 0.5, 1e-7, -1e-7, 1e-20, -0.9999999, -1.0 + 2 ** -24, 16.635532, -16.635532]


def inputs():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2 ** 32, size=400_000, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(np.float32), np.array(SPECIAL, np.float32),
                           rng.uniform(-30, 30, 200_000).astype(np.float32),
                           rng.uniform(-104, 89, 1_000_000).astype(np.float32),  # exp's whole finite range
                           rng.uniform(-1, 1, 100_000).astype(np.float32),
                           rng.uniform(-6, 6, 100_000).astype(np.float32),  # erf's pieces meet at 1
                           rng.uniform(-2.0 ** 20, 2.0 ** 20, 100_000).astype(np.float32),  # sin/cos's two reductions
                           np.float32(np.pi / 2) * np.arange(-3000, 3000, dtype=np.float32),  # near n * pi/2
                           np.float32(2.0) ** rng.integers(-149, 128, 20_000).astype(np.float32)])


@pytest.fixture(scope="module")
def compiled():
    x = gc.placeholder((None,), "float32", name="x")
    fns = {name: getattr(gc, name)(x) for name in ULPS}
    return gc.compile([x], list(fns.values()), backend="numba"), list(fns)


def ulp_error(got, ref64):
    """|got - ref| in float32 ulps of the reference (denormal spacing below the normal range)."""
    with np.errstate(over="ignore", invalid="ignore"):
        ref32 = ref64.astype(np.float32)
    fin = np.isfinite(ref32) & np.isfinite(got)
    with np.errstate(over="ignore"):  # the spacing of FLT_MAX is inf: an error there counts as 0 ulp
        spacing = np.spacing(np.abs(ref32[fin])).astype(np.float64)
    return np.abs(got[fin].astype(np.float64) - ref64[fin]) / spacing, ref32


@pytest.mark.parametrize("name", list(ULPS))
def test_accuracy_over_the_float32_range(compiled, name):
    fn, names = compiled
    x = inputs()
    got = fn(x)[names.index(name)]
    assert got.dtype == np.float32
    with np.errstate(all="ignore"):
        ref = REF[name](x.astype(np.float64))
    err, ref32 = ulp_error(got, ref)
    assert err.max() <= ULPS[name], f"{name}: {err.max():.2f} ulp"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref32))       # NaN exactly where NumPy's
    inf = np.isinf(ref32)
    np.testing.assert_array_equal(got[inf], ref32[inf])                # overflow to the right infinity
    np.testing.assert_array_equal(np.isinf(got), inf)
    zero = ref32 == 0
    np.testing.assert_array_equal(np.signbit(got[zero & ~np.isnan(got)]), np.signbit(ref32[zero]))


def _coefficients(fn, var):
    """The float32 coefficients of the Horner chain for `var` in a vmath function's source, highest
    power first."""
    import inspect
    src = inspect.getsource(fn)
    return [float(c) for c in re.findall(rf"{var} = (?:{var} \* \w \+ )?np\.float32\(([-0-9.e]+)\)", src)]


def _horner(coef, t):
    """The polynomial with these float32 coefficients (highest power first) at t, in float64."""
    acc = np.zeros_like(t)
    for c in coef:
        acc = acc * t + np.float64(np.float32(c))
    return acc


def test_exp_polynomial_is_a_fit_to_a_tenth_of_an_ulp():
    # exp(r) = 1 + r + r**2 P(r) over |r| <= ln(2)/2 with vmath's float32 coefficients, in float64:
    # the approximation itself must leave the float32 rounding (6e-8 relative) nearly all the budget
    from graphc.backends.numba import vmath
    coef = _coefficients(vmath.exp_reduce_f32, "p")
    assert len(coef) == 5
    r = np.linspace(-np.log(2) / 2, np.log(2) / 2, 200_001)
    rel = np.abs((1 + r + r * r * _horner(coef, r)) / np.exp(r) - 1)
    assert rel.max() < 4e-9, rel.max()


def test_erf_polynomials_are_fits_well_inside_an_ulp():
    # erf = x + x * P(x**2) below 1 (P less its 1 as written) and 1 - exp(-x**2) * R(1/x - 0.625) from
    # 1, with vmath's float32 coefficients evaluated in float64 against SciPy
    from graphc.backends.numba import vmath
    p, r = _coefficients(vmath.erf_f32, "p"), _coefficients(vmath.erf_f32, "r")
    assert len(p) == 7 and len(r) == 11
    x = np.linspace(1e-4, 1, 100_001)
    assert np.abs((x + x * _horner(p, x * x)) / special.erf(x) - 1).max() < 3e-9
    x = np.linspace(1, 4, 100_001)
    assert np.abs(_horner(r, 1 / x - 0.625) / special.erfcx(x) - 1).max() < 3e-8


def test_two_over_pi_table_holds_its_bits():
    # sin/cos's large-argument reduction reads 2/pi's bits: word k is bits [8k, 8k + 32) of
    # floor(2**256 * 2/pi); the top 160 bits are the published ones (fdlibm's two_over_pi table)
    from graphc.backends.numba import vmath
    w = [int(v) for v in vmath.TWO_OVER_PI_WORDS]
    top = 0
    for k in (28, 24, 20, 16, 12):
        top = (top << 32) | w[k]
    assert f"{top:040X}" == "A2F9836E4E441529FC2757D1F534DDC0DB629599"
    assert all(w[k] >> 8 == w[k + 1] & 0xFFFFFF for k in range(len(w) - 1))  # overlapping by 24 bits


def test_special_values_exactly():
    x = gc.placeholder((None,), "float32")
    f = gc.compile([x], [gc.exp(x), gc.log(x), gc.tanh(x), gc.sigmoid(x)], backend="numba")
    v = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0], np.float32)
    e, lg, th, sg = f(v)
    np.testing.assert_array_equal(e[:5], [1, 1, np.inf, 0, np.nan])
    np.testing.assert_array_equal(lg[:5], [-np.inf, -np.inf, np.inf, np.nan, np.nan])
    assert np.isnan(lg[5]) and lg[6] == 0
    np.testing.assert_array_equal(th[:5], [0.0, -0.0, 1.0, -1.0, np.nan])
    assert np.signbit(th[1])
    np.testing.assert_array_equal(sg[:5], [0.5, 0.5, 1.0, 0.0, np.nan])


def test_fused_loops_call_no_libm_and_vectorize(tmp_path, monkeypatch):
    # a fresh module folder: numba cannot show the machine code of a kernel it loaded from its cache
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    x = gc.placeholder((None,), "float32", name="x")
    fn = gc.compile([x], [gc.exp(x) * gc.tanh(x) + gc.log(gc.abs(x)) + gc.softplus(x),
                          gc.sin(x) * gc.cos(x) + gc.erf(x)], backend="numba")
    src = fn.source()
    assert not re.search(r"math\.(exp|log|log1p|tanh|erf|sin|cos)\(", src)
    assert "def exp_f32" in src and "def sin_f32" in src and "def erf_f32" in src
    kerns = [k for k in fn.kernels if k.kind == "loop"]
    assert len(kerns) == 1  # the two outputs read x: one loop computes both
    for kern in kerns:
        jit = getattr(fn._exe.mod, kern.name)
        ir = "".join(jit.inspect_llvm().values())
        assert re.search(r"<\d+ x float>", ir), f"{kern.name}: the float32 loop was not vectorized"
        assert not re.search(r"call .*@(expf|logf|tanhf|log1pf|erff|sinf|cosf|sin|cos)\b", ir)


def test_exp_variants_agree_bit_for_bit():
    # the AVX-512 exp (2**n by llvm.ldexp: vscalefps) and the portable one (2**n from its bits) round
    # once in the same place: identical results over the whole float32 range
    import numba as nb

    from graphc.backends.numba import vmath

    def loop(exp):
        @nb.njit(error_model="numpy", fastmath={"contract"})
        def run(a, o):
            for i in range(a.size):
                o[i] = exp(a[i])
        return run
    x = inputs()
    a, b = np.empty_like(x), np.empty_like(x)
    loop(vmath.exp_f32_scalef)(x, a)
    loop(vmath.exp_f32_bits)(x, b)
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_exp_of_a_nan_the_compiler_can_see_is_nan_in_both_variants():
    # a row kernel's branch for rows with no finite maximum computes exp(x - NaN) with the NaN a
    # constant: the int of a NaN is poison to LLVM, and the portable exp gave garbage there (its
    # stores dropped) until n was converted only where it is a number
    import numba as nb

    from graphc.backends.numba import vmath

    def loop(exp):
        @nb.njit(error_model="numpy", fastmath={"contract", "reassoc"})
        def run(a, o):
            m = np.float32(np.nan)
            for i in range(a.size):
                o[i] = exp(a[i] - m)
        return run
    x = np.linspace(-5, 5, 37).astype(np.float32)
    for exp in (vmath.exp_f32_bits, vmath.exp_f32_scalef):
        o = np.zeros_like(x)
        loop(exp)(x, o)
        assert np.isnan(o).all(), o


def test_exp_uses_the_scale_instruction_where_there_is_one(tmp_path, monkeypatch):
    from graphc.backends.numba import vmath
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    x = gc.placeholder((None,), "float32", name="x")
    fn = gc.compile([x], [gc.exp(x) * 2.5], backend="numba")
    asm = "".join(getattr(fn._exe.mod, fn.kernels[0].name).inspect_asm().values())
    assert not re.search(r"call\w*\s+\S*ldexpf", asm)  # never a libm call per element
    if vmath.HAS_SCALEF:
        assert "ldexp_f32(" in fn.source() and re.search(r"vscalefps\s+%zmm", asm)
    else:
        assert "ldexp_f32(" not in fn.source() and "vscalefps" not in asm


def test_float64_keeps_libm():
    x = gc.placeholder((None,), "float64")
    f = gc.compile([x], gc.exp(x), backend="numba")
    assert "math.exp" in f.source() and "exp_f32" not in f.source()
    v = np.linspace(-700, 700, 1001)
    np.testing.assert_allclose(f(v), np.exp(v), rtol=1e-15)

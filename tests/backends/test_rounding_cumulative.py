"""gc.floor / ceil / round / trunc / fmod / mod / asin / acos and gc.cumsum / cumprod / topk against
NumPy on every backend (edge cases: halves, signed zeros' neighbours, huge values, inf, NaN), and
their gradients against float64 finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

EDGES = np.array([-2.5, -1.5, -0.5, -0.49999997, 0.49999997, 0.5, 1.5, 2.5, 3.7, -3.7, 1e20, -1e20,
                  np.inf, -np.inf, np.nan, 0.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rounding_matches_numpy(backend, dtype):
    x = gc.placeholder((len(EDGES),), dtype)
    v = EDGES.astype(dtype)
    f = gc.compile([x], [gc.floor(x), gc.ceil(x), gc.round(x), gc.trunc(x)], backend=backend)
    for got, want in zip(f(v), (np.floor(v), np.ceil(v), np.round(v), np.trunc(v))):
        assert got.dtype == v.dtype
        np.testing.assert_array_equal(got, want)
    i = gc.placeholder((3,), "int64")
    assert gc.floor(i) is i and gc.round(i) is i  # integers are integers already


def test_remainders_match_numpy(backend):
    a, b = gc.placeholder((None,), "float64"), gc.placeholder((None,), "float64")
    ai, bi = gc.placeholder((None,), "int64"), gc.placeholder((None,), "int64")
    f = gc.compile([a, b, ai, bi], [gc.mod(a, b), gc.fmod(a, b), gc.mod(ai, bi), gc.fmod(ai, bi)], backend=backend)
    A = np.array([7.5, -7.5, 7.5, -7.5, 1.0, -1.0, np.inf, 0.0])
    B = np.array([2.0, 2.0, -2.0, -2.0, np.inf, np.inf, 2.0, -3.0])
    Ai, Bi = np.array([7, -7, 7, -7, 0, 5]), np.array([3, 3, -3, -3, 4, 5])
    with np.errstate(invalid="ignore"):
        want = [np.mod(A, B), np.fmod(A, B), np.mod(Ai, Bi), np.fmod(Ai, Bi)]
    for got, w in zip(f(A, B, Ai, Bi), want):
        assert got.dtype == w.dtype
        np.testing.assert_array_equal(got, w)


def test_inverse_sines_and_cumulative_ops_match_numpy(backend):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (4, 6))
    x = gc.placeholder((4, 6), "float64")
    v, i = gc.topk(x, 3, axis=1)
    vs, js = gc.topk(x, 2, axis=0, largest=False)
    outs = [gc.asin(x), gc.acos(x), gc.cumsum(x, 1), gc.cumsum(x, 0, exclusive=True, reverse=True),
            gc.cumprod(x, 1), gc.cumprod(x, 0, reverse=True), v, i, vs, js]
    got = gc.compile([x], outs, backend=backend)(X)
    order = np.argsort(-X, axis=1, kind="stable")[:, :3]
    small = np.argsort(X, axis=0, kind="stable")[:2]
    want = [np.arcsin(X), np.arccos(X), np.cumsum(X, 1), np.cumsum(X[::-1], 0)[::-1] - X,
            np.cumprod(X, 1), np.cumprod(X[::-1], 0)[::-1], np.take_along_axis(X, order, 1), order,
            np.take_along_axis(X, small, 0), small]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_topk_ties_go_to_the_smaller_index_and_long_sums_scan():
    x = gc.placeholder((6,), "float32")
    v, i = gc.topk(x, 4)
    got = gc.compile([x], [v, i])(np.array([1, 3, 3, 2, 3, 1], np.float32))
    np.testing.assert_array_equal(got[1], [1, 2, 4, 3])
    long = gc.placeholder((3000,), "float64")  # beyond the triangle: a scan
    c = gc.cumsum(long)
    assert any(n.op.name == "scan" for n in gc.toposort([c]))
    vals = np.random.default_rng(1).normal(size=3000)
    np.testing.assert_allclose(gc.compile([long], c)(vals), np.cumsum(vals), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["asin", "acos", "cumsum", "cumprod", "topk", "floor"])
def test_gradients(backend, name):
    rng = np.random.default_rng(2)
    X = rng.uniform(-0.9, 0.9, (3, 4)) + 0.0
    fns = {"asin": gc.asin, "acos": gc.acos, "cumsum": lambda x: gc.cumsum(x, 1, exclusive=True),
           "cumprod": lambda x: gc.cumprod(x, 1, reverse=True), "topk": lambda x: gc.topk(x, 2, axis=1)[0],
           "floor": lambda x: gc.floor(x * 3.0) + x}  # floor's derivative is zero: only x's remains
    assert gc.check_grad(fns[name], [X], backend=backend) < 1e-6

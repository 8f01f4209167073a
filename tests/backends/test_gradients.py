"""Every differentiable primitive and composite against float64 central differences, plus the
kinks, closed forms, higher order and deep graphs."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from op_cases import CASES, make_array

import graphc as gc


def _grad_params():
    out = []
    for case in CASES:
        if "float64" not in case.dtypes:
            continue
        for k, variant in enumerate(case.shapes):
            if any(0 in s for s in variant):
                continue  # nothing to perturb
            dts = case.in_dtypes("float64") if case.in_dtypes else ("float64",) * len(variant)
            phs = [gc.placeholder(s, d) for s, d in zip(variant, dts)]
            if case.graph(*phs).dtype != np.float64:
                continue  # bool/int results and casts to float32 carry no float64 gradient
            out.append(pytest.param(case, k, id=f"{case.id}-{k}"))
    return out


@pytest.mark.parametrize("case,k", _grad_params())
def test_gradient_matches_central_differences(case, k):
    """float64 central differences, on the NumPy oracle (the compiled backends are compared with it
    below, on the same backward graphs)."""
    backend = "numpy"
    variant = case.shapes[k]
    dts = case.in_dtypes("float64") if case.in_dtypes else ("float64",) * len(variant)
    rng = np.random.default_rng(k + 7)
    domains = case.domain or ("any",) * len(variant)
    feeds = [make_array(rng, s, d, dom) for s, d, dom in zip(variant, dts, domains)]
    err = gc.check_grad(case.graph, feeds, rtol=1e-6, backend=backend,
                        placeholder_shapes=[case.placeholder_shape(s) for s in variant])
    assert err < 1e-6


def _run(backend, inputs, outputs, *feeds):
    return gc.compile(inputs, outputs, backend=backend)(*feeds)


def test_course_example(backend):
    x, y, z = (gc.placeholder((), "float64", name=n) for n in "xyz")
    f = (x + y) * gc.maximum(y, z)
    got = _run(backend, [x, y, z], [f] + gc.grad(f, [x, y, z]), 1.0, 2.0, 0.0)
    assert [float(v) for v in got] == [6.0, 2.0, 5.0, 0.0]


def test_kinks_and_ties(backend):
    x = gc.placeholder((5,), "float64", name="x")
    y = gc.placeholder((5,), "float64", name="y")
    zero = np.zeros(5)
    outs = [gc.grad(gc.sum(f), [x])[0] for f in (gc.relu(x), gc.step(x), gc.abs(x), gc.sign(x))]
    for g in _run(backend, [x], outs, zero):
        np.testing.assert_array_equal(g, zero)  # relu'(0) = step' = abs'(0) = sign' = 0
    # maximum/minimum at a tie: the whole gradient goes to the first argument
    gx, gy = gc.grad(gc.sum(gc.maximum(x, y)), [x, y])
    hx, hy = gc.grad(gc.sum(gc.minimum(x, y)), [x, y])
    a = np.array([1.0, 2.0, 3.0, 0.0, -1.0])
    b = np.array([1.0, 3.0, 2.0, 0.0, 5.0])
    got = _run(backend, [x, y], [gx, gy, hx, hy], a, b)
    np.testing.assert_array_equal(got[0], [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(got[1], [0, 1, 0, 0, 1])
    np.testing.assert_array_equal(got[2], [1, 1, 0, 1, 1])
    np.testing.assert_array_equal(got[3], [0, 0, 1, 0, 0])
    # a max reduction shares the gradient among tied maxima
    (gm,) = gc.grad(gc.max(x), [x])
    np.testing.assert_array_equal(_run(backend, [x], gm, np.array([1.0, 3.0, 3.0, 0.0, 3.0])),
                                  [0, 1 / 3, 1 / 3, 0, 1 / 3])


def test_not_differentiable_paths_give_zero(backend):
    x = gc.placeholder((4,), "float64", name="x")
    through_int = gc.cast(gc.cast(x, "int64"), "float64") * x.sum()
    through_argmax = gc.cast(gc.argmax(x), "float64")
    through_compare = gc.cast(x > 0, "float64")
    g = [gc.grad(gc.sum(f), [x])[0] for f in (through_int, through_argmax, through_compare)]
    data = np.array([1.5, -2.0, 3.0, 0.5])
    got = _run(backend, [x], g, data)
    np.testing.assert_array_equal(got[0], np.full(4, np.sum(np.trunc(data))))  # only the sum path
    np.testing.assert_array_equal(got[1], np.zeros(4))
    np.testing.assert_array_equal(got[2], np.zeros(4))


def test_unrelated_input_gets_zeros_and_several_uses_add_up(backend):
    x = gc.placeholder((None, 3), "float64", name="x")
    w = gc.parameter(np.ones(3), name="w")
    other = gc.parameter(np.ones((2, 2)), name="other")
    y = gc.sum(x * w) + gc.sum(w * w) + gc.sum(gc.exp(w))
    gw, go, gx = gc.grad(y, [w, other, x])
    assert gw.shape == (3,) and go.shape == (2, 2) and gx.shape == (None, 3)
    data = np.arange(6.0).reshape(2, 3)
    got = _run(backend, [x], [gw, go, gx], data)
    np.testing.assert_allclose(got[0], data.sum(0) + 2 + np.e)
    np.testing.assert_array_equal(got[1], np.zeros((2, 2)))
    np.testing.assert_array_equal(got[2], np.ones((2, 3)))


def test_logistic_regression_gradient_closed_form(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4))
    Y = (rng.random(20) < 0.5).astype(np.float64)
    x = gc.placeholder((None, 4), "float64", name="x")
    y = gc.placeholder((None,), "float64", name="y")
    w = gc.parameter(rng.normal(size=4), name="w")
    # log-likelihood sum_n y log s + (1 - y) log(1 - s), s = sigmoid(w.x); its negative's gradient
    s = gc.sigmoid(x @ w)
    nll = -gc.sum(y * gc.log(s) + (1 - y) * gc.log(1 - s))
    (g,) = gc.grad(nll, [w])
    want = -((Y - 1 / (1 + np.exp(-X @ w.value)))[:, None] * X).sum(0)
    np.testing.assert_allclose(_run(backend, [x, y], g, X, Y), want, rtol=1e-10)


def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot(backend):
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(8, 5)) * 3
    labels = rng.integers(0, 5, 8)
    z = gc.placeholder((None, 5), "float64", name="z")
    y = gc.placeholder((None,), "int64", name="y")
    (g,) = gc.grad(gc.cross_entropy(z, y, reduction="sum"), [z])
    (gm,) = gc.grad(gc.cross_entropy(z, y), [z])
    e = np.exp(Z - Z.max(1, keepdims=True))
    want = e / e.sum(1, keepdims=True) - np.eye(5)[labels]
    got, got_mean = _run(backend, [z, y], [g, gm], Z, labels)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got_mean, want / 8, rtol=1e-10, atol=1e-14)


def test_deep_chain_differentiates_without_recursion():
    """Graph depth is a front-end and autodiff matter; the NumPy backend runs it (a compiled backend
    would spend its time compiling 300 kernels)."""
    backend = "numpy"
    x = gc.placeholder((3,), "float64", name="x")
    y = x
    for _ in range(10_000):
        y = gc.tanh(y) * 1.0001
    (g,) = gc.grad(gc.sum(y), [x])
    val = _run(backend, [x], g, np.array([0.1, 0.2, -0.3]))
    assert np.all(np.isfinite(val)) and np.all(val > 0)


def _second(fn, w):
    """x -> <grad of sum(fn(x) * w), .>: a function whose value is a first derivative."""
    return lambda x: gc.grad(gc.sum(fn(x) * w), [x])[0]


SECOND = {
    "tanh": gc.tanh, "sigmoid": gc.sigmoid, "softplus": gc.softplus, "exp": gc.exp,
    "log": lambda x: gc.log(x * x + 0.5), "log_softmax": gc.log_softmax,
    "matmul": lambda x: gc.tanh(x @ np.linspace(-1, 1, 12).reshape(4, 3)),
    "cross_entropy": lambda x: gc.cross_entropy(x, np.array([0, 3, 1])),
    "sqrt_pow_div": lambda x: gc.sqrt(x * x + 1) / (x ** 2 + 2),
    "max_prod": lambda x: gc.max(x, 1) * gc.prod(x, 0).sum(),
    "getitem_concat_pad": lambda x: gc.pad(gc.concat([x[:, 1:], x[:, [0, 2]], x[::-1, ::3]], 1), 1) ** 2,
    "logsumexp_mean_var": lambda x: gc.logsumexp(x, 1) + gc.var(x, 0).sum() + gc.mean(x ** 3),
}


@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_derivatives(name, backend):
    rng = np.random.default_rng(3)
    x0 = rng.normal(size=(3, 4))
    w = rng.normal(size=SECOND[name](gc.placeholder((3, 4), "float64")).shape)
    assert gc.check_grad(_second(SECOND[name], w), [x0], backend=backend) < 1e-6


def test_third_derivative(backend):
    x0 = np.array([0.3, -0.7, 1.1])
    f = lambda x: gc.grad(gc.sum(gc.grad(gc.sum(gc.sin(x) * gc.exp(x)), [x])[0]), [x])[0]  # noqa: E731
    assert gc.check_grad(f, [x0], backend=backend) < 1e-6


def test_hessian_and_hvp_of_logistic_loss(backend):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 3))
    Y = (rng.random(30) < 0.5).astype(np.float64)
    w = gc.placeholder((3,), "float64", name="w")
    v = gc.placeholder((3,), "float64", name="v")
    loss = gc.binary_cross_entropy_with_logits(gc.constant(X) @ w, Y, reduction="sum")
    H = gc.hessian(loss, w)
    Hv = gc.hvp(loss, w, v)
    w0, v0 = rng.normal(size=3), rng.normal(size=3)
    got_H, got_Hv = _run(backend, [w, v], [H, Hv], w0, v0)
    p = 1 / (1 + np.exp(-X @ w0))
    want = X.T @ (X * (p * (1 - p))[:, None])  # X^T diag(p(1-p)) X
    np.testing.assert_allclose(got_H, want, rtol=1e-10)
    np.testing.assert_allclose(got_Hv, want @ v0, rtol=1e-10)


def test_vjp_of_non_scalar(backend):
    x = gc.placeholder((2, 3), "float64", name="x")
    u = np.arange(6.0).reshape(2, 3)
    (g,) = gc.vjp(gc.sin(x) * 2, [x], u)
    x0 = np.full((2, 3), 0.5)
    np.testing.assert_allclose(_run(backend, [x], g, x0), u * 2 * np.cos(x0))


def test_grad_errors():
    x = gc.placeholder((3,), "float64", name="x")
    i = gc.placeholder((3,), "int64", name="i")
    with pytest.raises(gc.ShapeError, match=r"grad needs a scalar y.*shape \(3,\).*gc.vjp"):
        gc.grad(x * 2, [x])
    with pytest.raises(gc.DTypeError, match="i is int64: integer and bool tensors have no gradient"):
        gc.grad(gc.sum(x), [i])
    with pytest.raises(gc.GradientCheckError, match="relative error"):
        wrong = lambda a: gc.sum(gc.cast(gc.cast(a * 1000, "int64"), "float64"))  # noqa: E731
        gc.check_grad(lambda a: gc.sum(a * a) + wrong(a), [np.array([0.1234, 0.5678, 0.91011])], eps=1e-3)


def test_backward_graph_is_printable():
    x = gc.placeholder((None, 4), "float32", name="x")
    w = gc.parameter(np.ones((4, 2), np.float32), name="W")
    loss = gc.mean(gc.tanh(x @ w))
    text = gc.format_backward(loss, [w])
    assert "from" in text and "(tanh)" in text and "(matmul)" in text
    assert text.splitlines()[-1].endswith(f"= d {loss.label} / d W")
    assert "(4, 2) float32" in text.splitlines()[-1]


def test_gradient_checks_cover_every_differentiable_primitive():
    from graphc.ir import toposort
    from graphc.ops import REGISTRY

    used = set()
    for p in _grad_params():
        case, k = p.values
        dts = case.in_dtypes("float64") if case.in_dtypes else ("float64",) * len(case.shapes[k])
        phs = [gc.placeholder(case.placeholder_shape(s), d) for s, d in zip(case.shapes[k], dts)]
        used |= {n.op.name for n in toposort([case.graph(*phs)])}
    # train_switch never reaches a backend; tests/backends/test_training.py checks its gradient in both modes
    want = {n for n, op in REGISTRY.items() if op.kind not in ("leaf", "mode") and op.differentiable}
    assert not want - used, f"differentiable primitives never gradient-checked: {sorted(want - used)}"


def _backward_batches(size=40):
    seen, params = set(), []
    for p in _grad_params():
        case, k = p.values
        if case.id not in seen:  # one variant per case
            seen.add(case.id)
            params.append((case, k))
    return [params[i:i + size] for i in range(0, len(params), size)]


@pytest.mark.parametrize("batch", range(len(_backward_batches())))
@pytest.mark.parametrize("compiled", [b for b in BACKENDS if b != "numpy"])
def test_backward_graphs_agree_across_backends(batch, compiled):
    """Every gradient-checked backward graph gives the NumPy oracle's values on each compiled backend."""
    backend = compiled
    phs, outs, feeds = [], [], []
    for case, k in _backward_batches()[batch]:
        variant = case.shapes[k]
        dts = case.in_dtypes("float64") if case.in_dtypes else ("float64",) * len(variant)
        rng = np.random.default_rng(k + 7)
        domains = case.domain or ("any",) * len(variant)
        ps = [gc.placeholder(case.placeholder_shape(s), d) for s, d in zip(variant, dts)]
        y = gc.sum(case.graph(*ps) * 1.5)
        wrt = [p for p in ps if p.dtype.kind == "f"]
        phs += ps
        outs += gc.grad(y, wrt)
        feeds += [make_array(rng, s, d, dom) for s, d, dom in zip(variant, dts, domains)]
    want = gc.compile(phs, outs, backend="numpy")(*feeds)
    got = gc.compile(phs, outs, backend=backend)(*feeds)
    for g, w, node in zip(got, want, outs):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"gradient built at {node.loc}")

"""Silent wrong answers and raw exceptions found by a hostile new user (issue 22), one test each:
every case ends as the right answer or the same GraphError subclass on every backend."""
from __future__ import annotations

import gc as pygc
import sys
import threading
import weakref

import numpy as np
import pytest

import graphc as gc


def _f32(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------- 1. run-time dims never broadcast
def test_a_run_time_dim_fed_as_one_against_a_known_dim_is_a_shape_error(backend):
    x = gc.placeholder((None, 3), name="x")
    w = gc.parameter(np.arange(12, dtype=np.float32).reshape(4, 3), name="w")
    y = x + w
    (gx,) = gc.grad(gc.sum(y * y), [x])
    f = gc.compile([x], [y, gx], backend=backend)
    with pytest.raises(gc.ShapeError, match=r"dim 0 of input x \(None, 3\) is known only at run time and was "
                                            r"fed as 1, but it meets size 4") as e:
        f(np.ones((1, 3), np.float32))
    assert "test_reliability.py" in str(e.value)  # the user's line that built x + w
    got_y, got_g = f(np.ones((4, 3), np.float32))  # fed as assumed: right
    np.testing.assert_allclose(got_y, 1 + w.value)
    np.testing.assert_allclose(got_g, 2 * (1 + w.value))


def test_run_time_broadcast_in_updates_matmul_batches_and_between_run_time_dims(backend):
    acc = gc.parameter(np.zeros(5, np.float32), name="acc")
    v = gc.placeholder((None,), name="v")
    step = gc.compile([v], gc.sum(v), updates=[(acc, acc + v)], backend=backend)
    with pytest.raises(gc.ShapeError, match="fed as 1, but it meets size 5"):
        step(np.ones(1, np.float32))
    np.testing.assert_array_equal(acc.value, np.zeros(5))  # the failed call changed nothing
    step(np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(acc.value, np.arange(5))

    plain = gc.compile([v], gc.sum(v), updates=[(acc, v * 2)], backend=backend)  # a new value of run-time size
    for n in (1, 7):
        with pytest.raises(gc.ShapeError, match=rf"update of parameter acc \(5,\) computed shape \({n},\)"):
            plain(np.ones(n, np.float32))
    np.testing.assert_array_equal(acc.value, np.arange(5))

    a = gc.placeholder((None, 2, 3), name="a")
    b = gc.parameter(_f32(4, 3, 2), name="b")
    bmm = gc.compile([a], a @ b, backend=backend)
    with pytest.raises(gc.ShapeError, match=r"matmul .*dim 0 of input a \(None, 2, 3\)"):
        bmm(np.ones((1, 2, 3), np.float32))
    np.testing.assert_allclose(bmm(np.ones((4, 2, 3), np.float32)), np.ones((4, 2, 3)) @ b.value, rtol=1e-5)

    p = gc.placeholder((None, 3), name="p")
    q = gc.placeholder((None, 3), name="q")
    both = gc.compile([p, q], p * q, backend=backend)
    for n, m in ((1, 4), (4, 1), (2, 5)):  # a ShapeError on every backend (numpy's was another class)
        with pytest.raises(gc.ShapeError):
            both(np.ones((n, 3), np.float32), np.ones((m, 3), np.float32))
    np.testing.assert_array_equal(both(np.full((0, 3), 2, np.float32), np.ones((0, 3), np.float32)),
                                  np.ones((0, 3)))


def test_a_dim_declared_one_still_broadcasts(backend):
    x = gc.placeholder((1, 3), name="x")
    w = gc.parameter(np.arange(12, dtype=np.float32).reshape(4, 3))
    (gx,) = gc.grad(gc.sum(x * w), [x])
    got, g = gc.compile([x], [x * w, gx], backend=backend)(np.full((1, 3), 2, np.float32))
    np.testing.assert_allclose(got, 2 * w.value)
    np.testing.assert_allclose(g, w.value.sum(0, keepdims=True))


# ---------------------------------------------------------------- 2. concurrent calls
@pytest.mark.parametrize("be", ["numpy", "numba"])
def test_threads_calling_one_function_get_their_own_results(be):
    w = gc.parameter(_f32(256, 256), name="w")
    x = gc.placeholder((None, 256), name="x")
    f = gc.compile([x], gc.tanh(x @ w) * 2 + 1, backend=be)  # the product lives in a shared workspace
    wrong, errors = [0], []

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(40):
                a = rng.normal(size=(64, 256)).astype(np.float32)
                if not np.allclose(f(a), np.tanh(a @ w.value) * 2 + 1, atol=1e-4):
                    wrong[0] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and wrong[0] == 0


# ---------------------------------------------------------------- 3. several index arrays
def test_several_index_arrays_are_range_checked(backend):
    for rows in (4, None):
        x = gc.placeholder((rows, 3), name="x")
        i = gc.placeholder((2,), "int64", name="i")
        j = gc.placeholder((2,), "int64", name="j")
        f = gc.compile([x, i, j], x[i, j], backend=backend)
        X = np.arange(12, dtype=np.float32).reshape(4, 3)
        np.testing.assert_array_equal(f(X, np.array([1, -4]), np.array([2, -3])), X[[1, -4], [2, -3]])
        for bad_i, bad_j in (([1, 0], [3, -4]), ([4, 0], [0, 0]), ([-5, 0], [0, 0]), ([0, 0], [0, -4])):
            with pytest.raises(gc.GraphIndexError, match="out of range"):
                f(X, np.array(bad_i), np.array(bad_j))


# ---------------------------------------------------------------- 4. saturated binary cross-entropy
def _torch_bce(p, t):
    """PyTorch's binary_cross_entropy: each log clamped at -100, mean over elements."""
    with np.errstate(divide="ignore"):
        lp = np.maximum(np.log(p.astype(np.float64)), -100)
        lq = np.maximum(np.log(1 - p.astype(np.float64)), -100)
    return np.mean(-(t * lp + (1 - t) * lq))


@pytest.mark.parametrize("optimize", [True, False])
def test_bce_of_a_saturated_sigmoid_has_torchs_value_and_a_finite_gradient(backend, optimize):
    z0 = np.array([20.0, -20.0, 3.0, 0.5], np.float32)
    z = gc.parameter(z0.copy(), name="z")
    t = gc.placeholder((4,), name="t")
    loss = gc.binary_cross_entropy(gc.sigmoid(z), t)
    (gz,) = gc.grad(loss, [z])
    T = np.array([0.0, 1.0, 0.3, 1.0], np.float32)
    value, grad = gc.compile([t], [loss, gz], backend=backend, optimize=optimize)(T)
    p = (1 / (1 + np.exp(-z0.astype(np.float64)))).astype(np.float32)
    np.testing.assert_allclose(value, _torch_bce(p, T), rtol=1e-5)  # 50.5 + ...: the -100 clamps
    assert np.isfinite(grad).all()
    # where the clamp does not bind, the gradient is the exact one: (sigmoid(z) - t) / n
    np.testing.assert_allclose(grad[2:], (p[2:] - T[2:]) / 4, rtol=1e-4)
    sgd = gc.compile([t], loss, updates=gc.optim.SGD(0.1).updates(loss, [z]), backend=backend, optimize=optimize)
    sgd(T)
    assert np.isfinite(z.value).all()


# ---------------------------------------------------------------- 5. large logits
OFFSETS = [0.0, 1e3, 1e6, 1e8, 1e10]


def test_log_softmax_and_cross_entropy_are_exact_at_large_logits(backend):
    x = gc.placeholder((len(OFFSETS), 3), name="logits")
    y = gc.placeholder((len(OFFSETS),), "int64", name="y")
    f = gc.compile([x, y], [gc.log_softmax(x), gc.softmax(x), gc.cross_entropy(x, y, reduction="none")],
                   backend=backend)
    X = (np.array([[0, 1, 2]], np.float32) + np.array(OFFSETS, np.float32)[:, None]).astype(np.float32)
    d = X.astype(np.float64) - X.max(1, keepdims=True)  # the oracle: float64 on the same float32 logits
    ref = d - np.log(np.exp(d).sum(1, keepdims=True))
    logp, p, ce = f(X, np.zeros(len(OFFSETS), np.int64))
    np.testing.assert_allclose(logp, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(p, np.exp(ref), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ce, -ref[:, 0], rtol=1e-6)
    assert abs(ce[2] - 2.407606) < 1e-5  # logits [0, 1, 2] + 1e6, label 0 (was 2.4375)


# ---------------------------------------------------------------- 6. keys, axes, powers, sizes
def test_constants_and_attrs_key_on_their_bits(backend):
    x = gc.placeholder((2,), name="x")
    neg, pos = gc.pad(x, 1, -0.0), gc.pad(x, 1, 0.0)
    assert neg is not pos
    a, b = gc.compile([x], [neg, pos], backend=backend)(np.ones(2, np.float32))
    assert np.signbit(a[0]) and not np.signbit(b[0])
    assert gc.constant(np.float32(-0.0)) is not gc.constant(np.float32(0.0))


def test_transpose_axes_integer_powers_and_int64_sizes_are_checked(backend):
    x = gc.placeholder((2, 3), name="x")
    for axes in ((0, 5), (0, 0), (1,), (-3, 0)):
        with pytest.raises(gc.ShapeError, match="does not fit"):
            gc.transpose(x, axes)
    back = gc.compile([x], gc.transpose(x, (-1, 0)), backend=backend)
    np.testing.assert_array_equal(back(np.ones((2, 3), np.float32)), np.ones((3, 2)))
    i = gc.placeholder((3,), "int64", name="i")
    with pytest.raises(gc.DTypeError, match="negative integer powers"):
        i ** -1
    e = gc.placeholder((3,), "int64", name="e")
    f = gc.compile([i, e], i ** e, backend=backend)
    np.testing.assert_array_equal(f(np.array([2, 3, 4]), np.array([3, 0, 2])), [8, 1, 16])
    with pytest.raises(gc.GraphIndexError, match="integer exponent"):  # numba used to give 0
        f(np.array([2, 1, 3]), np.array([1, -1, 0]))
    with pytest.raises(gc.ShapeError, match="more than an int64 counts"):
        gc.placeholder((2 ** 32, 2 ** 32))
    big = gc.placeholder((None, None), name="big")
    g = gc.compile([big], gc.reshape(big, -1) * 2, backend=backend)
    np.testing.assert_array_equal(g(np.ones((2, 3), np.float32)), np.full(6, 2))


# ---------------------------------------------------------------- 7./8. compile-time crashes
def test_an_update_of_a_parameter_the_graph_never_reads(backend):
    w = gc.parameter(np.ones(3, np.float32), name="w")
    last = gc.parameter(np.float32(0), name="last_loss")
    x = gc.placeholder((3,), name="x")
    loss = gc.sum(x * w)
    f = gc.compile([x], loss, updates=[(last, loss)], backend=backend)
    assert f(np.arange(3, dtype=np.float32)) == 3.0 and last.value == 3.0


def test_fusion_never_builds_a_cycle_between_kernels(backend):
    a = gc.placeholder((2, 5), name="a")
    t = gc.placeholder((2, 5), name="t")
    y = gc.sum(gc.softmax(t) * gc.log_softmax(a))
    ce = gc.cross_entropy(a, gc.softmax(t))
    outs = [y, gc.grad(y, [a])[0], ce, gc.grad(ce, [a])[0]]
    A, T = _f32(2, 5), _f32(2, 5, seed=1)
    want = gc.compile([a, t], outs, backend="numpy")(A, T)
    for got, w in zip(gc.compile([a, t], outs, backend=backend)(A, T), want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- 9. one behaviour everywhere
def test_check_numerics_stops_on_every_backend_and_keeps_the_parameter(backend):
    w = gc.parameter(np.array([1e38], np.float32), name="w")
    x = gc.placeholder((1,), name="x")
    f = gc.compile([x], gc.sum(w), updates=[(w, w * x)], backend=backend, check_numerics=True)
    with pytest.raises(gc.GraphRuntimeError, match=r"check_numerics: kernel \S+ \[.*mul.*\] produced NaN or inf"):
        f(np.array([10.0], np.float32))
    assert w.value[0] == np.float32(1e38)


def test_a_result_too_big_for_memory_is_a_graph_error(backend):
    a = gc.placeholder((None, 1), name="a")
    b = gc.placeholder((1, None), name="b")
    f = gc.compile([a, b], a * b, backend=backend)
    n = 1_000_000  # 3.6 TiB of float32
    with pytest.raises(gc.OutOfMemoryError, match=r"mul"):
        f(np.ones((n, 1), np.float32), np.ones((1, n), np.float32))


# ---------------------------------------------------------------- 12. concat of run-time sizes
def test_gradient_of_concat_with_several_run_time_sizes(backend):
    x = gc.placeholder((None, 3), "float64", name="x")
    y = gc.placeholder((None, 3), "float64", name="y")
    w = np.random.default_rng(2).normal(size=3)
    loss = gc.sum(gc.tanh(gc.concat([x, 2 * x, y, gc.constant(np.ones((2, 3)))], 0) * w) ** 2)
    gx, gy = gc.grad(loss, [x, y])
    (hx,) = gc.grad(gc.sum(gx * gx), [x])  # the pieces' own gradient (second order)
    f = gc.compile([x, y], [gx, gy, hx], backend=backend)
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(4, 3)), rng.normal(size=(2, 3))

    def L(X, Y):
        return np.sum(np.tanh(np.concatenate([X, 2 * X, Y, np.ones((2, 3))]) * w) ** 2)

    def numeric(fn, X):
        out = np.zeros_like(X)
        for i in np.ndindex(X.shape):
            d = np.zeros_like(X)
            d[i] = 1e-6
            out[i] = (fn(X + d) - fn(X - d)) / 2e-6
        return out
    got_x, got_y, got_h = f(X, Y)
    np.testing.assert_allclose(got_x, numeric(lambda X: L(X, Y), X), atol=1e-7)
    np.testing.assert_allclose(got_y, numeric(lambda Y: L(X, Y), Y), atol=1e-7)
    gfn = gc.compile([x, y], gc.sum(gx * gx), backend="numpy")
    np.testing.assert_allclose(got_h, numeric(lambda X: float(gfn(X, Y)), X), atol=1e-6)
    np.testing.assert_array_equal(f(X[:0], Y[:1])[1].shape, (1, 3))  # other sizes, same function


# ---------------------------------------------------------------- 13. smaller
def test_smaller_messages_and_names():
    b = gc.placeholder((2,), "bool", name="b")
    with pytest.raises(gc.DTypeError, match="gc.logical_xor"):
        b - b
    c = gc.placeholder((2,), "bool", name="c")
    f = gc.compile([b, c], [gc.logical_xor(b, c), b ^ c])
    for got in f(np.array([True, False]), np.array([True, True])):
        np.testing.assert_array_equal(got, [False, True])
    w = gc.placeholder((2, 2), name="w")
    with pytest.raises(gc.ShapeError, match=r"pad_width \[1, 2, 3\] does not fit a 2-d tensor") as e:
        gc.pad(w, [1, 2, 3])
    assert "test_reliability.py" in str(e.value)
    d1 = gc.placeholder((2,), name="dup")
    d2 = gc.placeholder((2,), name="dup")
    with pytest.raises(gc.CompileError, match="two input placeholders are named 'dup'"):
        gc.compile([d1, d2], d1 + d2)


def test_dropped_numba_functions_release_their_modules():
    x = gc.placeholder((None, 4), name="x")
    refs = []
    for k in range(3):
        f = gc.compile([x], gc.tanh(x * float(k + 17.25)) + 0.125, backend="numba")
        f(np.ones((2, 4), np.float32))
        refs.append(weakref.ref(f._exe.mod))
        name = f._exe.mod.__name__
        del f
        assert name not in sys.modules
    pygc.collect()
    assert all(r() is None for r in refs)
    # a module still in use is found again, not loaded twice
    f1 = gc.compile([x], gc.tanh(x * 3.5), backend="numba")
    f2 = gc.compile([x], gc.tanh(x * 3.5), backend="numba")
    assert f1._exe.mod is f2._exe.mod
    del f1
    pygc.collect()
    np.testing.assert_allclose(f2(np.ones((1, 4), np.float32)), np.tanh(np.full((1, 4), 3.5)), rtol=1e-6)


def test_zeros_like_follows_run_time_dims(backend):
    x = gc.placeholder((None, 3), "float64", name="x")
    f = gc.compile([x], gc.zeros_like(x) + gc.sum(x), backend=backend)
    for n in (0, 1, 4):
        got = f(np.ones((n, 3)))
        assert got.shape == (n, 3) and got.dtype == np.float64
        np.testing.assert_array_equal(got, np.full((n, 3), 3.0 * n))

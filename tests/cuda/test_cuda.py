"""The CUDA backend beyond the backends tier (which runs every op and graph on it): its kernels'
shapes of work (reductions longer than a block, tiled and batched matmuls), parameters resident
on the device and shared with host backends, errors from the device, and the digits example.

Under CI these run on numba's CUDA simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1);
on a GPU machine run them with NUMBA_ENABLE_CUDASIM=0. The NumPy backend is the oracle."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc

pytest.importorskip("numba.cuda")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def both(inputs, outputs, feeds, **kw):
    """Results on cuda and on the NumPy reference backend."""
    got = gc.compile(inputs, outputs, backend="cuda", **kw)(*feeds)
    want = gc.compile(inputs, outputs, backend="numpy", **kw)(*feeds)
    return got, want


def test_cpu_backends_do_not_import_cuda():
    code = ("import sys, numpy as np, graphc as gc\n"
            "x = gc.placeholder((3,))\n"
            "for b in ('numpy', 'numba'):\n"
            "    gc.compile([x], [gc.exp(x)], backend=b)(np.ones(3, np.float32))\n"
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported by a CPU backend'\n"
            "gc.compile([x], [gc.exp(x)], backend='cuda')(np.ones(3, np.float32))\n"
            "assert 'numba.cuda' in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "NUMBA_ENABLE_CUDASIM": os.environ.get("NUMBA_ENABLE_CUDASIM", "1")})
    assert r.returncode == 0, r.stderr[-2000:]


def test_generated_module_is_cuda_kernels():
    x = gc.placeholder((None, 6), name="x")
    w = gc.parameter(np.ones((6, 4), np.float32), name="w")
    h = gc.relu(x @ w + 1.0)
    fn = gc.compile([x], [h, gc.sum(h * h, axis=1)], backend="cuda")
    src = fn.source()
    assert "cuda.grid(1)" in src and "cuda.syncthreads()" in src and "cuda.shared.array" in src
    assert "prange" not in src and "njit" not in src
    kernels = [k for k in fn.kernels if k.kind != "view"]
    # every schedule kernel has a host function that launches it, called by the driver in order
    for k in kernels:
        assert f"def run_{k.name}(" in src and f"    run_{k.name}(" in src
    assert src.count("@cuda.jit(T.void(") >= len(kernels)  # explicit signatures: compiled up front


@pytest.mark.parametrize("axes,keep", [(1, False), ((0, 2), True), (None, False), (2, True)])
def test_reductions_longer_than_a_block(axes, keep):
    """Each output's elements are spread over a block's threads (8 on the simulator, 128 on a GPU)
    and combined in shared memory; the elementwise producer and a second output fuse into it."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 37, 5)).astype(np.float32)
    x = gc.placeholder((3, 37, 5), name="x")
    y = gc.tanh(x) * 2.0
    outs = [gc.sum(y, axis=axes, keepdims=keep), gc.max(x, axis=axes, keepdims=keep),
            gc.min(y, axis=axes, keepdims=keep), y]
    got, want = both([x], outs, [a])
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


def test_reduction_of_many_elements_to_one():
    a = np.random.default_rng(2).uniform(0.5, 1.5, size=(1000,)).astype(np.float64)
    x = gc.placeholder((None,), "float64")
    got, want = both([x], [gc.sum(x), gc.prod(x * 0 + 1.001), gc.max(x)], [a])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)


@pytest.mark.parametrize("sa,sb,dtype", [((9, 7), (7, 5), "float32"), ((3, 1, 5, 6), (2, 6, 4), "float64"),
                                         ((7,), (7, 5), "float32"), ((5, 7), (7,), "float64"),
                                         ((6, 9), (9, 3), "int64"), ((4, 0), (0, 3), "float32")])
def test_matmul_tiles_batches_and_vectors(sa, sb, dtype):
    """Sizes that are not multiples of the tile, broadcast batch dims, vectors, ints, empty inner."""
    rng = np.random.default_rng(3)
    A = (rng.integers(-3, 4, sa) if dtype == "int64" else rng.normal(size=sa)).astype(dtype)
    B = (rng.integers(-3, 4, sb) if dtype == "int64" else rng.normal(size=sb)).astype(dtype)
    a, b = gc.placeholder(sa, dtype), gc.placeholder(sb, dtype)
    (got,), (want,) = both([a, b], [a @ b], [A, B])
    assert got.shape == want.shape == np.matmul(A, B).shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_transposed_operand_is_read_as_a_view():
    rng = np.random.default_rng(4)
    A, B = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    a, b = gc.placeholder((7, 5)), gc.placeholder((7, 3))
    fn = gc.compile([a, b], gc.transpose(a) @ b, backend="cuda")
    assert [k.kind for k in fn.kernels] == ["view", "matmul"]  # no transpose copy
    np.testing.assert_allclose(fn(A, B), A.T @ B, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def regression():
    """A small linear model with an SGD update, compiled on cuda, numba and numpy over the same
    parameters; and a copy of the parameters' initial values."""
    rng = np.random.default_rng(5)
    w0, b0 = rng.normal(size=(4, 2)).astype(np.float32), np.zeros(2, np.float32)
    w, b = gc.parameter(w0.copy(), name="w"), gc.parameter(b0.copy(), name="b")
    x, y = gc.placeholder((None, 4), name="x"), gc.placeholder((None, 2), name="y")
    loss = gc.mean((x @ w + b - y) ** 2)
    gw, gb = gc.grad(loss, [w, b])
    ups = {w: w - 0.1 * gw, b: b - 0.1 * gb}
    fns = {be: gc.compile([x, y], [loss], updates=ups, backend=be) for be in ("cuda", "numba", "numpy")}
    X, Y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)
    return fns, (w, b), (w0, b0), (X, Y)


def _reset(params, init):
    for p, v in zip(params, init):
        p.value = v


def _reference(fns, params, init, data, steps):
    _reset(params, init)
    for _ in range(steps):
        fns["numpy"](*data)
    return [p.value.copy() for p in params]


def test_parameters_stay_on_the_device_between_steps(regression):
    fns, params, init, data = regression
    want = _reference(fns, params, init, data, 3)
    _reset(params, init)
    for _ in range(3):
        fns["cuda"](*data)
    for p, v in zip(params, init):
        cell = p.data
        assert cell.mirror is not None and cell.mirror.newer  # the device copy is ahead
        np.testing.assert_array_equal(cell._array, v)  # the host array was not touched by the steps
    for p, v in zip(params, want):
        np.testing.assert_allclose(p.value, v, rtol=1e-5, atol=1e-6)  # copied back on demand
        assert not p.data.mirror.newer


def test_workspaces_are_planned_once(regression):
    fns, params, init, data = regression
    exe = fns["cuda"]._exe
    fns["cuda"](*data)
    plan = exe.plan([d.shape for d in data])
    arrays = list(plan.arrays)
    fns["cuda"](*data)
    assert exe.plan([d.shape for d in data]) is plan and all(a is b for a, b in zip(plan.arrays, arrays))
    assert all(p.data.mirror.array is a for p in params for a in arrays if a is p.data.mirror.array)


def test_host_and_device_backends_share_parameters(regression):
    """cuda, numba, a value set by hand, cuda again: each step sees the one before it."""
    fns, params, init, data = regression
    _reset(params, init)
    fns["numpy"](*data)
    fns["numpy"](*data)
    mid = [p.value.copy() for p in params]
    want = _reference(fns, params, mid, data, 2)
    _reset(params, init)
    fns["cuda"](*data)   # on the device
    fns["numba"](*data)  # reads the device's values back first, then updates the host arrays
    np.testing.assert_allclose(params[0].value, mid[0], rtol=1e-5, atol=1e-6)
    params[1].value = mid[1]  # set by hand: the next device step uploads it
    fns["cuda"](*data)
    fns["numba"](*data)
    for p, v in zip(params, want):
        np.testing.assert_allclose(p.value, v, rtol=1e-5, atol=1e-6)


def test_out_buffers_receive_the_results(regression):
    fns, params, init, data = regression
    _reset(params, init)
    want = fns["numpy"](*data)
    _reset(params, init)
    buf = np.empty((), np.float32)
    got = fns["cuda"](*data, out=[buf])
    assert got[0] is buf
    np.testing.assert_allclose(buf, want[0], rtol=1e-5)


def test_index_error_from_the_device_names_the_node_and_changes_nothing():
    table = gc.parameter(np.arange(12, dtype=np.float32).reshape(4, 3), name="table")
    ids = gc.placeholder((None,), "int64", name="ids")
    rows = gc.take(table, ids, axis=0)  # the user's line
    loss = gc.sum(rows)
    fn = gc.compile([ids], [loss], updates={table: table - 0.5 * gc.grad(loss, [table])[0]}, backend="cuda")
    fn(np.array([0, 3]))
    before = table.value.copy()
    with pytest.raises(gc.GraphIndexError) as e:
        fn(np.array([1, 7]))
    msg = str(e.value)
    assert "take" in msg and "index out of range" in msg and "test_cuda.py" in msg
    np.testing.assert_array_equal(table.value, before)
    fn(np.array([1, 2]))  # the error word is cleared: the next call runs
    assert not np.array_equal(table.value, before)


def test_check_numerics_on_the_device():
    x = gc.placeholder((3,), name="x")
    y = gc.log(x) * 2.0
    fn = gc.compile([x], [gc.sum(y)], backend="cuda", check_numerics=True)
    np.testing.assert_allclose(fn(np.ones(3, np.float32)), 0.0)
    with pytest.raises(gc.GraphRuntimeError) as e:
        fn(np.array([1.0, -1.0, 2.0], np.float32))
    assert "check_numerics" in str(e.value) and "NaN or inf" in str(e.value)


def test_digits_mlp_trains_the_same_on_cuda_and_numba():
    """The example's model (hidden widths reduced for the simulator): one short epoch of Adam with
    dropout gives the same losses, metrics and weights on cuda as on numba."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import mlp_digits
    from datasets import digits
    (X, Y), _, _ = digits()
    X, Y = X[:24], Y[:24]
    runs = {}
    for be in ("numba", "cuda"):
        t = mlp_digits.build(be, hidden=(8, 8))
        h = t.fit(X, Y, epochs=1, batch_size=8, validation_data=(X[:8], Y[:8]), verbose=False)
        runs[be] = (h, t.evaluate(X, Y), [p.value.copy() for p in t.model.parameters()])
    (h1, e1, w1), (h2, e2, w2) = runs["numba"], runs["cuda"]
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-5)
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-5)
    assert e1["accuracy"] == e2["accuracy"]
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)

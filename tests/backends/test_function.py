"""Function behaviour on every backend: updates all-or-nothing, fresh outputs, run-time dims."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def test_updates_apply_after_outputs_and_see_old_values(backend):
    x = gc.placeholder((2,), name="x")
    w = gc.parameter(np.array([1.0, 2.0], np.float32), name="w")
    v = gc.parameter(np.array([10.0, 20.0], np.float32), name="v")
    # each update reads the values from before the call, as in PyTensor/TF1
    f = gc.compile([x], [w * x, v], updates={w: w + v, v: v * w}, backend=backend)
    out, v_out = f(np.ones(2, np.float32))
    np.testing.assert_array_equal(out, [1, 2])
    np.testing.assert_array_equal(v_out, [10, 20])
    np.testing.assert_array_equal(w.value, [11, 22])
    np.testing.assert_array_equal(v.value, [10, 40])
    v_out[:] = -1  # a returned array is the caller's own
    np.testing.assert_array_equal(v.value, [10, 40])


def test_failed_call_changes_no_parameter(backend):
    i = gc.placeholder((), "int64", name="i")
    a = gc.parameter(np.zeros(3, np.float32), name="a")
    b = gc.parameter(np.zeros(3, np.float32), name="b")
    table = gc.constant(np.arange(4, dtype=np.float32))
    f = gc.compile([i], a.sum(), updates=[(a, a + 1.0), (b, b + gc.take(table, i))], backend=backend)
    f(np.int64(2))
    np.testing.assert_array_equal(a.value, [1, 1, 1])
    np.testing.assert_array_equal(b.value, [2, 2, 2])
    with pytest.raises(gc.GraphIndexError, match="take"):
        f(np.int64(7))
    np.testing.assert_array_equal(a.value, [1, 1, 1])  # the update of a had been computed, not applied
    np.testing.assert_array_equal(b.value, [2, 2, 2])
    with pytest.raises(gc.FeedError):
        f(np.float64(1.0))
    np.testing.assert_array_equal(a.value, [1, 1, 1])


def test_single_output_list_outputs_and_repeats(backend):
    x = gc.placeholder((3,), name="x")
    w = gc.parameter(np.ones(3, np.float32), name="w")
    y = x * 2.0
    one = gc.compile([x], y, backend=backend)
    assert isinstance(one(np.ones(3, np.float32)), np.ndarray)
    many = gc.compile([x], [y, y, w, x], backend=backend)
    feed = np.ones(3, np.float32)
    a, b, wv, xv = many(feed)
    assert a is not b and np.array_equal(a, b)
    wv[:] = 7
    xv[:] = 7
    assert np.all(w.value == 1) and np.all(feed == 1)
    scalar = gc.compile([x], x.sum(), backend=backend)(feed)
    assert scalar.shape == () and scalar.dtype == np.float32


def test_run_time_batch_changes_between_calls(backend):
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], [x.mean(0), x.mean()], backend=backend)
    for n in (5, 2, 7, 0):
        data = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
        m0, m = f(data)
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(m0, data.mean(0), rtol=1e-6, equal_nan=True)
            np.testing.assert_allclose(m, data.mean(), rtol=1e-6, equal_nan=True)


def test_several_run_time_dims_in_squeeze_and_expand(backend):
    x = gc.placeholder((None, 1, None), name="x")
    s = gc.squeeze(x, 1)
    e = gc.expand_dims(s, (0, 2))
    assert s.shape == (None, None) and e.shape == (1, None, 1, None)
    f = gc.compile([x], [s, e, gc.flatten(e, 2)], backend=backend)
    data = np.arange(6, dtype=np.float32).reshape(2, 1, 3)
    got_s, got_e, got_f = f(data)
    np.testing.assert_array_equal(got_s, data[:, 0])
    np.testing.assert_array_equal(got_e, np.expand_dims(data[:, 0], (0, 2)))
    np.testing.assert_array_equal(got_f, np.expand_dims(data[:, 0], (0, 2)).reshape(1, 2, 3))


def test_outputs_need_no_inputs(backend):
    c = gc.constant(np.arange(3.0))
    f = gc.compile([], [c * 2, c], backend=backend)
    a, b = f()
    np.testing.assert_array_equal(a, [0, 2, 4])
    b[0] = 9  # constants are read-only inside; the caller gets a copy
    np.testing.assert_array_equal(c.value, [0, 1, 2])


def test_out_buffers_receive_the_results(backend):
    x = gc.placeholder((None, 3), name="x")
    w = gc.parameter(np.array([1.0, 2.0, 3.0], np.float32), name="w")
    y = gc.tanh(x * w) + 1.0
    s = gc.sum(y)
    f = gc.compile([x], [y, s, y], updates={w: w * 0.5}, backend=backend)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    expect = np.tanh(a * w.value) + 1
    buf, buf2, tot = np.full((2, 3), -7, np.float32), np.empty((2, 3), np.float32), np.empty((), np.float32)
    y1, s1, y2 = f(a, out=[buf, tot, buf2])
    assert y1 is buf and s1 is tot and y2 is buf2
    np.testing.assert_allclose(buf, expect, rtol=1e-6)
    np.testing.assert_array_equal(buf2, buf)
    np.testing.assert_allclose(tot, expect.sum(), rtol=1e-6)
    np.testing.assert_array_equal(w.value, [0.5, 1.0, 1.5])  # updates still applied
    y1, s1, y2 = f(a, out=[None, tot, None])  # None: a fresh array for that output
    assert s1 is tot and y1 is not buf
    g = gc.compile([x], y, backend=backend)
    r = g(a, out=buf)
    assert r is buf
    np.testing.assert_allclose(buf, np.tanh(a * w.value) + 1, rtol=1e-6)


def test_bad_out_buffers_are_refused_before_anything_runs(backend):
    x = gc.placeholder((None, 3), name="x")
    w = gc.parameter(np.ones(3, np.float32), name="w")
    f = gc.compile([x], x * w, updates={w: w + 1.0}, backend=backend)
    a = np.ones((2, 3), np.float32)
    bad = [(np.empty((3, 3), np.float32), "this call computes \\(2, 3\\)"),
           (np.empty((2, 3), np.float64), "float64"),
           (np.empty((3, 2), np.float32).T, "C-contiguous"),
           (a, "shares memory with input x"),
           (w.value.reshape(1, 3), "shape \\(1, 3\\)"),
           ([1, 2], "not a NumPy array")]
    for buf, msg in bad:
        with pytest.raises(gc.FeedError, match=msg):
            f(a, out=buf)
    np.testing.assert_array_equal(w.value, np.ones(3))  # nothing ran
    two = gc.compile([x], [x * w, x + w], backend=backend)
    with pytest.raises(gc.FeedError, match="needs 2 arrays"):
        two(a, out=[np.empty((2, 3), np.float32)])
    b = np.empty((2, 3), np.float32)
    with pytest.raises(gc.FeedError, match="shares memory with out= array for output 0"):
        two(a, out=[b, b])


def test_each_backend_keeps_the_protocol(backend):
    """compile() and Function use a backend only through graphc.protocol."""
    from graphc.compiler import get_backend
    from graphc.protocol import Executable, Fusion
    be = get_backend(backend)
    assert isinstance(be.FUSION, Fusion)
    x = gc.placeholder((None, 2), name="x")
    f = gc.compile([x], [x * 2, gc.sum(x)], backend=backend)
    assert isinstance(f._exe, Executable)
    feeds = [np.ones((3, 2), np.float32)]
    assert f._exe.output_shapes(feeds) == [(3, 2), ()]
    assert isinstance(f.source(), str) and isinstance(f.cache_info(), dict)


def test_a_backend_module_without_the_protocol_is_a_compile_error(monkeypatch):
    import sys
    import types

    from graphc import compiler
    fake = types.ModuleType("graphc_fake_backend")
    fake.build = lambda program: None
    monkeypatch.setitem(sys.modules, "graphc_fake_backend", fake)
    monkeypatch.setitem(compiler.BACKENDS, "fake", "graphc_fake_backend")
    with pytest.raises(gc.CompileError, match="does not declare FUSION"):
        x = gc.placeholder((2,))
        gc.compile([x], x * 1, backend="fake")

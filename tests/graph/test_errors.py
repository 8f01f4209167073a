"""Bad input gets a clear error naming the op, the shapes and the user's file:line."""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import graphc as gc


def _here(offset=1):
    """file:line of the caller's line + offset."""
    f = inspect.currentframe().f_back
    return f"{__file__}:{f.f_lineno + offset}"


def test_broadcast_mismatch_names_op_shapes_and_line():
    x = gc.placeholder((3, 4), name="x")
    y = gc.placeholder((5,), name="y")
    where = _here()
    with pytest.raises(gc.ShapeError) as e: x + y  # noqa: E701
    msg = str(e.value)
    assert "add" in msg and "(3, 4)" in msg and "(5,)" in msg
    assert where in msg and "x + y" in msg
    assert isinstance(e.value, gc.GraphError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("build,pattern", [
    (lambda a, b: a @ b, r"matmul.*inner dimensions differ: \(3, 4\) @ \(3, 4\)"),
    (lambda a, b: a.reshape(5, 5), r"reshape.*cannot reshape \(3, 4\)"),
    (lambda a, b: a.sum(axis=2), r"axis 2 is out of range for a 2-d tensor of shape \(3, 4\)"),
    (lambda a, b: gc.concat([a, b.T], 0), r"concat.*\(3, 4\), \(4, 3\)"),
    (lambda a, b: gc.max(a[:, 4:], axis=1), r"max over a zero-size axis of shape \(3, 0\)"),
    (lambda a, b: a[3], r"index 3 is out of range for axis 0 of shape \(3, 4\)"),
    (lambda a, b: a[:, [0, 4]], r"index 4 is out of range for an axis of size 4"),
    (lambda a, b: a[0, 0, 0], r"too many indices \(3\) for a tensor of shape \(3, 4\)"),
    (lambda a, b: gc.broadcast_to(a, (2, 4)), r"cannot broadcast \(3, 4\) to \(2, 4\)"),
    (lambda a, b: gc.transpose(a, (0, 0)), r"permutation \(0, 0\) does not fit"),
    (lambda a, b: gc.squeeze(a, 0), r"axis 0 of \(3, 4\) does not have size 1"),
    (lambda a, b: gc.stack([a, b.T]), r"stack needs tensors of one shape"),
    (lambda a, b: a[a > 0], r"boolean masks"),
])
def test_build_time_shape_errors(build, pattern):
    a = gc.placeholder((3, 4), name="a")
    b = gc.placeholder((3, 4), name="b")
    with pytest.raises((gc.ShapeError, gc.GraphIndexError)) as e:
        build(a, b)
    assert re.search(pattern, str(e.value)), str(e.value)
    assert __file__ in str(e.value)  # the user's line


@pytest.mark.parametrize("build,pattern", [
    (lambda f, b: -b, r"neg is not defined for bool"),
    (lambda f, b: b - b, r"subtracting bool"),
    (lambda f, b: f & b, r"needs bool tensors, got float32"),
    (lambda f, b: gc.take(f, f, axis=0), r"indices must be integers"),
    (lambda f, b: gc.one_hot(f, 3), r"one_hot needs integer labels"),
    (lambda f, b: gc.placeholder((2,), "float16"), r"float16 is not supported"),
    (lambda f, b: gc.cast(f, "complex64"), r"complex64 is not supported"),
])
def test_build_time_dtype_errors(build, pattern):
    f = gc.placeholder((3,), "float32")
    b = gc.placeholder((3,), "bool")
    with pytest.raises((gc.DTypeError, gc.GraphIndexError)) as e:
        build(f, b)
    assert re.search(pattern, str(e.value)), str(e.value)


@pytest.fixture(scope="module")
def fn():
    x = gc.placeholder((None, 3), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="labels")
    return gc.compile([x, y], gc.cross_entropy(x, y))


@pytest.mark.parametrize("feeds,pattern", [
    ((np.zeros((2, 3), np.float32),), r"expected 2 feeds \(x, labels\), got 1"),
    ((np.zeros((2, 4), np.float32), np.zeros(2, np.int64)), r"placeholder x \(None, 3\) float32.*got shape \(2, 4\)"),
    ((np.zeros((2, 3, 1), np.float32), np.zeros(2, np.int64)), r"placeholder x .*got shape \(2, 3, 1\)"),
    ((np.zeros((2, 3)), np.zeros(2, np.int64)), r"placeholder x .*dtype float64, which cannot be cast safely"),
    ((np.zeros((2, 3), np.float32), np.zeros(2, np.float32)), r"placeholder labels .*dtype float32"),
    ((np.zeros((2, 3), np.float32), [0.5, 1.0]), r"placeholder labels .*do not fit int64"),
    ((np.zeros((2, 3), np.float32), "abc"), r"placeholder labels"),
])
def test_bad_feeds_raise_before_running(fn, feeds, pattern):
    with pytest.raises(gc.FeedError) as e:
        fn(*feeds)
    assert re.search(pattern, str(e.value)), str(e.value)
    assert "test_errors.py" in str(e.value)  # where the placeholder was made


def test_safe_casts_and_python_values_are_accepted(fn):
    got = fn([[0.0, 0.0, 0.0]], np.array([1], np.int32))  # list of floats, int32 -> int64
    assert np.isclose(got, np.log(3))
    assert np.isclose(fn(x=np.zeros((1, 3), np.float32), labels=[2]), np.log(3))
    with pytest.raises(gc.FeedError, match="no input placeholder named 'z'"):
        fn(z=1)


def test_run_time_index_error_names_node_and_line(fn):
    x = gc.placeholder((None, 3), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    where = _here()
    loss = gc.cross_entropy(x, y)
    f = gc.compile([x, y], loss)
    with pytest.raises(gc.GraphIndexError) as e:
        f(np.zeros((2, 3), np.float32), np.array([0, 3]))
    msg = str(e.value)
    assert "check_index" in msg and "index 3 is out of range [0, 3)" in msg and where in msg


def test_run_time_shape_mismatch_of_none_dims():
    a = gc.placeholder((None, 2), name="a")
    b = gc.placeholder((None, 2), name="b")
    where = _here()
    s = a + b
    f = gc.compile([a, b], s)
    # a ShapeError, as on the compiled backends (it used to be a GraphRuntimeError here alone)
    with pytest.raises(gc.ShapeError) as e:
        f(np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32))
    assert "add" in str(e.value) and "(3, 2), (4, 2)" in str(e.value) and where in str(e.value)


def test_compile_errors():
    x = gc.placeholder((2,), name="x")
    hidden = gc.placeholder((2,), name="hidden")
    w = gc.parameter(np.zeros(2, np.float32), name="w")
    with pytest.raises(gc.CompileError, match=r"needs placeholder hidden \(2,\) float32 \(made at .*test_errors"):
        gc.compile([x], x + hidden)
    with pytest.raises(gc.CompileError, match="inputs must be placeholders"):
        gc.compile([w], w * 2)
    with pytest.raises(gc.CompileError, match="unknown backend 'tpu'"):
        gc.compile([x], x, backend="tpu")
    with pytest.raises(gc.CompileError, match="update target must be a parameter"):
        gc.compile([x], x, updates=[(x, x)])
    with pytest.raises(gc.CompileError, match=r"update of parameter w \(2,\) has shape \(3,\)"):
        gc.compile([x], x, updates=[(w, gc.constant(np.zeros(3, np.float32)))])
    with pytest.raises(gc.CompileError, match=r"update of parameter w \(float32\) has dtype float64"):
        gc.compile([x], x, updates=[(w, w + np.zeros(2))])
    with pytest.raises(gc.CompileError, match="updated twice"):
        gc.compile([x], x, updates=[(w, w + 1), (w, w - 1)])


def test_parameter_value_errors():
    w = gc.parameter(np.zeros((2, 3), np.float32), name="w")
    with pytest.raises(gc.ShapeError, match=r"parameter w has shape \(2, 3\); cannot set a value of shape \(3, 2\)"):
        w.value = np.zeros((3, 2))
    with pytest.raises(gc.GraphError, match="no value until a compiled function runs"):
        (w + 1).value  # noqa: B018 - the access itself raises
    assert np.all(w.value == 0)

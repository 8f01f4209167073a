"""The IR: constructor cache, unique leaves, immutability, locations, iterative traversal."""
from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

import graphc as gc
from graphc.ir import toposort


def test_constructor_cache_makes_identical_subgraphs_one_object():
    x = gc.placeholder((3,), name="x")
    y = gc.placeholder((3,), name="y")
    a = gc.tanh(x * 2.0 + y)
    b = gc.tanh(x * 2.0 + y)
    assert a is b
    assert (x + y) is not (y + x)  # structure, not algebra
    assert gc.constant([1.0, 2.0]) is gc.constant(np.array([1.0, 2.0]))
    assert gc.constant([1.0, 2.0]) is not gc.constant([1.0, 3.0])
    assert gc.constant(np.float32(1)) is not gc.constant(np.float64(1))


def test_leaves_with_identity_stay_distinct():
    assert gc.placeholder((3,)) is not gc.placeholder((3,))
    v = np.zeros(3, np.float32)
    p, q = gc.parameter(v), gc.parameter(v)
    assert p is not q and p.uid != q.uid
    assert (p + 1) is not (q + 1)


def test_nodes_are_immutable():
    x = gc.placeholder((2,))
    with pytest.raises(AttributeError):
        x.shape = (3,)
    with pytest.raises(TypeError):
        x.attrs["shape"] = (3,)
    with pytest.raises(TypeError, match="truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)


def test_node_records_the_users_line():
    x = gc.placeholder((2,))
    line = inspect.currentframe().f_lineno + 1
    y = gc.softmax(x)  # built inside graphc, attributed to this line
    assert y.loc == (__file__, line)
    assert x.loc[0] == __file__


def test_shape_dtype_and_none_dims():
    x = gc.placeholder((None, 784), "float32")
    W = gc.parameter(np.zeros((784, 10), np.float32))
    y = x @ W
    assert y.shape == (None, 10) and y.dtype == np.float32
    assert (x.reshape(-1, 28, 28)).shape == (None, 28, 28)
    assert x.sum(1).shape == (None,)
    assert x[0].shape == (784,)
    assert gc.placeholder((None, None, 1)).squeeze(-1).shape == (None, None)


def test_toposort_is_deterministic_and_inputs_first():
    x = gc.placeholder((3,))
    y = gc.exp(x) + gc.log(x) * gc.exp(x)
    order = toposort([y])
    assert order == toposort([y])
    pos = {n: i for i, n in enumerate(order)}
    for n in order:
        assert all(pos[i] < pos[n] for i in n.inputs)
    assert order[-1] is y and len(order) == len(set(order))


def test_deep_graph_needs_no_recursion():
    depth = 3 * sys.getrecursionlimit() + 10000
    x = gc.placeholder((2,), "float64")
    y = x
    for _ in range(depth):
        y = y * 1.0001 + 1e-3
    assert len(toposort([y])) > 2 * depth
    fn = gc.compile([x], y)
    got = fn(np.zeros(2))
    assert np.isfinite(got).all() and got[0] > 0
    text = gc.format_graph(y)
    assert text.count("\n") > 2 * depth


def test_format_graph_lists_ops_shapes_and_dtypes():
    x = gc.placeholder((None, 4), name="x")
    text = gc.format_graph(gc.relu(x * 2.0).sum(1))
    lines = text.splitlines()
    assert lines[0] == "%0 = placeholder() : (None, 4) float32  # x"
    assert "constant(2.) : () float32" in lines[1]
    assert lines[-1] == "%4 = sum(%3, axes=(1,), keepdims=False) : (None,) float32"


def test_parameter_value_reads_and_writes_in_place():
    w = gc.parameter(np.arange(3.0, dtype=np.float32), name="w")
    arr = w.value
    w.value = np.ones(3)
    assert arr is w.value and np.array_equal(w.value, np.ones(3, np.float32))
    assert w.value.dtype == np.float32
    src = np.zeros(2, np.float32)
    p = gc.parameter(src)
    src[0] = 5
    assert p.value[0] == 0  # graphc keeps its own copy


def test_python_scalars_are_weak_numpy_scalars_are_not():
    x32 = gc.placeholder((2,), "float32")
    i32 = gc.placeholder((2,), "int32")
    b = gc.placeholder((2,), "bool")
    assert (x32 + 1.5).dtype == np.float32
    assert (1.5 * x32).dtype == np.float32
    assert (x32 + 2).dtype == np.float32
    assert (i32 + 2).dtype == np.int32
    assert (i32 + 2.5).dtype == np.float64
    assert (i32 / 2).dtype == np.float64
    assert (x32 * np.float64(2)).dtype == np.float64
    assert (np.float64(2) * x32).dtype == np.float64
    assert (b + 1).dtype == np.int64
    assert (x32 + np.zeros(2, np.float64)).dtype == np.float64


DTS = ["float32", "float64", "int32", "int64", "bool"]


@pytest.mark.parametrize("a", DTS)
@pytest.mark.parametrize("b", DTS + [1, 1.5, True, np.float32(1), np.int64(1), np.float64(1)])
def test_promotion_matches_numpy(a, b):
    x = gc.placeholder((2,), a)
    y = gc.placeholder((2,), b) if isinstance(b, str) else b
    yv = np.zeros(2, b) if isinstance(b, str) else b
    want = (np.zeros(2, a) * yv).dtype
    assert (x * y).dtype == want
    assert gc.maximum(x, y).dtype == np.maximum(np.zeros(2, a), yv).dtype

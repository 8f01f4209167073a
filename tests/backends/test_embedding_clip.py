"""gc.embedding (gather with a scatter-add gradient), gc.clip_by_global_norm and an optimizer's
clip_norm, on every backend, against NumPy closed forms."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

IDS = np.array([[0, 3, 3, 1], [4, -1, 0, 3]], np.int64)  # repeats and a negative id (the last row)


@pytest.fixture(scope="module")
def lookup():
    """One compiled lookup per backend: (table, ids, weights) -> rows, loss, d loss / d table."""
    made = {}

    def get(backend):
        if backend not in made:
            table = gc.parameter(np.zeros((5, 3)), name="table")
            ids = gc.placeholder((None, 4), "int64", name="ids")
            wts = gc.placeholder((None, 4, 3), "float64", name="wts")
            rows = gc.embedding(ids, table)
            loss = gc.sum(rows * wts)
            (g,) = gc.grad(loss, [table])
            made[backend] = table, gc.compile([ids, wts], [rows, loss, g], backend=backend)
        return made[backend]
    return get


def test_embedding_rows_and_scatter_add_gradient(lookup, backend):
    table, fn = lookup(backend)
    rng = np.random.default_rng(0)
    T = rng.normal(size=(5, 3))
    table.value = T
    W = rng.normal(size=(2, 4, 3))
    rows, loss, g = fn(IDS, W)
    np.testing.assert_allclose(rows, T[IDS], rtol=1e-12)
    np.testing.assert_allclose(loss, np.sum(T[IDS] * W), rtol=1e-12)
    want = np.zeros_like(T)
    np.add.at(want, IDS, W)  # repeated ids accumulate
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)


def test_embedding_id_out_of_range_names_the_lookup(lookup, backend):
    table, fn = lookup(backend)
    before = table.value.copy()
    with pytest.raises(gc.GraphIndexError) as e:
        fn(np.array([[0, 1, 5, 2]]), np.ones((1, 4, 3)))
    assert "take" in str(e.value) or "index" in str(e.value)
    np.testing.assert_array_equal(table.value, before)


def test_embedding_layer_and_bad_table():
    emb = gc.nn.Embedding(7, 4, seed=1)
    assert emb.table.shape == (7, 4) and emb(gc.placeholder((3,), "int64")).shape == (3, 4)
    with pytest.raises(gc.ShapeError, match="2-D"):
        gc.embedding(gc.placeholder((2,), "int64"), gc.parameter(np.zeros(5)))


@pytest.mark.parametrize("clip", [0.5, 100.0])
def test_clip_by_global_norm(backend, clip):
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)
    a, b = gc.placeholder(A.shape, name="a"), gc.placeholder(B.shape, name="b")
    (ca, cb), norm = gc.clip_by_global_norm([a, b], clip)
    got_a, got_b, got_n = gc.compile([a, b], [ca, cb, norm], backend=backend)(A, B)
    n = np.sqrt(np.sum(A.astype(np.float64) ** 2) + np.sum(B.astype(np.float64) ** 2))
    s = clip / max(n, clip)
    np.testing.assert_allclose(got_n, n, rtol=1e-6)
    np.testing.assert_allclose(got_a, A * s, rtol=1e-6)
    np.testing.assert_allclose(got_b, B * s, rtol=1e-6)
    joint = np.sqrt(np.sum(got_a.astype(np.float64) ** 2) + np.sum(got_b.astype(np.float64) ** 2))
    assert joint <= clip * (1 + 1e-6)


def test_optimizer_clips_gradients_by_global_norm(backend):
    c1, c2 = np.array([3.0, 4.0]), np.array([12.0])  # gradient norm 13
    w1, w2 = gc.parameter(np.zeros(2)), gc.parameter(np.zeros(1))
    loss = gc.sum(w1 * c1) + gc.sum(w2 * c2)
    opt = gc.optim.SGD(1.0)
    opt.clip_norm = 2.6
    step = gc.compile([], loss, updates=opt.updates(loss), backend=backend)
    step()
    np.testing.assert_allclose(w1.value, -c1 * 0.2, rtol=1e-12)
    np.testing.assert_allclose(w2.value, -c2 * 0.2, rtol=1e-12)


def test_clip_by_global_norm_rejects_bad_input():
    x = gc.placeholder((2,))
    with pytest.raises(gc.GraphError, match="> 0"):
        gc.clip_by_global_norm([x], 0.0)
    with pytest.raises(gc.GraphError, match="float"):
        gc.clip_by_global_norm([gc.placeholder((2,), "int64")], 1.0)
    with pytest.raises(gc.GraphError, match="at least one"):
        gc.clip_by_global_norm([], 1.0)

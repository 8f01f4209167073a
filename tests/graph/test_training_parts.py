"""Training parts that need no backend: initializers, seeds, layers, optimizer and switch rules."""
from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError


# ---------------------------------------------------------------- initializers
def test_fans_of_vectors_matrices_and_conv_kernels():
    assert gc.init.fans((7,)) == (7, 7)
    assert gc.init.fans((784, 10)) == (784, 10)           # x @ W: (fan_in, fan_out)
    assert gc.init.fans((16, 8, 3, 3)) == (8 * 9, 16 * 9)  # (out, in, kh, kw)
    assert gc.init.fans((4, 2, 5)) == (10, 20)


@pytest.mark.parametrize("name,shape,variance", [
    ("xavier_uniform", (400, 300), 2 / 700),
    ("xavier_normal", (400, 300), 2 / 700),
    ("he_uniform", (500, 200), 2 / 500),
    ("he_normal", (500, 200), 2 / 500),
    ("he_normal", (64, 32, 3, 3), 2 / (32 * 9)),
    ("xavier_uniform", (64, 32, 3, 3), 2 / (32 * 9 + 64 * 9)),
])
def test_initializer_variance_matches_its_formula(name, shape, variance):
    w = getattr(gc.init, name)(shape, seed=1)
    assert w.shape == shape and w.dtype == np.float32
    n = w.size
    # sample variance of n iid draws: relative standard error sqrt(2/n) (normal) or less (uniform)
    assert abs(w.var() / variance - 1) < 5 * math.sqrt(2 / n)
    assert abs(w.mean()) < 5 * math.sqrt(variance / n)
    if "uniform" in name:
        bound = math.sqrt(3 * variance)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_simple_initializers():
    np.testing.assert_array_equal(gc.init.zeros((2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(gc.init.ones(4, "float64"), np.ones(4))
    u = gc.init.uniform((1000,), -2, 3, seed=0)
    assert u.min() >= -2 and u.max() < 3
    nrm = gc.init.normal((20000,), std=0.5, mean=2.0, seed=0)
    assert abs(nrm.mean() - 2) < 0.02 and abs(nrm.std() - 0.5) < 0.02


def test_initializers_are_seeded_and_the_global_sequence_is_reproducible():
    np.testing.assert_array_equal(gc.init.he_normal((5, 4), seed=3), gc.init.he_normal((5, 4), seed=3))
    assert not np.array_equal(gc.init.he_normal((5, 4), seed=3), gc.init.he_normal((5, 4), seed=4))
    gc.seed(11)
    a = [gc.init.normal((3,)) for _ in range(2)]
    gc.seed(11)
    b = [gc.init.normal((3,)) for _ in range(2)]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])


# ---------------------------------------------------------------- layers
def test_sequential_names_parameters_by_path_and_owns_them():
    model = gc.nn.Sequential(gc.nn.Linear(4, 3, seed=0), gc.nn.ReLU(), gc.nn.BatchNorm(3),
                             gc.nn.Linear(3, 2, bias=False, seed=1))
    state = model.named_state()
    assert list(state) == ["0.W", "0.b", "2.gamma", "2.beta", "2.running_mean", "2.running_var", "3.W"]
    assert [p.name for p in state.values()] == list(state)
    assert list(model.named_parameters()) == ["0.W", "0.b", "2.gamma", "2.beta", "3.W"]
    assert all(p.attrs["trainable"] for p in model.parameters())
    assert state["2.running_mean"].data.role == "statistics"
    x = gc.placeholder((None, 4))
    y = model(x)
    assert y.shape == (None, 2)


def test_linear_rejects_unknown_initializers_and_sequential_non_layers():
    with pytest.raises(GraphError, match="unknown initializer"):
        gc.nn.Linear(2, 2, init="bogus")
    with pytest.raises(GraphError, match="position 1"):
        gc.nn.Sequential(gc.nn.ReLU(), lambda x: x)


# ---------------------------------------------------------------- optimizers
def test_optimizer_builds_once_and_checks_its_parameters():
    W = gc.parameter(np.ones((2, 2), np.float32), name="W")
    loss = gc.sum(W * W)
    opt = gc.optim.SGD(0.1)
    ups = opt.updates(loss)   # params default to the loss's trainable parameters
    assert len(ups) == 1 and ups[0][0] is W
    with pytest.raises(GraphError, match="already built"):
        opt.updates(loss, [W])
    with pytest.raises(GraphError, match="only float"):
        gc.optim.Adam().updates(loss, [gc.parameter(np.ones(2, np.int64))])
    with pytest.raises(GraphError, match="Nesterov"):
        gc.optim.SGD(0.1, nesterov=True)


def test_optimizer_state_names_and_learning_rate_is_a_parameter():
    W = gc.parameter(np.ones(3), name="W")
    b = gc.parameter(np.ones(1), name="b")
    opt = gc.optim.Adam(0.01)
    opt.updates(gc.sum(W) + gc.sum(b), [W, b])
    assert list(opt.state()) == ["lr", "step", "0.m", "0.v", "1.m", "1.v"]
    assert all(n.data.role == "optimizer" for n in opt.state().values())
    opt.lr = 0.5
    assert opt.lr == 0.5 and opt.state()["lr"].value == 0.5


@pytest.mark.parametrize("schedule,expect", [
    (gc.optim.step_decay(1.0, 2, 0.5), [1, 1, 0.5, 0.5, 0.25]),
    (gc.optim.exponential_decay(2.0, 0.5), [2, 1, 0.5, 0.25, 0.125]),
    (gc.optim.cosine(1.0, 4), [1, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5, 0.5 - 0.5 * math.cos(math.pi / 4), 0]),
    (gc.optim.cosine(1.0, 5, warmup=1, min_lr=0.1), [1, 1, 0.1 + 0.45 * (1 + math.cos(math.pi / 4)), 0.55,
                                                     0.1 + 0.45 * (1 + math.cos(3 * math.pi / 4))]),
])
def test_learning_rate_schedules(schedule, expect):
    np.testing.assert_allclose([schedule(e) for e in range(5)], expect, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- penalties, switches, dropout graph
def test_penalties_and_their_errors():
    a = gc.parameter(np.array([1.0, -2.0]))
    b = gc.parameter(np.array([[3.0]]))
    assert gc.l2_penalty([a, b]).shape == () and gc.l1_penalty(a).shape == ()
    with pytest.raises(GraphError, match="graph nodes"):
        gc.l2_penalty([np.ones(2)])


def test_train_switch_checks_its_branches():
    x = gc.placeholder((None, 3))
    assert gc.train_switch(x, x) is x
    with pytest.raises(gc.DTypeError):
        gc.train_switch(x, gc.cast(x, "float64"))
    with pytest.raises(gc.ShapeError):
        gc.train_switch(x, gc.placeholder((None, 4)))


def test_dropout_and_batch_norm_errors_and_state():
    x = gc.placeholder((None, 3))
    assert gc.dropout(x, 0.0) is x
    with pytest.raises(GraphError, match=r"\[0, 1\]"):
        gc.dropout(x, 1.5)
    with pytest.raises(gc.DTypeError):
        gc.dropout(gc.placeholder((2,), "int64"), 0.5)
    y = gc.dropout(x, 0.5, seed=1)
    key = next(n for n in gc.toposort([y]) if n.op.name == "parameter")
    assert key.data.role == "rng" and key.data.default_update is not None and key.dtype == np.int64
    with pytest.raises(gc.ShapeError, match="known C"):
        gc.batch_norm(gc.placeholder((None,)))
    with pytest.raises(gc.ShapeError, match=r"gamma must have shape \(3,\)"):
        gc.batch_norm(x, gamma=gc.parameter(np.ones(4, np.float32)))

"""gc.nn's convolution, pooling and recurrent layers: shapes, initialisation, and outputs against
NumPy loops written from the definitions (the primitives themselves are in op_cases)."""
from __future__ import annotations

import numpy as np
import pytest
from op_cases import _window

import graphc as gc


def test_conv_layer_shapes_init_and_bias():
    layer = gc.nn.Conv2d(3, 8, (3, 2), stride=2, padding=1, seed=0)
    W = layer.W.value
    assert W.shape == (8, 3, 3, 2) and np.all(layer.b.value == 0)
    bound = np.sqrt(6 / (3 * 3 * 2))  # He uniform, fan_in = in * kh * kw
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.8 * bound
    x = gc.placeholder((None, 3, 7, 6))
    assert layer(x).shape == (None, 8, 4, 4)
    with pytest.raises(gc.ShapeError, match="channels"):
        layer(gc.placeholder((2, 4, 7, 6)))


def test_grouped_conv_layer_is_torchs_shape_and_fan():
    layer = gc.nn.Conv2d(6, 4, 3, groups=2, seed=0)
    assert layer.W.value.shape == (4, 3, 3, 3)  # (out, in/groups, kh, kw), as torch.nn.Conv2d
    assert np.abs(layer.W.value).max() <= np.sqrt(6 / (3 * 3 * 3))  # fan_in = in/groups * kh * kw
    assert layer(gc.placeholder((None, 6, 5, 5))).shape == (None, 4, 3, 3)
    with pytest.raises(gc.ShapeError, match="groups=4 must divide"):
        gc.nn.Conv2d(6, 4, 3, groups=4)
    with pytest.raises(gc.ShapeError, match="groups must be a whole number"):
        gc.conv2d(gc.placeholder((1, 6, 5, 5)), np.zeros((4, 3, 3, 3), np.float32), groups=3)
    with pytest.raises(gc.ShapeError, match="with groups=2 expects 6"):
        gc.conv2d(gc.placeholder((1, 4, 5, 5)), np.zeros((4, 3, 3, 3), np.float32), groups=2)


def test_cnn_layers_forward(backend):
    rng = np.random.default_rng(0)
    model = gc.nn.Sequential(gc.nn.Conv2d(2, 3, 3, padding=1, seed=1), gc.nn.ReLU(), gc.nn.MaxPool2d(2),
                             gc.nn.AvgPool2d(2, 1), gc.nn.Flatten())
    model.layers[0].b.value = rng.normal(size=3).astype(np.float32)
    x = gc.placeholder((None, 2, 6, 6))
    X = rng.normal(size=(2, 2, 6, 6)).astype(np.float32)
    got = gc.compile([x], model(x), backend=backend)(X)
    W, b = model.layers[0].W.value, model.layers[0].b.value
    conv = np.einsum("ncabpq,ocpq->noab", _window(X, (3, 3), (1, 1), (1, 1), (1, 1), 0), W) + b[:, None, None]
    pooled = _window(np.maximum(conv, 0), (2, 2), (2, 2), (0, 0), (1, 1), -np.inf).max(axis=(4, 5))
    avg = _window(pooled, (2, 2), (1, 1), (0, 0), (1, 1), 0).mean(axis=(4, 5))
    np.testing.assert_allclose(got, avg.reshape(2, -1), rtol=1e-5, atol=1e-5)


def _sig(a):
    return 1 / (1 + np.exp(-a))


def _torch_rnn(kind, sd, X, layers, H, H0=None, C0=None):
    """torch.nn.RNN/LSTM/GRU's formulas from its state_dict (weights (G*H, in)), x (T, N, in)."""
    T, N, _ = X.shape
    hs_n, cs_n = [], []
    for k in range(layers):
        Wi, Wh, bi, bh = (sd[f"{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h = np.zeros((N, H)) if H0 is None else H0[k]
        c = np.zeros((N, H)) if C0 is None else C0[k]
        outs = []
        for t in range(T):
            zx, zh = X[t] @ Wi.T + bi, h @ Wh.T + bh
            if kind == "RNN":
                h = np.tanh(zx + zh)
            elif kind == "LSTM":
                i, f, g, o = np.split(zx + zh, 4, axis=1)
                c = _sig(f) * c + _sig(i) * np.tanh(g)
                h = _sig(o) * np.tanh(c)
            else:
                (xr, xz, xn), (hr, hz, hn) = np.split(zx, 3, axis=1), np.split(zh, 3, axis=1)
                r, z = _sig(xr + hr), _sig(xz + hz)
                n = np.tanh(xn + r * hn)
                h = (1 - z) * n + z * h
            outs.append(h)
        X = np.stack(outs)
        hs_n.append(h)
        cs_n.append(c)
    return X, np.stack(hs_n), np.stack(cs_n)


@pytest.mark.parametrize("kind,layers,batch_first", [("LSTM", 1, False), ("LSTM", 2, True), ("GRU", 2, False),
                                                     ("RNN", 2, True)])
def test_recurrent_layers_match_torchs_formulas(backend, kind, layers, batch_first):
    rng = np.random.default_rng(2)
    T, N, I, H = 3, 2, 3, 4
    layer = getattr(gc.nn, kind)(I, H, num_layers=layers, batch_first=batch_first, seed=3, dtype="float64")
    sd = {k: rng.normal(size=v.shape) * 0.5 for k, v in layer.torch_state_dict().items()}
    assert sorted(sd) == sorted(f"{n}_l{k}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                                for k in range(layers))
    layer.load_torch_state_dict(sd)
    X = rng.normal(size=(T, N, I))
    x = gc.placeholder((N, T, I) if batch_first else (T, None, I), "float64")
    out, state = layer(x)
    fetch = [out, *state] if kind == "LSTM" else [out, state]
    got = gc.compile([x], fetch, backend=backend)(X.transpose(1, 0, 2) if batch_first else X)
    want_out, h_n, c_n = _torch_rnn(kind, sd, X, layers, H)
    np.testing.assert_allclose(got[0], want_out.transpose(1, 0, 2) if batch_first else want_out, rtol=1e-10)
    np.testing.assert_allclose(got[1], h_n, rtol=1e-10)
    if kind == "LSTM":
        np.testing.assert_allclose(got[2], c_n, rtol=1e-10)


def test_lstm_initial_state_and_forget_bias(backend):
    layer = gc.nn.LSTM(2, 3, num_layers=2, seed=0, dtype="float64")
    assert np.all(layer.l0.b_ih.value[3:6] == 1) and np.all(layer.l0.b_hh.value == 0)  # forget-gate bias 1
    x = gc.placeholder((4, 2, 2), "float64")
    h0 = gc.placeholder((2, 2, 3), "float64")
    c0 = gc.placeholder((2, 2, 3), "float64")
    rng = np.random.default_rng(5)
    X, H0, C0 = rng.normal(size=(4, 2, 2)), rng.normal(size=(2, 2, 3)), rng.normal(size=(2, 2, 3))
    out, (h, c) = layer(x, (h0, c0))
    got = gc.compile([x, h0, c0], [out, h, c], backend=backend)(X, H0, C0)
    want = _torch_rnn("LSTM", layer.torch_state_dict(), X, 2, 3, H0, C0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10)


def test_rnn_layer_and_unroll_errors(backend):
    rnn = gc.nn.RNN(2, 3, seed=0, dtype="float64")
    X = np.random.default_rng(4).normal(size=(4, 2, 2))
    x = gc.placeholder((4, 2, 2), "float64")
    out, h = rnn(x)
    got = gc.compile([x], out, backend=backend)(X)
    W, U, b = rnn.cell.W_ih.value, rnn.cell.W_hh.value, rnn.cell.b_ih.value + rnn.cell.b_hh.value
    hs = np.zeros((2, 3))
    for t in range(4):
        hs = np.tanh(X[t] @ W + hs @ U + b)
        np.testing.assert_allclose(got[t], hs, rtol=1e-10)
    with pytest.raises(gc.GraphError, match="T known"):
        gc.nn.unroll(rnn.cell, gc.placeholder((None, 2, 2)))
    with pytest.raises(gc.GraphError, match="nonlinearity"):
        gc.nn.RNNCell(2, 3, nonlinearity="sigmoid")


def test_grouped_conv_is_one_gemm_not_one_per_group():
    """A depthwise or grouped convolution's kernel count does not grow with its groups (ShuffleNet's
    960-channel depthwise convolutions once became 960 kernels and a compile that ran out of memory)."""
    def count(groups, cin):
        x = gc.placeholder((None, cin, 6, 6))
        w = np.ones((cin, cin // groups, 3, 3), np.float32)
        return len(gc.compile([x], gc.conv2d(x, w, padding=1, groups=groups), backend="numba").kernels)
    assert count(64, 64) == count(2, 2)  # depthwise
    assert count(16, 64) == count(2, 8)  # grouped GEMM


def test_grouped_and_depthwise_conv_gradients_at_run_time_batches_of_0_and_1(backend):
    # the images side by side in one GEMM: a batch of 0 or 1 gives NumPy's values and shapes too
    rng = np.random.default_rng(2)
    # small: the CUDA simulator runs each GPU thread in Python
    x = gc.placeholder((None, 4, 4, 4), name="x")
    w = gc.parameter(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), name="w")
    wd = gc.parameter(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), name="wd")
    b = gc.parameter(np.ones(4, np.float32), name="b")
    z = gc.conv2d(gc.relu(gc.conv2d(x, w, b, padding=1, groups=2)), wd, groups=4)
    outs = [z] + gc.grad(gc.sum(z * z), [x, w, wd, b])
    f, ref = gc.compile([x], outs, backend=backend), gc.compile([x], outs, backend="numpy")
    for n in (0, 1, 2):
        X = rng.normal(size=(n, 4, 4, 4)).astype(np.float32)
        for got, want in zip(f(X), ref(X)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max(initial=0))))


def test_max_pool_is_one_kernel_each_way_and_its_gradient_splits_ties_and_keeps_nan_and_inf(backend):
    # a tie shares its window's cotangent; a NaN maximum makes NaN of its whole window; an inf
    # cotangent is NaN at the window's other entries (inf * 0): the composite's values exactly
    x = gc.placeholder((None, 2, 6, 5), name="x")
    g = gc.placeholder((None, 2, 3, 3), name="g")
    y = gc.max_pool2d(x, 2, 2, (0, 1))
    (dx,) = gc.grad(gc.sum(y * g), [x])
    ops = [n.op.name for n in gc.toposort([y, dx])]
    assert ops.count("max_pool2d") == ops.count("max_pool2d_grad") == 1 and not {"im2col", "col2im"} & set(ops)
    rng = np.random.default_rng(4)
    xv = rng.normal(size=(3, 2, 6, 5)).astype(np.float32)
    gv = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    xv[0, 0, 0, 0] = xv[0, 0, 1, 0] = 5.0     # a tie in window (0, 0, 0, 0), whose left column is padding
    xv[1, 1, 2, 2] = np.nan                    # window (1, 1, 1, 1) is NaN
    gv[2, 0, 1, 2] = np.inf                    # window (2, 0, 1, 2): inf at its maximum, NaN elsewhere
    fn = gc.compile([x, g], [y, dx], backend=backend)
    got_y, got_dx = fn(xv, gv)
    ref = gc.compile([x, g], [y, dx], backend="numpy")(xv, gv)
    win = _window(xv, (2, 2), (2, 2), (0, 1), (1, 1), -np.inf)
    np.testing.assert_array_equal(got_y, win.max(axis=(4, 5)))
    np.testing.assert_allclose(got_dx, ref[1], rtol=1e-6, atol=0)  # NaN where NaN
    assert got_dx[0, 0, 0, 0] == got_dx[0, 0, 1, 0] == gv[0, 0, 0, 0] / 2
    assert np.isnan(got_dx[1, 1, 2:4, 1:3]).all() and not np.isnan(got_dx[1, 1, 4:]).any()
    assert np.isinf(got_dx[2, 0, 2:4, 3:5]).sum() == 1 and np.isnan(got_dx[2, 0, 2:4, 3:5]).sum() == 3
    # the numpy backend's own gradient is the composite's (im2col, equal, sum, col2im)
    from graphc.ops.conv import MaxPool2dGrad
    node = next(n for n in gc.toposort([dx]) if n.op.name == "max_pool2d_grad")
    comp = gc.compile([x, g], [MaxPool2dGrad.composite(node)], backend="numpy")(xv, gv)[0]
    np.testing.assert_array_equal(ref[1], comp)
    if backend == "numba":
        assert [k.kind for k in fn.kernels if k.kind.startswith("max_pool")] == ["max_pool2d", "max_pool2d_grad"]

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


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_layer_unrolls_the_cell(backend, batch_first):
    rng = np.random.default_rng(2)
    T, N, I, H = 3, 2, 3, 4
    layer = gc.nn.LSTM(I, H, batch_first=batch_first, seed=3, dtype="float64")
    X = rng.normal(size=(T, N, I))
    x = gc.placeholder((N, T, I) if batch_first else (T, None, I), "float64")
    out, (h, c) = layer(x)
    got_out, got_c = gc.compile([x], [out, c], backend=backend)(X.transpose(1, 0, 2) if batch_first else X)
    W, U, b = (p.value for p in (layer.cell.W_ih, layer.cell.W_hh, layer.cell.b))
    assert np.all(b[H:2 * H] == 1) and np.all(b[:H] == 0)  # forget-gate bias 1
    hs, cs = np.zeros((N, H)), np.zeros((N, H))
    outs = []
    for t in range(T):
        z = X[t] @ W + hs @ U + b
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        cs = 1 / (1 + np.exp(-f)) * cs + 1 / (1 + np.exp(-i)) * np.tanh(g)
        hs = 1 / (1 + np.exp(-o)) * np.tanh(cs)
        outs.append(hs)
    want = np.stack(outs)
    np.testing.assert_allclose(got_out, want.transpose(1, 0, 2) if batch_first else want, rtol=1e-10)
    np.testing.assert_allclose(got_c, cs, rtol=1e-10)


def test_rnn_layer_and_unroll_errors(backend):
    rnn = gc.nn.RNN(2, 3, seed=0, dtype="float64")
    X = np.random.default_rng(4).normal(size=(4, 2, 2))
    x = gc.placeholder((4, 2, 2), "float64")
    out, h = rnn(x)
    got = gc.compile([x], out, backend=backend)(X)
    W, U, b = rnn.cell.W_ih.value, rnn.cell.W_hh.value, rnn.cell.b.value
    hs = np.zeros((2, 3))
    for t in range(4):
        hs = np.tanh(X[t] @ W + hs @ U + b)
        np.testing.assert_allclose(got[t], hs, rtol=1e-10)
    with pytest.raises(gc.GraphError, match="T known"):
        gc.nn.unroll(rnn.cell, gc.placeholder((None, 2, 2)))
    with pytest.raises(gc.GraphError, match="nonlinearity"):
        gc.nn.RNNCell(2, 3, nonlinearity="sigmoid")

"""gc.onnx.export: inference graphs out to ONNX (checked with full_check), run by onnxruntime to the
same values as graphc, and imported back (graphc -> ONNX -> graphc) to the same values."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import graphc as gc  # noqa: E402


def _round_trip(ins, outs, feeds, backend="numba"):
    f = gc.compile(ins, outs, backend=backend)
    model = gc.onnx.export(f)  # checker.check_model(full_check=True) inside
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {p.name: v for p, v in zip(ins, feeds)})
    want = f(*feeds)
    back = gc.onnx.load(model).compile("numpy")(*feeds)
    for g, b, w in zip(got, back, want):
        assert g.dtype == w.dtype and b.dtype == w.dtype
        np.testing.assert_allclose(g, w, atol=1e-5)
        np.testing.assert_allclose(b, w, atol=1e-5)
    return model


def test_an_mlp_with_softmax_and_argmax():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 8), name="x")
    mlp = gc.nn.Sequential(gc.nn.Linear(8, 16, seed=0), gc.nn.ReLU(), gc.nn.Linear(16, 3, seed=1))
    z = mlp(x)
    model = _round_trip([x], [gc.softmax(z), gc.argmax(z, 1)], [rng.normal(size=(5, 8)).astype(np.float32)])
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.HasField("dim_value")  # the run-time batch is a dim_param


def test_a_cnn_is_im2col_as_a_gather_and_a_gemm():
    rng = np.random.default_rng(1)
    x = gc.placeholder((None, 1, 12, 12), name="img")
    cnn = gc.nn.Sequential(gc.nn.Conv2d(1, 4, 3, padding=1, seed=0), gc.nn.ReLU(),
                           gc.nn.Conv2d(4, 8, 3, padding=1, groups=2, seed=3),  # a grouped GEMM
                           gc.nn.Conv2d(8, 8, 3, padding=1, groups=8, seed=4), gc.nn.MaxPool2d(2),  # depthwise
                           gc.nn.Flatten(), gc.nn.Linear(8 * 36, 10, seed=2))
    z = cnn(x)
    model = _round_trip([x], [gc.log_softmax(z)], [rng.normal(size=(2, 1, 12, 12)).astype(np.float32)])
    assert {"Gather", "MatMul", "ReduceMax"} <= {n.op_type for n in model.graph.node}


def test_an_lstm_is_an_onnx_scan():
    rng = np.random.default_rng(2)
    xs = gc.placeholder((None, 6, 3), name="seq")
    lstm = gc.nn.LSTM(3, 5, num_layers=2, batch_first=True, seed=0)
    out, (h, _) = lstm(xs)
    model = _round_trip([xs], [out, h], [rng.normal(size=(2, 6, 3)).astype(np.float32)])
    assert [n.op_type for n in model.graph.node].count("Scan") == 2
    assert len({t.name for t in model.graph.initializer}) == len(model.graph.initializer)  # W_ih, W_ih_2, ...


def test_layer_norm_and_a_training_function_is_refused():
    rng = np.random.default_rng(3)
    x = gc.placeholder((None, 8), name="x")
    ln = gc.nn.LayerNorm(8)
    _round_trip([x], [ln(x), gc.rms_norm(x)], [rng.normal(size=(3, 8)).astype(np.float32)], backend="numpy")
    W = gc.parameter(np.ones((8, 2), np.float32))
    loss = gc.sum(x @ W)
    step = gc.compile([x], loss, gc.optim.SGD(0.1).updates(loss, [W]))
    with pytest.raises(gc.GraphError, match="inference graphs"):
        gc.onnx.export(step)

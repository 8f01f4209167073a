"""gc.onnx.load: models built with onnx.helper, run on graphc against onnxruntime; errors that name
the op, the node and what is missing; fine-tuning an imported model; external data."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphc as gc  # noqa: E402


def _mlp(rng, batch="N"):
    W1, b1 = rng.normal(size=(8, 16)).astype(np.float32) * 0.3, rng.normal(size=16).astype(np.float32)
    W2, b2 = rng.normal(size=(16, 3)).astype(np.float32) * 0.3, rng.normal(size=3).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["z0"]),
             helper.make_node("Add", ["z0", "b2"], ["z"]),
             helper.make_node("Softmax", ["z"], ["p"], axis=-1)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2"))]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, [batch, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _ort(model, feeds):
    src = str(model) if not hasattr(model, "SerializeToString") else model.SerializeToString()
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_mlp_matches_onnxruntime(backend):
    rng = np.random.default_rng(0)
    model = _mlp(rng)
    m = gc.onnx.load(model)
    assert [p.label for p in m.parameters] == ["W1", "b1", "W2", "b2"] and m.inputs[0].shape == (None, 8)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    got = gc.compile(m.inputs, m.outputs, backend=backend)(x)[0]
    np.testing.assert_allclose(got, _ort(model, {"x": x})[0], atol=1e-5)


def test_errors_name_the_op_the_node_and_what_is_missing():
    g = helper.make_graph([helper.make_node("Unique", ["x"], ["y"], name="dedupe")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    with pytest.raises(gc.onnx.UnsupportedError, match=r"Unique node 'dedupe' \(ai.onnx, opset \d+\): no converter"):
        gc.onnx.load(helper.make_model(g))
    g = helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.UINT8, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [4])])
    with pytest.raises(gc.GraphError, match="graph input 'x': element type uint8"):
        gc.onnx.load(helper.make_model(g))


def test_an_attribute_the_converter_does_not_read_is_refused_not_ignored():
    def model(**attrs):
        g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], name="sm", **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    ok = gc.onnx.load(model(axis=0))  # read: honoured
    e = np.exp(x - x.max(0))
    np.testing.assert_allclose(gc.compile(ok.inputs, ok.outputs)(x)[0], e / e.sum(0), rtol=1e-6)
    with pytest.raises(gc.onnx.UnsupportedError, match=r"Softmax node 'sm'.*attribute temperature is not supported"):
        gc.onnx.load(model(axis=0, temperature=2.0))


def test_a_shape_fed_as_an_input_is_given_at_import():
    """Reshape's shape as a graph input: load names the input; with values= it is folded in."""
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
                           helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])])
    model = helper.make_model(g)
    with pytest.raises(gc.onnx.UnsupportedError, match="depends on graph input 's'"):
        gc.onnx.load(model)
    m = gc.onnx.load(model, values={"s": np.array([3, 4])})
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(m.compile()(x)[0], x.reshape(3, 4))


def test_fine_tuning_an_imported_model():
    """trainable=True: the initializers are trainable parameters, gradients flow, SGD lowers the loss."""
    rng = np.random.default_rng(1)
    m = gc.onnx.load(_mlp(rng), trainable=True)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 32)
    t = gc.placeholder((None,), "int64")
    loss = gc.mean(-gc.log(gc.sum(m.outputs[0] * gc.one_hot(t, 3), 1)))
    step = gc.compile(m.inputs + [t], loss, gc.optim.SGD(0.5).updates(loss, m.parameters))
    first = float(step(x, labels))
    for _ in range(30):
        last = float(step(x, labels))
    assert last < 0.7 * first
    frozen = gc.onnx.load(_mlp(rng))
    assert not any(p.attrs["trainable"] for p in frozen.parameters)


def test_external_data_and_run_time_dims(tmp_path):
    rng = np.random.default_rng(2)
    model = _mlp(rng, batch="batch")
    path = tmp_path / "mlp.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="mlp.onnx.data", size_threshold=0)
    assert (tmp_path / "mlp.onnx.data").exists()
    m = gc.onnx.load(path)
    assert m.inputs[0].shape == (None, 8)
    x = rng.normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(m.compile("numba")(x)[0], _ort(path, {"x": x})[0], atol=1e-5)


def test_an_onnx_lstm_runs_on_scan_and_matches_onnxruntime():
    """ONNX's LSTM (bidirectional, with biases and initial states) becomes two gc.scan loops."""
    rng = np.random.default_rng(3)
    T, N, I, H = 5, 2, 3, 4
    W = rng.normal(size=(2, 4 * H, I)).astype(np.float32) * 0.5
    R = rng.normal(size=(2, 4 * H, H)).astype(np.float32) * 0.5
    B = rng.normal(size=(2, 8 * H)).astype(np.float32) * 0.1
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "yh", "yc"], hidden_size=H,
                            direction="bidirectional")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, N, I]),
                                        helper.make_tensor_value_info("h0", TensorProto.FLOAT, [2, N, H]),
                                        helper.make_tensor_value_info("c0", TensorProto.FLOAT, [2, N, H])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "yh", "yc")],
                          [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m = gc.onnx.load(model)
    f = m.compile("numba")
    assert any(n.op.name == "scan" for n in f.program.order)
    feeds = {"x": rng.normal(size=(T, N, I)).astype(np.float32),
             "h0": rng.normal(size=(2, N, H)).astype(np.float32), "c0": rng.normal(size=(2, N, H)).astype(np.float32)}
    for got, want in zip(f(*[feeds[p.name] for p in m.inputs]), _ort(model, feeds)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert "scan-body" in gc.to_dot(f, "forward").source


def test_the_command_line_draws_and_runs_an_onnx_file(tmp_path, capsys):
    from graphc.cli import main
    rng = np.random.default_rng(4)
    model = _mlp(rng)
    path = tmp_path / "mlp.onnx"
    onnx.save_model(model, str(path))
    x = rng.normal(size=(2, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["viz", str(path), "--stage", "optimized", "--backend", "numpy", "-o", str(tmp_path / "m.dot")]) == 0
    assert "Gemm" not in (tmp_path / "m.dot").read_text() and "matmul" in (tmp_path / "m.dot").read_text()
    assert main(["onnx-run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--save", str(tmp_path / "out")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out" / "p.npy"), _ort(model, {"x": x})[0], atol=1e-5)
    assert "p: (2, 3) float32" in capsys.readouterr().out


def test_a_damaged_file_or_missing_external_data_is_an_unsupported_error(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "mlp.onnx"
    onnx.save_model(_mlp(rng), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(gc.onnx.UnsupportedError, match="cannot read the ONNX model") as e:
        gc.onnx.load(path)
    assert e.value.loc[0] == __file__
    ext = tmp_path / "ext.onnx"
    onnx.save_model(_mlp(rng), str(ext), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(gc.onnx.UnsupportedError, match="cannot read the ONNX model"):
        gc.onnx.load(ext)

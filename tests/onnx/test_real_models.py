"""Real exported models (tests/data/onnx, written by tools/export_onnx_models.py with torch's two
exporters and skl2onnx) imported into graphc and run on the digits, against onnxruntime."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
datasets = pytest.importorskip("sklearn.datasets")

import graphc as gc  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "onnx"


def _digits(n=64):
    d = datasets.load_digits()
    return (d.data[:n] / 16.0).astype(np.float32), d.target[:n]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name, shape", [("digits_mlp", (-1, 64)), ("digits_cnn", (-1, 1, 8, 8)),
                                         ("digits_sklearn_mlp", (-1, 64))])
def test_exported_models_match_onnxruntime(name, shape, backend):
    path = DATA / f"{name}.onnx"
    x, labels = _digits()
    x = x.reshape(shape)
    model = gc.onnx.load(path)
    fn = gc.compile(model.inputs, model.outputs, backend=backend)
    got = fn(x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {model.input_names[0]: x})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-5)
    logits = got[-1] if name == "digits_sklearn_mlp" else got[0]
    assert (logits.argmax(1) == labels).mean() > 0.75  # trained models, not random weights


def test_the_dynamo_export_keeps_its_weights_outside():
    assert (DATA / "digits_cnn.onnx.data").exists()
    m = onnx.load(str(DATA / "digits_cnn.onnx"), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)

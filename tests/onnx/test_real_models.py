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


LIGHT = sorted((pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("*.onnx"))


@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_the_light_model_zoo_matches_onnxruntime(path):
    """The nine 'light' models in the onnx wheel (ResNet-50, VGG-19, DenseNet-121, Inception v1/v2,
    ShuffleNet, SqueezeNet, AlexNet, ZFNet-512) on the NumPy backend against onnxruntime
    (`make onnx-conformance` runs them on numba too)."""
    m = onnx.load(str(path))
    last = m.graph.node[-1]
    if last.op_type == "Softmax":
        # the logits too: these models' constant weights make them ~1e10 (SqueezeNet's), where
        # one float32 ulp is ~1e3, so a rounding difference in the pooled sums (NumPy 2.4's
        # summation order against onnxruntime's) turns a softmax entry to 0. Both are compared;
        # the probabilities only where float32 can tell them apart (|logit| * eps < 0.01)
        (value,) = [v for v in onnx.shape_inference.infer_shapes(m).graph.value_info if v.name == last.input[0]]
        m.graph.output.append(value)
    g = gc.onnx.load(m)
    x = np.random.default_rng(0).random([d or 1 for d in g.inputs[0].shape], dtype=np.float32)
    got = gc.compile(g.inputs, g.outputs)(x)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {g.input_names[0]: x})
    assert len(got) == len(want)
    for k, (a, w) in enumerate(zip(got, want)):
        if last.op_type == "Softmax" and k == 0 and np.abs(want[-1]).max() * np.finfo(np.float32).eps >= 0.01:
            continue
        np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-5 * float(np.abs(w).max()))


def test_all_nine_light_models_are_there():
    assert len(LIGHT) == 9

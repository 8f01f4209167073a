"""gc.onnx: ONNX models as ordinary graphc graphs.

    model = gc.onnx.load("model.onnx")           # placeholders, outputs, initializers as parameters
    fn = gc.compile(model.inputs, model.outputs, backend="numba")

Converters are keyed by (domain, op type, since version) in graphc/onnx/converters.py; what cannot
be expressed is an UnsupportedError naming the op, its opset, the node and what is missing.
graphc.onnx.backend is an onnx.backend.base backend, for the ONNX conformance suite;
gc.onnx.export(fn, "model.onnx") writes an inference graph back out.
"""
from .exporter import export
from .importer import OnnxModel, UnsupportedError, load

__all__ = ["OnnxModel", "UnsupportedError", "export", "load"]

"""graphc as an ONNX backend (onnx.backend.base): what the ONNX conformance suite runs.

prepare(model) imports it once; a run whose shape-like inputs (a Reshape's shape fed as a graph
input, ...) are needed at import imports again with their fed values, one build per set of them.
GRAPHC_ONNX_BACKEND (numpy by default) is the graphc backend it compiles for.
"""
from __future__ import annotations

import os

import numpy as np
from onnx.backend.base import Backend, BackendRep

from .importer import NeedsValue, UnsupportedError, load


class GraphcRep(BackendRep):
    """A prepared model: runs it on a list of inputs (the graph's order, initializers excluded)."""

    def __init__(self, model, backend: str):
        self.model, self.backend = model, backend
        self.static: list[str] = []  # the inputs fixed at import
        self.builds: dict = {}

    def _build(self, named: dict):
        key = tuple((n, named[n].dtype.str, named[n].shape, named[n].tobytes()) for n in self.static)
        fn = self.builds.get(key)
        while fn is None:
            try:
                imported = load(self.model, values={n: named[n] for n in self.static})
            except NeedsValue as e:
                self.static.append(e.name)
                key = tuple((n, named[n].dtype.str, named[n].shape, named[n].tobytes()) for n in self.static)
                fn = self.builds.get(key)
                continue
            fn = imported.compile(self.backend), imported.input_names, [p.name for p in imported.inputs]
            self.builds[key] = fn
        return fn

    def run(self, inputs, **kwargs):
        graph_inputs = [i.name for i in self.model.graph.input if i.name not in
                        {t.name for t in self.model.graph.initializer}]
        pairs = inputs.items() if isinstance(inputs, dict) else zip(graph_inputs, inputs)
        named = {}
        for n, v in pairs:
            if not isinstance(v, (np.ndarray, np.generic, int, float, bool)):
                raise UnsupportedError(f"graph input {n!r}: a {type(v).__name__}, not a tensor (sequences, maps "
                                       "and optionals are not supported)")
            named[n] = np.asarray(v)
        fn, _, fed = self._build(named)
        outs = fn(*[named[n] for n in fed])
        return tuple(outs) if isinstance(outs, (list, tuple)) else (outs,)


class GraphcBackend(Backend):
    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        return GraphcRep(model, kwargs.get("backend", os.environ.get("GRAPHC_ONNX_BACKEND", "numpy")))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def backend_for(name: str) -> type[GraphcBackend]:
    """The onnx backend that compiles for graphc backend `name` (numpy, numba, cuda)."""
    class Named(GraphcBackend):
        @classmethod
        def prepare(cls, model, device: str = "CPU", **kwargs):
            return super().prepare(model, device, **{"backend": name, **kwargs})
    Named.__name__ = f"GraphcBackend_{name}"
    return Named


prepare = GraphcBackend.prepare
run_model = GraphcBackend.run_model
supports_device = GraphcBackend.supports_device

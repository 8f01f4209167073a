"""ONNX models as graphc graphs: walk the graph in order, convert each node with the converter
registered for its (domain, op type) at the model's opset, fold what is known at import.

A value is either a graph node or a NumPy array known at import (a constant, a non-float
initializer, or anything computed from those alone). Shape-like inputs (Reshape's shape, Slice's
starts, Pad's pads...) must be known: when one is a graph input, the importer raises NeedsValue
and a caller that has the fed value imports again with it (graphc.onnx.backend does).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .. import api as F
from ..errors import GraphError
from ..ir import Node, user_location

# ONNX TensorProto element types graphc holds (the others are UnsupportedError)
DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 11: np.float64}
TYPE_NAMES = {0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
              7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32",
              13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"}


class UnsupportedError(GraphError):
    """An ONNX model uses something graphc cannot express: the op, its domain and opset, the
    node's name and what is missing."""


class NeedsValue(UnsupportedError):
    """A shape-like value depends on graph input `name`: import again with its value fixed
    (gc.onnx.load(..., values={name: array})); graphc.onnx.backend does so itself."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


def onnx_dtype(elem_type: int, what: str):
    if elem_type not in DTYPES:
        raise UnsupportedError(f"{what}: element type {TYPE_NAMES.get(elem_type, elem_type)} is not one graphc "
                               "holds (float32, float64, int32, int64, bool)")
    return np.dtype(DTYPES[elem_type])


@dataclass(frozen=True)
class SymShape:
    """A shape tensor some of whose entries are known only at run time (Shape of a value with
    run-time dims): dims, with None where the entry is `like`'s dim at the same position."""

    dims: tuple
    like: Node


@dataclass
class OnnxModel:
    """An imported model: placeholders in the graph's input order (initializers excluded), output
    nodes, and the initializers held as parameters (named as in the file)."""

    inputs: list
    outputs: list
    parameters: list = field(default_factory=list)
    input_names: list = field(default_factory=list)
    output_names: list = field(default_factory=list)
    opset: int = 0

    def compile(self, backend: str = "numpy", **kw):
        """gc.compile(model.inputs, model.outputs, backend=...)."""
        from ..compiler import compile as compile_
        return compile_(self.inputs, self.outputs, backend=backend, **kw)


class _Attrs(dict):
    """A node's attributes, remembering which ones the converter looked at: one it never read would
    change the result unseen (SpaceToDepth's mode did), so the importer refuses it."""

    def __init__(self, items):
        super().__init__(items)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)

    def items(self):  # a converter that hands them all on (Resize, to onnx's reference) reads them all
        self.read.update(super().keys())
        return super().items()


class Ctx:
    """What a converter sees of one ONNX node: its inputs (as nodes, or as values known at import),
    its attributes, the opset, and the node's name for messages."""

    def __init__(self, importer, proto, version):
        self.imp, self.proto, self.version = importer, proto, version
        self.attrs = _Attrs({a.name: _attr_value(a) for a in proto.attribute})

    def ignore(self, *names: str) -> None:
        """Attributes that do not change the result (hints), read so the importer accepts them."""
        for n in names:
            self.attrs.get(n)

    @property
    def op(self) -> str:
        return self.proto.op_type

    def where(self) -> str:
        name = f" {self.proto.name!r}" if self.proto.name else ""
        domain = self.proto.domain or "ai.onnx"
        return f"{self.proto.op_type} node{name} ({domain}, opset {self.imp.opsets.get(self.proto.domain, '?')})"

    def unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.where()}: {what}")

    def n_inputs(self) -> int:
        return len(self.proto.input)

    def has(self, i: int) -> bool:
        return i < len(self.proto.input) and self.proto.input[i] != ""

    def value(self, i: int):
        """Input i as it is held: a node or an array known at import."""
        return self.imp.values[self.proto.input[i]]

    def node(self, i: int) -> Node:
        v = self.value(i)
        if isinstance(v, SymShape):
            raise self.unsupported(f"input {i} is a shape known only at run time, used as data")
        return v if isinstance(v, Node) else F.constant(v)

    def shape_value(self, i: int):
        """Input i as a shape: a list of ints, or a SymShape with run-time entries."""
        v = self.value(i)
        return v if isinstance(v, SymShape) else [int(d) for d in self.static(i).reshape(-1).tolist()]

    def known(self, i: int) -> bool:
        return not isinstance(self.value(i), (Node, SymShape))

    def static(self, i: int) -> np.ndarray:
        """Input i's value, which must be known at import (a shape, axes, pads...)."""
        name = self.proto.input[i]
        v = self.imp.values[name]
        if isinstance(v, SymShape):
            raise self.unsupported(f"input {i} ({name!r}) is a shape known only at run time, where a shape "
                                   "known at import is needed")
        if isinstance(v, Node):
            if v.op.name == "parameter":
                return v.value
            from ..ir import toposort
            leaves = [n for n in toposort([v]) if n.is_leaf]
            fed = [n for n in leaves if n.op.name == "placeholder" and n.name in self.imp.input_names]
            if fed and all(n.op.name in ("placeholder", "constant") for n in leaves):
                raise NeedsValue(f"{self.where()}: input {i} ({name!r}) sets a shape and depends on graph input "
                                 f"{fed[0].name!r}: give its value when importing (values={{{fed[0].name!r}: ...}})",
                                 fed[0].name)
            raise self.unsupported(f"input {i} ({name!r}) must be known when the model is imported (it sets a "
                                   "shape), but it is computed at run time: a data-dependent shape")
        return np.asarray(v)

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)


def _attr_value(a):
    from onnx import helper
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode() for x in v]
    if hasattr(v, "dims") and hasattr(v, "data_type"):  # a TensorProto
        from onnx import numpy_helper
        return numpy_helper.to_array(v)
    return v


class Importer:
    """One model's import: values by name, the opsets, the converters."""

    def __init__(self, model, trainable: bool = False, values: dict | None = None):
        from .converters import CONVERTERS
        self.model, self.graph = model, model.graph
        self.trainable = trainable
        self.given = dict(values or {})
        self.opsets = {o.domain if o.domain != "ai.onnx" else "": o.version for o in model.opset_import}
        self.converters = CONVERTERS
        self.values: dict = {}
        self.parameters = []
        self.input_names = []

    def run(self) -> OnnxModel:
        from onnx import numpy_helper
        g = self.graph
        inits = {t.name for t in g.initializer}
        for t in g.initializer:
            arr = numpy_helper.to_array(t)
            if arr.dtype not in DTYPES.values():
                raise UnsupportedError(f"initializer {t.name!r}: dtype {arr.dtype} is not one graphc holds "
                                       "(float32, float64, int32, int64, bool)")
            if arr.dtype.kind == "f":
                p = F.parameter(arr, name=t.name, trainable=self.trainable)
                self.parameters.append(p)
                self.values[t.name] = p
            else:
                self.values[t.name] = arr
        inputs = []
        for vi in g.input:
            if vi.name in inits:
                continue
            self.input_names.append(vi.name)
            if vi.name in self.given:
                self.values[vi.name] = np.asarray(self.given[vi.name])
                continue
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                raise UnsupportedError(f"graph input {vi.name!r}: only tensors are supported (got "
                                       f"{vi.type.WhichOneof('value')})")
            dt = onnx_dtype(tt.elem_type, f"graph input {vi.name!r}")
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            ph = F.placeholder(shape, dt, name=vi.name)
            self.values[vi.name] = ph
            inputs.append(ph)
        self.convert_nodes(g.node)
        outs, out_names = [], []
        for vo in g.output:
            if vo.name not in self.values:
                raise UnsupportedError(f"graph output {vo.name!r} is computed by no node")
            v = self.values[vo.name]
            if isinstance(v, SymShape):
                raise UnsupportedError(f"graph output {vo.name!r} is a shape known only at run time")
            out_names.append(vo.name)
            outs.append(v if isinstance(v, Node) else F.constant(v))
        return OnnxModel(inputs, outs, self.parameters, [p.name for p in inputs], out_names,
                         self.opsets.get("", 0))

    def subgraph(self, graph, bindings: dict) -> list:
        """The outputs of a body graph (Scan's) whose inputs are bound to these values; outer names
        stay in scope, the body's own initializers are constants."""
        from onnx import numpy_helper
        saved = self.values
        self.values = dict(saved)
        try:
            for t in graph.initializer:
                self.values[t.name] = numpy_helper.to_array(t)
            self.values.update(bindings)
            self.convert_nodes(graph.node)
            return [self.values[o.name] for o in graph.output]
        finally:
            self.values = saved

    def convert_nodes(self, nodes):
        for proto in nodes:
            domain = proto.domain if proto.domain != "ai.onnx" else ""
            key = (domain, proto.op_type)
            versions = self.converters.get(key)
            opset = self.opsets.get(domain)
            ctx = Ctx(self, proto, opset)
            if not versions:
                raise ctx.unsupported("no converter for this op")
            since = [v for v in versions if opset is None or v <= opset]
            if not since:
                raise ctx.unsupported(f"converters exist from opset {min(versions)} only")
            ctx.version = max(since)
            fn = versions[ctx.version]
            for name in proto.input:
                if name and name not in self.values:
                    raise ctx.unsupported(f"input {name!r} is defined by no earlier node")
            try:
                res = fn(ctx)
            except (NeedsValue, UnsupportedError):
                raise
            except GraphError as e:
                raise UnsupportedError(f"{ctx.where()}: {e.message}") from None
            unread = sorted(set(ctx.attrs) - ctx.attrs.read)
            if unread:
                raise ctx.unsupported(f"attribute {', '.join(unread)} is not supported (the converter does "
                                      "not read it, so its value would be ignored)")
            res = list(res) if isinstance(res, (list, tuple)) else [res]
            for name, v in zip(proto.output, res):
                if name:
                    self.values[name] = _fold(v)


def _fold(v):
    """v, as an array when it is a node computed from constants alone (folded at import)."""
    if isinstance(v, SymShape):
        return v
    if not isinstance(v, Node) or v.op.name in ("placeholder", "parameter"):
        return v
    if v.op.name == "constant":
        return v.data
    from ..ir import toposort
    leaves = [n for n in toposort([v]) if n.is_leaf]
    if any(n.op.name != "constant" for n in leaves):
        return v
    if any(n.op.kind == "random" for n in toposort([v])):
        return v
    from ..compiler import compile as compile_
    return np.asarray(compile_([], v, backend="numpy")())


def load(source, trainable: bool = False, values: dict | None = None) -> OnnxModel:
    """Import an ONNX model (a path or a ModelProto; external data beside the file loads too).

    trainable=True makes the float initializers trainable parameters (fine-tuning); values gives
    graph inputs whose values are fixed at import (shape-like inputs)."""
    import onnx
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            model = onnx.load(path, load_external_data=True)
        except Exception as e:  # a damaged file, missing external data: onnx's own error, named
            raise UnsupportedError(f"cannot read the ONNX model {path!r}: {type(e).__name__}: {e}"[:600],
                                   user_location()) from None
    else:
        model = source
    return Importer(model, trainable, values).run()

"""graphc graphs as ONNX models: each primitive of an inference graph written as ONNX operators.

Parameters become initializers (named by their labels), run-time dims dim_params. Convolutions
and pools are im2col, a patch gather that ONNX expresses as Pad and a Gather of constant indices,
then the GEMM or reduction graphc itself runs; a scan becomes ONNX's Scan with its body as a
subgraph (captured values read from the outer scope).
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from ..ir import Node, toposort, user_location
from .importer import DTYPES, UnsupportedError

ONNX_TYPE = {np.dtype(v): k for k, v in DTYPES.items()}
BIG = 2 ** 62


class _Writer:
    """One (sub)graph being written: ONNX nodes, initializers, and each graphc node's value name."""

    def __init__(self, names: dict, prefix: str = ""):
        from onnx import helper, numpy_helper
        self.h, self.nh = helper, numpy_helper
        self.names = dict(names)
        self.nodes, self.inits = [], []
        self.count = 0
        self.prefix = prefix

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, value, hint="c") -> str:
        name = self.fresh(hint)
        self.inits.append(self.nh.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs, hint=None, n_out: int = 1, **attrs):
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def cast(self, name: str, have, want) -> str:
        return name if np.dtype(have) == np.dtype(want) else self.op("Cast", [name], to=ONNX_TYPE[np.dtype(want)])


def _value_info(h, name, node: Node, dims=None):
    shape = [d if d is not None else (dims or {}).get(k, f"{name}_d{k}") for k, d in enumerate(node.shape)]
    return h.make_tensor_value_info(name, ONNX_TYPE[node.dtype], shape)


def _windows(w: _Writer, x: str, node: Node) -> tuple:
    """Pad, flatten the image, Gather the constant patch indices: the windows (N, C, kh*kw,
    OH*OW), with C, kh*kw, OH and OW."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (node.attrs[k] for k in ("kernel", "stride", "padding", "dilation"))
    _, C, H, W = node.inputs[0].shape
    Hp, Wp = H + 2 * ph, W + 2 * pw
    oh, ow = (Hp - dh * (kh - 1) - 1) // sh + 1, (Wp - dw * (kw - 1) - 1) // sw + 1
    if ph or pw:
        x = w.op("Pad", [x, w.const(np.array([0, 0, ph, pw, 0, 0, ph, pw], np.int64)),
                         w.const(np.array(node.attrs["value"], node.dtype))], mode="constant")
    flat = w.op("Reshape", [x, w.const(np.array([0, C, Hp * Wp], np.int64))])
    i = (np.arange(kh)[:, None, None, None] * dh + np.arange(oh)[None, None, :, None] * sh)
    j = (np.arange(kw)[None, :, None, None] * dw + np.arange(ow)[None, None, None, :] * sw)
    idx = (i * Wp + j).reshape(kh * kw, oh * ow).astype(np.int64)
    return w.op("Gather", [flat, w.const(idx)], axis=2), C, kh * kw, oh, ow


def _im2col(w: _Writer, x: str, node: Node) -> str:
    """The windows reshaped to (N, C*kh*kw, OH*OW) (layout "knl": then to (C*kh*kw, N*OH*OW))."""
    patches, C, kk, oh, ow = _windows(w, x, node)
    cols = w.op("Reshape", [patches, w.const(np.array([0, C * kk, oh * ow], np.int64))])
    if node.attrs.get("layout", "nkl") == "knl":  # the images side by side: (C*kh*kw, N*OH*OW)
        cols = w.op("Reshape", [w.op("Transpose", [cols], perm=[1, 0, 2]),
                                w.const(np.array([C * kk, -1], np.int64))])
    return cols


_UNARY = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos", "tanh": "Tanh", "atan": "Atan",
          "erf": "Erf", "sigmoid": "Sigmoid", "softplus": "Softplus", "neg": "Neg", "abs": "Abs", "sign": "Sign",
          "relu": "Relu", "logical_not": "Not"}
_ARITH = {"add": "Add", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max", "minimum": "Min"}
_COMPARE = {"less": "Less", "less_equal": "LessOrEqual", "equal": "Equal", "logical_and": "And",
            "logical_or": "Or"}
_REDUCE = {"sum": "ReduceSum", "prod": "ReduceProd", "max": "ReduceMax", "min": "ReduceMin",
           "logsumexp": "ReduceLogSumExp"}


def _emit(w: _Writer, n: Node, ins: list, opset: int) -> str:
    """The ONNX value computing graphc node n from its inputs' values `ins`."""
    name, x = n.op.name, n.inputs
    if name in _UNARY:
        return w.op(_UNARY[name], [w.cast(ins[0], x[0].dtype, n.dtype)])
    if name in _ARITH:
        return w.op(_ARITH[name], [w.cast(i, v.dtype, n.dtype) for i, v in zip(ins, x)])
    if name in _COMPARE or name == "not_equal":
        common = np.result_type(*[v.dtype for v in x])
        args = [w.cast(i, v.dtype, common) for i, v in zip(ins, x)]
        if name == "not_equal":
            return w.op("Not", [w.op("Equal", args)])
        return w.op(_COMPARE[name], args)
    if name == "where":
        return w.op("Where", [ins[0]] + [w.cast(i, v.dtype, n.dtype) for i, v in zip(ins[1:], x[1:])])
    if name == "cast":
        return w.op("Cast", [ins[0]], to=ONNX_TYPE[n.dtype])
    if name == "log1p":
        return w.op("Log", [w.op("Add", [ins[0], w.const(np.array(1, n.dtype))])])
    if name == "step":
        return w.op("Cast", [w.op("GreaterOrEqual", [ins[0], w.const(np.array(0, x[0].dtype))])],
                    to=ONNX_TYPE[n.dtype])
    if name == "check_index":  # in range by construction of an inference graph's indices
        return w.op("Identity", [ins[0]])
    if name in _REDUCE:
        axes = list(n.attrs["axes"])
        src = w.cast(ins[0], x[0].dtype, n.dtype)
        return w.op(_REDUCE[name], [src, w.const(np.array(axes, np.int64))], keepdims=int(n.attrs["keepdims"]))
    if name in ("argmax", "argmin"):
        axis, keep = n.attrs["axis"], n.attrs["keepdims"]
        src = ins[0]
        if axis is None:
            src, axis = w.op("Reshape", [src, w.const(np.array([-1], np.int64))]), 0
        out = w.op("ArgMax" if name == "argmax" else "ArgMin", [src], axis=axis, keepdims=int(keep))
        return w.cast(out, np.int64, n.dtype)
    if name == "log_softmax":
        axes = n.attrs["axes"]
        if len(axes) != 1:
            raise UnsupportedError(f"log_softmax over axes {axes}: ONNX's LogSoftmax takes one axis")
        return w.op("LogSoftmax", [ins[0]], axis=axes[0])
    if name == "normalize":
        axes = list(n.attrs["axes"])
        if axes != list(range(axes[0], x[0].ndim)):
            raise UnsupportedError(f"normalize over axes {axes}: only trailing axes export")
        if n.attrs["center"]:
            ones = w.const(np.ones(x[0].shape[axes[0]:], n.dtype))
            return w.op("LayerNormalization", [ins[0], ones], axis=axes[0], epsilon=float(n.attrs["eps"]))
        ms = w.op("ReduceMean", [w.op("Mul", [ins[0], ins[0]]), w.const(np.array(axes, np.int64))], keepdims=1)
        rms = w.op("Sqrt", [w.op("Add", [ms, w.const(np.array(n.attrs["eps"], n.dtype))])])
        return w.op("Div", [ins[0], rms])
    if name == "matmul":
        return w.op("MatMul", ins)
    if name == "reshape":
        shape = n.attrs["shape"]
        if n.attrs.get("src") is not None:
            shape = tuple(0 if d is None and a == k else d for k, (d, a) in enumerate(zip(shape, n.attrs["src"])))
        if sum(d is None or d == -1 for d in shape) > 1:
            raise UnsupportedError(f"reshape of {x[0].label} to {shape}: more than one run-time dim")
        target = [-1 if d is None else d for d in shape]
        return w.op("Reshape", [ins[0], w.const(np.array(target, np.int64))])
    if name == "broadcast_to":
        shape = n.attrs["shape"]
        if None in shape:
            like = w.op("Shape", [ins[1]])
            static = w.const(np.array([1 if d is None else d for d in shape], np.int64))
            mask = w.const(np.array([d is None for d in shape]))
            target = w.op("Where", [mask, like, static])
        else:
            target = w.const(np.array(shape, np.int64))
        return w.op("Expand", [ins[0], target])
    if name == "transpose":
        return w.op("Transpose", [ins[0]], perm=list(n.attrs["perm"]))
    if name == "slice":
        index = n.attrs["index"]
        starts = [BIG if (s is None and (st or 1) < 0) else (0 if s is None else s) for s, e, st in index]
        ends = [(-BIG if (st or 1) < 0 else BIG) if e is None else e for s, e, st in index]
        steps = [st or 1 for _, _, st in index]
        if len(ins) > 1:
            raise UnsupportedError("a slice with run-time bounds")
        return w.op("Slice", [ins[0], w.const(np.array(starts, np.int64)), w.const(np.array(ends, np.int64)),
                              w.const(np.arange(len(index), dtype=np.int64)), w.const(np.array(steps, np.int64))])
    if name == "take":
        return w.op("Gather", ins[:2], axis=n.attrs["axis"])
    if name == "pad":
        widths = n.attrs["pad_width"]
        pads = [lo for lo, _ in widths] + [hi for _, hi in widths]
        return w.op("Pad", [ins[0], w.const(np.array(pads, np.int64)), w.const(np.array(n.attrs["value"], n.dtype))],
                    mode="constant")
    if name == "concat":
        return w.op("Concat", ins, axis=n.attrs["axis"])
    if name == "dimsize":
        shape = w.op("Shape", [ins[0]])
        dims = w.op("Gather", [shape, w.const(np.array(list(n.attrs["axes"]), np.int64))])
        size = w.op("ReduceProd", [dims], keepdims=0)
        return w.cast(size, np.int64, n.dtype)
    if name == "im2col":
        return _im2col(w, ins[0], n)
    if name == "max_pool2d":  # ReduceMax over the windows (ONNX's MaxPool takes no integer tensors)
        patches, C, _, oh, ow = _windows(w, ins[0], n)
        best = w.op("ReduceMax", [patches, w.const(np.array([2], np.int64))], keepdims=0)
        return w.op("Reshape", [best, w.const(np.array([0, C, oh, ow], np.int64))])
    raise UnsupportedError(f"{name} ({n.label}) has no ONNX form here (a training-only primitive, or not yet)",
                           n.loc)


def _scan(w: _Writer, n: Node, ins: list, opset: int, values: dict) -> None:
    """ONNX Scan of a graphc scan: states, scan inputs; captured values by their outer names."""
    from ..ops.control import outputs as scan_outputs
    body = n.attrs["body"]
    nc, nx = len(body.carry), len(body.xs)
    inner = _Writer({p: name for p, name in zip(body.captured, ins[nc + nx:])}, prefix=w.fresh("body") + "_")
    b_in = []
    for k, p in enumerate(body.carry + body.xs):
        nm = f"{inner.prefix}in{k}"
        inner.names[p] = nm
        b_in.append(_value_info(w.h, nm, p))
    outs = _write(inner, list(body.outputs), opset)
    b_out = []
    for k, (o, nm) in enumerate(zip(body.outputs, outs)):
        ident = inner.op("Identity", [nm], hint=f"out{k}")  # a body output has a name of its own
        b_out.append(_value_info(w.h, ident, o))
    graph = w.h.make_graph(inner.nodes, inner.prefix + "graph", b_in, b_out, inner.inits)
    rev = int(n.attrs["reverse"])
    res = w.op("Scan", ins[:nc + nx], n_out=nc + len(body.ys), body=graph, num_scan_inputs=nx,
               scan_input_directions=[rev] * nx, scan_output_directions=[rev] * len(body.ys))
    res = res if isinstance(res, list) else [res]
    finals, ys = scan_outputs(n)
    for proj, name in zip(finals + ys, res):
        values[proj] = name


def _write(w: _Writer, roots, opset: int) -> list:
    """Write every node the roots need; their value names."""
    for n in toposort(roots):
        if n in w.names:
            continue
        if n.op.name == "constant":
            w.names[n] = w.const(n.data, "const")
        elif n.op.name in ("placeholder", "parameter"):
            raise GraphError(f"{n.op.name} {n.label} is not an input of the exported graph", user_location())
        elif n.op.name == "scan":
            _scan(w, n, [w.names[i] for i in n.inputs], opset, w.names)
        elif n.op.name == "scan_output":
            if n not in w.names:
                raise UnsupportedError(f"{n.label}: a scan's saved carries and residuals exist only for gradients")
        else:
            w.names[n] = _emit(w, n, [w.names[i] for i in n.inputs], opset)
    return [w.names[r] for r in roots]


def export(obj, path=None, inputs=None, opset: int = 18, name: str = "graphc"):
    """An ONNX ModelProto of an inference graph (saved to path when given).

    obj: a compiled Function (its graph as built; a function with updates is refused: export the
    inference graph, gc.compile(..., training=False)), or output nodes with their input
    placeholders in `inputs`. Parameters become initializers named by their labels (W_ih, W_ih_2
    when two share one)."""
    import onnx
    from onnx import helper

    from ..function import Function
    if isinstance(obj, Function):
        if obj.program.updates:
            raise GraphError("export writes inference graphs: this function updates parameters; compile the "
                             "outputs alone (gc.compile(inputs, outputs, training=False))", user_location())
        ins, outs = list(obj.program.inputs), list(obj.program.source.outputs)
    else:
        outs = list(obj) if isinstance(obj, (list, tuple)) else [obj]
        if inputs is None:
            raise GraphError("export(outputs, ...) needs inputs=[placeholders]", user_location())
        ins = list(inputs)
    from ..compiler import _resolve_mode
    from ..passes import Graph
    outs = list(_resolve_mode(Graph(tuple(ins), tuple(outs), ()), False).outputs)
    names, params = {}, []
    for k, p in enumerate(ins):
        names[p] = p.name or f"input{k}"
    w = _Writer(names)
    used = set(names.values())
    for p in toposort(outs):
        if p.op.name == "parameter" and p not in w.names:
            label, k = p.label, 1
            while label in used:  # two modules' W_ih: W_ih, W_ih_2
                k += 1
                label = f"{p.label}_{k}"
            used.add(label)
            w.names[p] = label
            w.inits.append(w.nh.from_array(np.asarray(p.value), label))
            params.append(p)
        if p.op.kind == "random":
            raise UnsupportedError(f"{p.label}: random numbers (dropout while training) do not export",
                                   p.loc)
    out_names = _write(w, outs, opset)
    taken = {names[p] for p in ins} | {w.names[p] for p in params}
    final = []
    for k, nm in enumerate(out_names):  # an output that is an input, a weight or another output: a copy
        final.append(w.op("Identity", [nm], hint=f"output{k}") if nm in taken else nm)
        taken.add(final[-1])
    dims = {}
    g_in = [_value_info(helper, names[p], p, dims) for p in ins]
    g_out = [_value_info(helper, nm, o) for o, nm in zip(outs, final)]
    graph = helper.make_graph(w.nodes, name, g_in, g_out, w.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="graphc")
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save_model(model, str(path))
    return model

"""ONNX operators as graphc graphs: one converter per (domain, op type, since version).

A converter takes the node's Ctx (graphc/onnx/importer.py) and returns its outputs: graph nodes,
or arrays when they are known at import. The importer picks, for the model's opset, the converter
with the largest since version not above it.
"""
from __future__ import annotations

import math

import numpy as np

from .. import api as F
from ..errors import GraphError
from ..ir import Node
from ..ops.build import reshape_keep
from .importer import NeedsValue, SymShape, UnsupportedError

CONVERTERS: dict[tuple[str, str], dict[int, object]] = {}


def converter(op: str, *since: int, domain: str = ""):
    """Register fn as the converter of op from each of these opset versions on."""
    def register(fn):
        for v in since or (1,):
            CONVERTERS.setdefault((domain, op), {})[v] = fn
        return fn
    return register


def _same_dtype(out: Node, like: Node) -> Node:
    return out if out.dtype == like.dtype else F.cast(out, like.dtype)


def _float_only(ctx, x: Node):
    if x.dtype.kind != "f":
        raise ctx.unsupported(f"input of dtype {x.dtype}: graphc computes this op on floats only")
    return x


# ------------------------------------------------------------------ elementwise
_UNARY = {
    "Abs": F.abs, "Neg": F.neg, "Exp": F.exp, "Log": F.log, "Sqrt": F.sqrt, "Sin": F.sin, "Cos": F.cos,
    "Tanh": F.tanh, "Sigmoid": F.sigmoid, "Relu": F.relu, "Erf": F.erf, "Reciprocal": F.reciprocal,
    "Sign": F.sign, "Atan": F.atan, "Softplus": F.softplus, "Not": F.logical_not,
}
for _name, _fn in _UNARY.items():
    converter(_name, 1, 6, 13)(lambda ctx, _fn=_fn: _fn(ctx.node(0)))

_BINARY = {"Add": F.add, "Sub": F.sub, "Mul": F.mul, "And": F.logical_and, "Or": F.logical_or,
           "Xor": F.logical_xor, "Equal": F.equal, "Greater": F.greater, "Less": F.less,
           "GreaterOrEqual": F.greater_equal, "LessOrEqual": F.less_equal}
for _name, _fn in _BINARY.items():
    converter(_name, 1, 7, 13, 14)(lambda ctx, _fn=_fn: _fn(ctx.node(0), ctx.node(1)))


@converter("Div", 1, 7, 13, 14)
def _div(ctx):
    a, b = ctx.node(0), ctx.node(1)
    if a.dtype.kind in "iu":  # integer division truncates toward zero (C), as a cast to int does
        return F.cast(F.div(F.cast(a, "float64"), F.cast(b, "float64")), a.dtype)
    return F.div(a, b)


@converter("Pow", 1, 7, 12, 13, 15)
def _pow(ctx):
    a, b = ctx.node(0), ctx.node(1)
    if b.dtype != a.dtype:
        b = F.cast(b, a.dtype)
    return _same_dtype(F.pow(a, b), a)


def _variadic(fn):
    def convert(ctx):
        xs = [ctx.node(i) for i in range(ctx.n_inputs()) if ctx.has(i)]
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return out
    return convert


converter("Max", 1, 6, 8, 12, 13)(_variadic(F.maximum))
converter("Min", 1, 6, 8, 12, 13)(_variadic(F.minimum))
converter("Sum", 1, 6, 8, 13)(_variadic(F.add))


@converter("Mean", 1, 6, 8, 13)
def _mean(ctx):
    xs = [ctx.node(i) for i in range(ctx.n_inputs())]
    return F.div(_variadic(F.add)(ctx), float(len(xs)))


@converter("Identity", 1, 13, 14, 16, 19, 21)
def _identity(ctx):
    return ctx.value(0)


@converter("Cast", 1, 6, 9, 13, 19, 21)
def _cast(ctx):
    from .importer import onnx_dtype
    dt = onnx_dtype(ctx.attr("to"), ctx.where())
    ctx.ignore("saturate")  # for casts to float8 only, which graphc does not hold
    x = ctx.node(0)
    return x if x.dtype == dt else F.cast(x, dt)


@converter("CastLike", 15, 19, 21)
def _cast_like(ctx):
    x, like = ctx.node(0), ctx.node(1)
    return x if x.dtype == like.dtype else F.cast(x, like.dtype)


@converter("Where", 9, 16)
def _where(ctx):
    a, b = ctx.value(1), ctx.value(2)
    if isinstance(a, SymShape) or isinstance(b, SymShape):  # choosing entries of a run-time shape
        sym, other, take_sym = (a, b, True) if isinstance(a, SymShape) else (b, a, False)
        mask = ctx.static(0).reshape(-1).astype(bool)
        other = np.broadcast_to(np.asarray(other).reshape(-1), mask.shape)
        dims = tuple(d if m == take_sym else int(o) for d, m, o in zip(sym.dims, mask, other))
        return SymShape(dims, sym.like) if None in dims else np.array(dims, np.int64)
    return F.where(ctx.node(0), ctx.node(1), ctx.node(2))


@converter("Clip", 1, 6, 11, 12, 13)
def _clip(ctx):
    x = ctx.node(0)
    if ctx.version < 11:
        lo, hi = ctx.attr("min", -3.4028234663852886e38), ctx.attr("max", 3.4028234663852886e38)
        return F.clip(x, lo, hi)
    lo = ctx.node(1) if ctx.has(1) else None
    hi = ctx.node(2) if ctx.has(2) else None
    out = x
    if lo is not None:
        out = F.maximum(out, lo)
    if hi is not None:
        out = F.minimum(out, hi)
    return out


# activations
@converter("LeakyRelu", 1, 6, 16)
def _leaky(ctx):
    return F.leaky_relu(ctx.node(0), ctx.attr("alpha", 0.01))


@converter("Elu", 1, 6)
def _elu(ctx):
    return F.elu(ctx.node(0), ctx.attr("alpha", 1.0))


@converter("Selu", 1, 6)
def _selu(ctx):
    x = ctx.node(0)
    a, g = ctx.attr("alpha", 1.67326319217681884765625), ctx.attr("gamma", 1.05070102214813232421875)
    return F.mul(F.where(F.greater(x, 0.0), x, F.mul(F.sub(F.exp(x), 1.0), a)), g)


@converter("Celu", 12)
def _celu(ctx):
    x, a = ctx.node(0), ctx.attr("alpha", 1.0)
    return F.add(F.maximum(x, 0.0), F.minimum(F.mul(F.sub(F.exp(F.div(x, a)), 1.0), a), 0.0))


@converter("HardSigmoid", 1, 6)
def _hard_sigmoid(ctx):
    x = ctx.node(0)
    return F.clip(F.add(F.mul(x, ctx.attr("alpha", 0.2)), ctx.attr("beta", 0.5)), 0.0, 1.0)


@converter("HardSwish", 14)
def _hard_swish(ctx):
    x = ctx.node(0)
    return F.mul(x, F.clip(F.add(F.mul(x, 1 / 6), 0.5), 0.0, 1.0))


@converter("Softsign", 1)
def _softsign(ctx):
    x = ctx.node(0)
    return F.div(x, F.add(F.abs(x), 1.0))


@converter("ThresholdedRelu", 10)
def _thresholded_relu(ctx):
    x = ctx.node(0)
    return F.where(F.greater(x, ctx.attr("alpha", 1.0)), x, F.mul(x, 0.0))


@converter("PRelu", 1, 6, 7, 9, 16)
def _prelu(ctx):
    x, s = ctx.node(0), ctx.node(1)
    return F.where(F.less(x, 0.0), F.mul(x, s), x)


@converter("Mish", 18)
def _mish(ctx):
    x = ctx.node(0)
    return F.mul(x, F.tanh(F.softplus(x)))


@converter("Gelu", 20)
def _gelu(ctx):
    return F.gelu(ctx.node(0), ctx.attr("approximate", "none"))


# ------------------------------------------------------------------ reductions
def _axes(ctx, ndim, attr_until: int):
    """The reduction's axes: an attribute before opset attr_until, input 1 from it on (None: all)."""
    if ctx.version < attr_until:
        axes = ctx.attr("axes")
    else:
        axes = ctx.static(1).tolist() if ctx.has(1) else None
    if axes is not None and len(axes) == 0:
        axes = None
    if axes is None:
        return None
    return tuple(sorted(int(a) % ndim if ndim else 0 for a in axes))


def _reduce(fn, attr_until):
    def convert(ctx):
        x = ctx.node(0)
        keep = bool(ctx.attr("keepdims", 1))
        axes = _axes(ctx, x.ndim, attr_until)
        noop = ctx.attr("noop_with_empty_axes", 0)  # read always: it only matters when axes are empty
        if axes is None and noop:
            return x
        return fn(x, axes, keep)
    return convert


def _extremum(fn, empty, x, axes, keep):
    """max/min; over an empty axis ONNX gives the identity (-inf for max, inf for min)."""
    red = tuple(range(x.ndim)) if axes is None else axes
    if any(x.shape[a] == 0 for a in red):
        shape = tuple(1 if a in red else d for a, d in enumerate(x.shape)) if keep else \
            tuple(d for a, d in enumerate(x.shape) if a not in red)
        if x.dtype.kind != "f" or None in shape:
            raise GraphError(f"a max/min over an empty axis of a {x.dtype} tensor has no identity")
        return np.full(shape, empty, x.dtype)
    return fn(x, axes, keepdims=keep)


def _sum(x, axes, keep):
    return F.sum(x, axes, keepdims=keep)


_REDUCE = {
    "ReduceSum": (_sum, 13),
    "ReduceMean": (lambda x, a, k: F.mean(x, a, keepdims=k), 18),
    "ReduceMax": (lambda x, a, k: _extremum(F.max, -np.inf, x, a, k), 18),
    "ReduceMin": (lambda x, a, k: _extremum(F.min, np.inf, x, a, k), 18),
    "ReduceProd": (lambda x, a, k: F.prod(x, a, keepdims=k), 18),
    "ReduceL1": (lambda x, a, k: F.sum(F.abs(x), a, keepdims=k), 18),
    "ReduceL2": (lambda x, a, k: _same_dtype(F.sqrt(F.sum(F.square(x), a, keepdims=k)), x), 18),
    "ReduceSumSquare": (lambda x, a, k: F.sum(F.square(x), a, keepdims=k), 18),
    "ReduceLogSum": (lambda x, a, k: F.log(F.sum(x, a, keepdims=k)), 18),
    "ReduceLogSumExp": (lambda x, a, k: F.logsumexp(x, a, keepdims=k), 18),
}
for _name, (_fn, _until) in _REDUCE.items():
    converter(_name, 1, 11, 13, 18, 20)(_reduce(_fn, _until))


def _arg(fn):
    def convert(ctx):
        x = ctx.node(0)
        axis = ctx.attr("axis", 0) % max(x.ndim, 1)
        if ctx.attr("select_last_index", 0):
            n = x.shape[axis]
            if n is None:
                raise ctx.unsupported("select_last_index over a dim known only at run time")
            rev = F.getitem(x, (slice(None),) * axis + (slice(None, None, -1),))
            return F.sub(n - 1, fn(rev, axis, keepdims=bool(ctx.attr("keepdims", 1))))
        return fn(x, axis, keepdims=bool(ctx.attr("keepdims", 1)))
    return convert


converter("ArgMax", 1, 11, 12, 13)(_arg(F.argmax))
converter("ArgMin", 1, 11, 12, 13)(_arg(F.argmin))


# ------------------------------------------------------------------ linear algebra and nn
@converter("MatMul", 1, 9, 13)
def _matmul(ctx):
    return F.matmul(ctx.node(0), ctx.node(1))


@converter("Gemm", 1, 6, 7, 9, 11, 13)
def _gemm(ctx):
    a, b = ctx.node(0), ctx.node(1)
    if ctx.attr("transA", 0):
        a = F.transpose(a)
    if ctx.attr("transB", 0):
        b = F.transpose(b)
    y = F.matmul(a, b)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha != 1.0:
        y = F.mul(y, alpha)
    if ctx.has(2):
        c = ctx.node(2)
        y = F.add(y, c if beta == 1.0 else F.mul(c, beta))
    return y


@converter("Einsum", 12)
def _einsum(ctx):
    return F.einsum(ctx.attr("equation").replace(" ", ""), *[ctx.node(i) for i in range(ctx.n_inputs())])


@converter("Softmax", 1, 11, 13)
def _softmax(ctx):
    return _softmax_like(ctx, F.softmax)


@converter("LogSoftmax", 1, 11, 13)
def _log_softmax(ctx):
    return _softmax_like(ctx, F.log_softmax)


def _softmax_like(ctx, fn):
    """Opset 13 on: over one axis (default -1). Before: over axis.. flattened (default 1)."""
    x = _float_only(ctx, ctx.node(0))
    if ctx.version >= 13:
        return fn(x, ctx.attr("axis", -1))
    axis = ctx.attr("axis", 1) % max(x.ndim, 1)
    if axis == x.ndim - 1:
        return fn(x, -1)
    lead = x.shape[:axis]
    if any(d is None for d in x.shape):
        raise ctx.unsupported("a coerced 2-D softmax over dims known only at run time")
    flat = F.reshape(x, (math.prod(lead), -1))
    return F.reshape(fn(flat, -1), x.shape)


@converter("Hardmax", 1, 11, 13)
def _hardmax(ctx):
    x = ctx.node(0)
    axis = ctx.attr("axis", -1 if ctx.version >= 13 else 1) % x.ndim
    if ctx.version < 13 and axis != x.ndim - 1:
        raise ctx.unsupported("a coerced 2-D hardmax")
    n = x.shape[axis]
    if n is None:
        raise ctx.unsupported("hardmax over a dim known only at run time")
    idx = F.argmax(x, axis, keepdims=True)
    iota = F.constant(np.arange(n).reshape((n,) + (1,) * (x.ndim - axis - 1)))
    return F.cast(F.equal(idx, iota), x.dtype)


@converter("LayerNormalization", 17)
def _layer_norm(ctx):
    x = ctx.node(0)
    w = ctx.node(1) if ctx.has(1) else None
    b = ctx.node(2) if ctx.has(2) else None
    if len(ctx.proto.output) > 1 and any(ctx.proto.output[1:]):
        raise ctx.unsupported("the Mean and InvStdDev outputs")
    return F.layer_norm(x, w, b, eps=ctx.attr("epsilon", 1e-5), axis=ctx.attr("axis", -1))


@converter("BatchNormalization", 1, 6, 7, 9, 14, 15)
def _batch_norm(ctx):
    if ctx.attr("training_mode", 0) or len([o for o in ctx.proto.output if o]) > 1:
        raise ctx.unsupported("training mode (the running statistics' outputs)")
    x = ctx.node(0)
    scale, bias, mean, var = (ctx.node(i) for i in range(1, 5))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = F.div(F.reshape(scale, shape), F.sqrt(F.add(F.reshape(var, shape), ctx.attr("epsilon", 1e-5))))
    return F.add(F.mul(F.sub(x, F.reshape(mean, shape)), inv), F.reshape(bias, shape))


@converter("Dropout", 1, 6, 7, 10, 12, 13, 22)
def _dropout(ctx):
    ctx.ignore("seed", "ratio")  # inference: the identity, whatever the ratio and seed
    if ctx.version >= 12 and ctx.has(2) and bool(ctx.static(2)):
        raise ctx.unsupported("training_mode=True (random masks are not ONNX-reproducible)")
    if ctx.version < 7 and not ctx.attr("is_test", 0):
        raise ctx.unsupported("is_test=0 (training: random masks are not ONNX-reproducible)")
    x = ctx.value(0)
    outs = [x]
    if len(ctx.proto.output) > 1:
        xs = ctx.node(0)
        outs.append(F.logical_not(F.less(F.zeros_like(xs), 0.0)) if xs.shape else np.ones((), bool))
    return outs


def _pads_2d(ctx, k_shape, strides, dilations, spatial):
    pads = ctx.attr("pads")
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        begins, ends = [], []
        for n, k, s, d in zip(spatial, k_shape, strides, dilations):
            if n is None:
                raise ctx.unsupported("auto_pad SAME over a dim known only at run time")
            out = -(-n // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begins.append(lo)
            ends.append(total - lo)
        return begins, ends
    if auto == "VALID" or pads is None:
        return [0] * len(k_shape), [0] * len(k_shape)
    n = len(k_shape)
    return list(pads[:n]), list(pads[n:])


def _pad_input(x, begins, ends, value):
    if begins == ends:
        return x, tuple(begins)
    widths = [(0, 0), (0, 0)] + list(zip(begins, ends))
    return F.pad(x, widths, value), (0,) * len(begins)


def _kernel_shape_of(ctx, w: Node) -> None:
    """kernel_shape, when given, must be the weight's spatial shape (ONNX allows it to repeat it)."""
    k = ctx.attr("kernel_shape")
    if k is not None and tuple(int(d) for d in k) != tuple(w.shape[2:]):
        raise ctx.unsupported(f"kernel_shape {tuple(k)} unlike the weight's spatial shape {tuple(w.shape[2:])}")


@converter("Conv", 1, 11)
def _conv(ctx):
    x, w = ctx.node(0), ctx.node(1)
    _kernel_shape_of(ctx, w)
    if x.ndim not in (3, 4):  # 1-d: a 2-d convolution over a height of 1
        raise ctx.unsupported(f"a {x.ndim - 2}-d convolution (graphc has 1-d and 2-d)")
    b = ctx.node(2) if ctx.has(2) else None
    one = x.ndim == 3
    k = tuple(w.shape[2:])
    nd = len(k)
    strides = tuple(ctx.attr("strides", [1] * nd))
    dil = tuple(ctx.attr("dilations", [1] * nd))
    begins, ends = _pads_2d(ctx, k, strides, dil, x.shape[2:])
    if one:
        x, w = F.expand_dims(x, 2), F.expand_dims(w, 2)
        k, strides, dil, begins, ends = (1,) + k, (1,) + strides, (1,) + dil, [0] + begins, [0] + ends
    x, pad = _pad_input(x, begins, ends, 0.0)
    y = F.conv2d(x, w, b, stride=strides, padding=pad, dilation=dil, groups=ctx.attr("group", 1))
    return F.squeeze(y, 2) if one else y


def _pool(ctx, fn, pad_value, x=None, count_pads=None):
    """A max or average pool of x (default: input 0) with the node's window attributes."""
    x = ctx.node(0) if x is None else x
    count_pads = bool(ctx.attr("count_include_pad", 0)) if count_pads is None else count_pads
    nd = x.ndim - 2
    if nd == 3 or (nd >= 1 and any(d != 1 for d in ctx.attr("dilations", [1] * nd))):
        return _pool_windows(ctx, fn is F.max_pool2d, x, count_pads)
    if x.ndim == 3:  # 1-d: a 2-d pool over a height of 1
        return F.squeeze(_pool2(ctx, fn, pad_value, F.expand_dims(x, 2), count_pads, one=True), 2)
    if x.ndim != 4:
        raise ctx.unsupported(f"{x.ndim - 2}-d pooling (graphc has 1-d and 2-d pools)")
    return _pool2(ctx, fn, pad_value, x, count_pads)


def _pool_windows(ctx, is_max: bool, x: Node, count_pads: bool) -> Node:
    """An n-d pool with dilations as the max (or mean) of one strided slice of the padded input per
    window offset (3 x 3 x 3: 27 slices): for the 3-d and dilated pools conv's im2col does not do.
    ceil_mode's last window may run past the explicit pads: that part is padded too, and never
    counted in a mean."""
    nd = x.ndim - 2
    if None in x.shape[2:]:
        raise ctx.unsupported("pooling over dims known only at run time")
    k = tuple(ctx.attr("kernel_shape"))
    strides = tuple(ctx.attr("strides", [1] * nd))
    dil = tuple(ctx.attr("dilations", [1] * nd))
    begins, ends = _pads_2d(ctx, k, strides, dil, x.shape[2:])
    reach = [(kk - 1) * d + 1 for kk, d in zip(k, dil)]
    outs, extra = [], []
    for a in range(nd):
        n = x.shape[2 + a]
        span = n + begins[a] + ends[a] - reach[a]
        out = (-(-span // strides[a]) if ctx.attr("ceil_mode", 0) else span // strides[a]) + 1
        if (out - 1) * strides[a] >= n + begins[a]:  # a window must start in the input or its left pad
            out -= 1
        outs.append(out)
        extra.append(max(0, (out - 1) * strides[a] + reach[a] - (n + begins[a] + ends[a])))
    widths = [(0, 0), (0, 0)] + [(b, e + x_) for b, e, x_ in zip(begins, ends, extra)]
    padded = F.pad(x, widths, -np.inf if is_max else 0.0)

    def window(offset):  # the strided slice of the padded input that this window offset reads
        return (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s) for o, d, m, s in zip(offset, dil, outs, strides))
    acc = None
    for offset in np.ndindex(*k):
        w = F.getitem(padded, window(offset))
        acc = w if acc is None else (F.maximum(acc, w) if is_max else F.add(acc, w))
    if is_max:
        return acc
    # the divisor: the elements of each window in the input (and in the explicit pads, counted)
    ones = np.ones((1, 1) + tuple(x.shape[2:]), x.dtype)
    inner = [(b, e) for b, e in zip(begins, ends)] if count_pads else [(0, 0)] * nd
    ones = np.pad(ones, [(0, 0), (0, 0)] + inner, constant_values=1.0)
    outer = [(0, 0) if count_pads else (b, e) for b, e in zip(begins, ends)]
    ones = np.pad(ones, [(0, 0), (0, 0)] + [(o[0], o[1] + x_) for o, x_ in zip(outer, extra)])
    count = sum(ones[window(offset)] for offset in np.ndindex(*k))
    return F.div(acc, F.constant(count.astype(x.dtype)))


def _pool2(ctx, fn, pad_value, x, count_pads, one=False):
    nd = 1 if one else 2
    if any(d != 1 for d in ctx.attr("dilations", [1] * nd)):
        raise ctx.unsupported("dilated pooling")
    if len([o for o in ctx.proto.output if o]) > 1:
        raise ctx.unsupported("MaxPool's Indices output")
    k = tuple(ctx.attr("kernel_shape"))
    strides = tuple(ctx.attr("strides", [1] * nd))
    begins, ends = _pads_2d(ctx, k, strides, (1,) * nd, x.shape[2 + (2 - nd):])
    if one:
        k, strides, begins, ends = (1,) + k, (1,) + strides, [0] + begins, [0] + ends
    if ctx.attr("ceil_mode", 0):  # the last window may start inside the padding's end: pad it out
        for a in range(2):
            n = x.shape[2 + a]
            if n is None:
                raise ctx.unsupported("ceil_mode over a dim known only at run time")
            span = n + begins[a] + ends[a] - k[a]
            out = -(-span // strides[a]) + 1
            if (out - 1) * strides[a] >= n + begins[a]:  # a window must start in the input or its left pad
                out -= 1
            ends[a] += max(0, (out - 1) * strides[a] + k[a] - (n + begins[a] + ends[a]))
    if any(begins) or any(ends):
        widths = [(0, 0), (0, 0)] + list(zip(begins, ends))
        if fn is F.avg_pool2d and not count_pads:  # the mean of the real elements
            ones = F.pad(F.add(F.zeros_like(x), 1.0), widths, 0.0)
            total = fn(F.pad(x, widths, 0.0), k, stride=strides, padding=0)
            return F.div(total, fn(ones, k, stride=strides, padding=0))
        x = F.pad(x, widths, pad_value)
    return fn(x, k, stride=strides, padding=0)


@converter("MaxPool", 1, 8, 10, 11, 12, 22)
def _max_pool(ctx):
    if len(ctx.proto.output) > 1 and ctx.proto.output[1]:
        raise ctx.unsupported("the Indices output")
    ctx.ignore("storage_order")  # the layout of Indices only
    return _pool(ctx, F.max_pool2d, -np.inf)


@converter("AveragePool", 1, 7, 10, 11, 19, 22)
def _avg_pool(ctx):
    return _pool(ctx, F.avg_pool2d, 0.0)


@converter("GlobalAveragePool", 1, 22)
def _global_avg(ctx):
    x = ctx.node(0)
    return F.mean(x, tuple(range(2, x.ndim)), keepdims=True)


@converter("GlobalMaxPool", 1, 22)
def _global_max(ctx):
    x = ctx.node(0)
    return F.max(x, tuple(range(2, x.ndim)), keepdims=True)


# ------------------------------------------------------------------ shapes and movement
def _static_or_shape(ctx, i):
    return [int(v) for v in ctx.static(i).reshape(-1).tolist()]


@converter("Shape", 1, 13, 15, 19, 21)
def _shape(ctx):
    x = ctx.node(0)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    if any(d is None for d in x.shape):  # a shape with run-time entries (Expand and friends read it)
        if (start, end) != (0, None):
            raise ctx.unsupported("a slice of a shape known only at run time")
        return SymShape(tuple(x.shape), x)
    return np.array(list(x.shape)[slice(start, end)], np.int64)


@converter("Size", 1, 13, 19, 21)
def _size(ctx):
    x = ctx.node(0)
    if any(d is None for d in x.shape):
        raise ctx.unsupported("Size of a value with dims known only at run time")
    return np.array(math.prod(x.shape), np.int64)


@converter("Reshape", 1, 5, 13, 14, 19, 21)
def _reshape(ctx):
    x = ctx.node(0)
    shape = list(ctx.attr("shape")) if ctx.version < 5 else _static_or_shape(ctx, 1)
    if not ctx.attr("allowzero", 0) and 0 in shape:  # 0 copies the input's dim (its run-time size too)
        new = tuple(x.shape[i] if d == 0 else (None if d == -1 else d) for i, d in enumerate(shape))
        src = tuple(i if d == 0 and x.shape[i] is None else -1 for i, d in enumerate(shape))
        return reshape_keep(x, new, src)
    return F.reshape(x, tuple(shape))


@converter("Flatten", 1, 9, 11, 13, 21)
def _flatten(ctx):
    x = ctx.node(0)
    axis = ctx.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    lead, rest = x.shape[:axis], x.shape[axis:]
    if any(d is None for d in rest) and any(d is None for d in lead):
        raise ctx.unsupported("Flatten with run-time dims on both sides")
    a = math.prod(lead) if None not in lead else -1
    b = math.prod(rest) if None not in rest else -1
    return F.reshape(x, (a, b))


@converter("Transpose", 1, 13, 21)
def _transpose(ctx):
    x = ctx.node(0)
    perm = ctx.attr("perm")
    return F.transpose(x, tuple(perm) if perm is not None else tuple(reversed(range(x.ndim))))


@converter("Squeeze", 1, 11, 13, 21)
def _squeeze(ctx):
    x = ctx.node(0)
    axes = ctx.attr("axes") if ctx.version < 13 else (_static_or_shape(ctx, 1) if ctx.has(1) else None)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    return F.squeeze(x, tuple(a % x.ndim for a in axes)) if axes else x


@converter("Unsqueeze", 1, 11, 13, 21)
def _unsqueeze(ctx):
    x = ctx.node(0)
    axes = ctx.attr("axes") if ctx.version < 13 else _static_or_shape(ctx, 1)
    ndim = x.ndim + len(axes)
    for a in sorted(a % ndim for a in axes):
        x = F.expand_dims(x, a)
    return x


@converter("Concat", 1, 4, 11, 13)
def _concat(ctx):
    xs = [ctx.node(i) for i in range(ctx.n_inputs()) if ctx.has(i)]
    return F.concat(xs, ctx.attr("axis", 0) % xs[0].ndim)


@converter("Split", 1, 2, 11, 13, 18)
def _split(ctx):
    x = ctx.node(0)
    axis = ctx.attr("axis", 0) % x.ndim
    n_out = len(ctx.proto.output)
    if ctx.version >= 13 and ctx.has(1):
        sizes = _static_or_shape(ctx, 1)
    elif ctx.version < 13 and ctx.attr("split") is not None:
        sizes = list(ctx.attr("split"))
    else:
        n = x.shape[axis]
        if n is None:
            raise ctx.unsupported("an even Split of a dim known only at run time")
        parts = ctx.attr("num_outputs", n_out)
        step = -(-n // parts)
        sizes = [min(step, n - k * step) for k in range(parts)]
    return list(F.split(x, sizes, axis))


@converter("Slice", 1, 10, 11, 13)
def _slice(ctx):
    x = ctx.node(0)
    if ctx.version < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes"), None
    else:
        starts, ends = _static_or_shape(ctx, 1), _static_or_shape(ctx, 2)
        axes = _static_or_shape(ctx, 3) if ctx.has(3) else None
        steps = _static_or_shape(ctx, 4) if ctx.has(4) else None
    axes = list(range(len(starts))) if axes is None else [a % x.ndim for a in axes]
    steps = steps or [1] * len(starts)
    key = [slice(None)] * x.ndim
    big = 2 ** 62
    for a, s, e, st in zip(axes, starts, ends, steps):
        key[a] = slice(max(min(s, big), -big), max(min(e, big), -big), st)
    return F.getitem(x, tuple(key))


@converter("Gather", 1, 11, 13)
def _gather(ctx):
    x, idx = ctx.node(0), ctx.node(1)
    axis = ctx.attr("axis", 0) % x.ndim
    n = x.shape[axis]
    if n is not None:
        idx = F.where(F.less(idx, 0), F.add(idx, n), idx)  # negative indices count from the end
    return F.take(x, idx, axis=axis)


@converter("Expand", 8, 13)
def _expand(ctx):
    x = ctx.node(0)
    shape = ctx.shape_value(1)
    if isinstance(shape, SymShape):  # run-time entries: broadcast_to reads them off `like`
        dims = shape.dims
        if len(dims) < x.ndim or any(a not in (1, None) and b is not None and a != b and b != 1
                                     for a, b in zip(x.shape[::-1], dims[::-1])):
            raise ctx.unsupported(f"Expand of {x.shape} to a run-time shape {dims}")
        out = tuple(b if b != 1 or a is None else a for a, b in zip((1,) * (len(dims) - x.ndim) + x.shape, dims))
        return F.broadcast_to(x, out, like=shape.like)
    nd = max(len(shape), x.ndim)
    xs = (1,) * (nd - x.ndim) + x.shape
    ss = [1] * (nd - len(shape)) + shape
    out = tuple(a if b == 1 else b for a, b in zip(xs, ss))
    return F.broadcast_to(x, out) if out != x.shape else x


@converter("Tile", 1, 6, 13)
def _tile(ctx):
    x = ctx.node(0)
    reps = _static_or_shape(ctx, 1)
    out = x
    for axis, r in enumerate(reps):
        if r != 1:
            out = F.concat([out] * r, axis) if r > 0 else F.getitem(out, (slice(None),) * axis + (slice(0, 0),))
    return out


@converter("ConstantOfShape", 9, 20, 21)
def _constant_of_shape(ctx):
    shape = _static_or_shape(ctx, 0)
    v = ctx.attr("value")
    v = np.zeros(1, np.float32) if v is None else np.asarray(v).reshape(-1)
    return np.full(shape, v[0], v.dtype)


@converter("Constant", 1, 9, 11, 12, 13, 19, 21)
def _constant(ctx):
    for key in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if key in ctx.attrs:
            v = np.asarray(ctx.attrs[key])
            if key in ("value_float", "value_floats"):
                v = v.astype(np.float32)
            elif key in ("value_int", "value_ints"):
                v = v.astype(np.int64)
            if v.dtype not in (np.float32, np.float64, np.int32, np.int64, np.bool_):
                raise ctx.unsupported(f"a constant of dtype {v.dtype}")
            return v
    raise ctx.unsupported(f"a constant given as {sorted(ctx.attrs)}")


@converter("Range", 11)
def _range(ctx):
    start, limit, delta = (np.asarray(ctx.static(i)) for i in range(3))
    if any(v.size != 1 for v in (start, limit, delta)):
        raise ctx.unsupported(f"Range of start, limit, delta shaped {start.shape}, {limit.shape}, {delta.shape}")
    start, limit, delta = (v.reshape(()) for v in (start, limit, delta))  # scalars, or one-element (as onnx's own)
    return np.arange(start, limit, delta, dtype=start.dtype)


@converter("Pad", 1, 2, 11, 13, 18, 19, 21)
def _pad(ctx):
    x = ctx.node(0)
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.unsupported(f"mode {mode!r}")
    if ctx.version < 11:
        pads, value = list(ctx.attr("pads" if ctx.version >= 2 else "paddings")), ctx.attr("value", 0.0)
        axes = list(range(x.ndim))
    else:
        pads = _static_or_shape(ctx, 1)
        value = ctx.static(2).item() if ctx.has(2) else 0
        axes = [a % x.ndim for a in _static_or_shape(ctx, 3)] if ctx.has(3) else list(range(x.ndim))
    n = len(axes)
    widths = [(0, 0)] * x.ndim
    for k, a in enumerate(axes):
        widths[a] = (pads[k], pads[k + n])
    if any(lo < 0 or hi < 0 for lo, hi in widths):  # negative pads crop
        key = tuple(slice(-lo if lo < 0 else None, hi if hi < 0 else None) for lo, hi in widths)
        x = F.getitem(x, key)
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if mode != "constant":
        return _pad_copying(ctx, x, widths, mode)
    return F.pad(x, widths, value) if any(lo or hi for lo, hi in widths) else x


def _pad_copying(ctx, x, widths, mode):
    """reflect, edge and wrap padding: the input's own slices concatenated on each side."""
    for a, (lo, hi) in enumerate(widths):
        n = x.shape[a]
        if not (lo or hi):
            continue
        if n is None:
            raise ctx.unsupported(f"{mode} padding of a dim known only at run time")

        def part(start, stop, step=1, a=a, x=x):
            return F.getitem(x, (slice(None),) * a + (slice(start, stop, step),))
        if mode == "edge":
            left, right = [part(0, 1)] * lo, [part(n - 1, n)] * hi
        elif mode == "wrap":
            left, right = [part(n - lo, n)] if lo else [], [part(0, hi)] if hi else []
        else:  # reflect: the edge itself not repeated
            left = [part(lo, 0, -1)] if lo else []
            right = [part(n - 2, n - 2 - hi, -1)] if hi else []
        x = F.concat(left + [x] + right, a)
    return x


@converter("Trilu", 14)
def _trilu(ctx):
    x = ctx.node(0)
    k = int(ctx.static(1)) if ctx.has(1) else 0
    return F.triu(x, k) if ctx.attr("upper", 1) else F.tril(x, k)


@converter("OneHot", 9, 11)
def _one_hot(ctx):
    idx = ctx.node(0)
    depth = int(ctx.static(1).reshape(-1)[0])
    values = ctx.node(2)
    axis = ctx.attr("axis", -1)
    idx = F.cast(idx, "int64") if idx.dtype != np.int64 else idx
    idx = F.where(F.less(idx, 0), F.add(idx, depth), idx)
    hot = F.equal(F.expand_dims(idx, idx.ndim), F.constant(np.arange(depth)))
    if axis != -1 and axis != idx.ndim:
        perm = list(range(idx.ndim))
        perm.insert(axis % (idx.ndim + 1), idx.ndim)
        hot = F.transpose(hot, tuple(perm))
    off, on = F.getitem(values, 0), F.getitem(values, 1)
    return F.where(hot, on, off)


@converter("EyeLike", 9, 22)
def _eye_like(ctx):
    x = ctx.node(0)
    if any(d is None for d in x.shape):
        raise ctx.unsupported("EyeLike of a value with dims known only at run time")
    from .importer import onnx_dtype
    dt = onnx_dtype(ctx.attr("dtype"), ctx.where()) if ctx.attr("dtype") is not None else x.dtype
    return np.eye(x.shape[0], x.shape[1], ctx.attr("k", 0), dtype=dt)


# ------------------------------------------------------------------ rounding and remainders
converter("Floor", 1, 6, 13)(lambda ctx: F.floor(_float_only(ctx, ctx.node(0))))
converter("Ceil", 1, 6, 13)(lambda ctx: F.ceil(_float_only(ctx, ctx.node(0))))
converter("Round", 11, 22)(lambda ctx: F.round(_float_only(ctx, ctx.node(0))))


@converter("Mod", 10, 13)
def _mod(ctx):
    a, b = ctx.node(0), ctx.node(1)
    return _same_dtype((F.fmod if ctx.attr("fmod", 0) else F.mod)(a, b), a)


# ------------------------------------------------------------------ more elementwise
def _float_unary(fn):
    return lambda ctx: fn(_float_only(ctx, ctx.node(0)))


converter("Tan", 7)(_float_unary(lambda x: F.div(F.sin(x), F.cos(x))))
converter("Sinh", 9)(_float_unary(lambda x: F.mul(F.sub(F.exp(x), F.exp(F.neg(x))), 0.5)))
converter("Cosh", 9)(_float_unary(lambda x: F.mul(F.add(F.exp(x), F.exp(F.neg(x))), 0.5)))
converter("Asinh", 9)(_float_unary(lambda x: F.log(F.add(x, F.sqrt(F.add(F.square(x), 1.0))))))
converter("Acosh", 9)(_float_unary(lambda x: F.log(F.add(x, F.sqrt(F.sub(F.square(x), 1.0))))))
converter("Atanh", 9)(_float_unary(lambda x: F.mul(F.log(F.div(F.add(x, 1.0), F.sub(1.0, x))), 0.5)))
converter("Asin", 7)(_float_unary(F.asin))
converter("Acos", 7)(_float_unary(F.acos))
converter("IsNaN", 9, 13, 20)(lambda ctx: F.not_equal(ctx.node(0), ctx.node(0)))


@converter("IsInf", 10, 20)
def _isinf(ctx):
    x = ctx.node(0)
    pos, neg = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    out = None
    for want, v in ((pos, np.inf), (neg, -np.inf)):
        if want:
            e = F.equal(x, v)
            out = e if out is None else F.logical_or(out, e)
    return out if out is not None else F.logical_and(F.equal(x, np.inf), F.equal(x, -np.inf))  # all False


@converter("Swish", 24)
def _swish(ctx):
    x = ctx.node(0)
    return F.mul(x, F.sigmoid(F.mul(x, ctx.attr("alpha", 1.0))))


@converter("Shrink", 9)
def _shrink(ctx):
    x = ctx.node(0)
    lam, bias = ctx.attr("lambd", 0.5), ctx.attr("bias", 0.0)
    z = F.zeros_like(x)
    return _same_dtype(F.where(F.less(x, -lam), F.add(x, bias), F.where(F.greater(x, lam), F.sub(x, bias), z)), x)


# ------------------------------------------------------------------ losses
def _nll(ctx, logp, target, weight):
    """NegativeLogLikelihoodLoss of log-probabilities (N, C, d...) and targets (N, d...)."""
    C = logp.shape[1]
    if C is None:
        raise ctx.unsupported("a class count known only at run time")
    ignore = ctx.attr("ignore_index")
    t = F.cast(target, "int64")
    safe = t if ignore is None else F.where(F.equal(t, ignore), F.zeros_like(t), t)
    cls_axis = F.constant(np.arange(C).reshape((1, C) + (1,) * (logp.ndim - 2)))
    hot = F.equal(F.expand_dims(safe, 1), cls_axis)
    picked = F.sum(F.where(hot, logp, F.zeros_like(logp)), 1)
    w = F.take(weight, safe) if weight is not None else F.add(F.zeros_like(picked), 1.0)
    if ignore is not None:
        w = F.where(F.equal(t, ignore), F.zeros_like(w), w)
    loss = F.neg(F.mul(picked, w))
    red = ctx.attr("reduction", "mean")
    if red == "none":
        return loss
    if red == "sum":
        return F.sum(loss)
    return F.div(F.sum(loss), F.sum(w))


@converter("NegativeLogLikelihoodLoss", 12, 13, 22)
def _nll_loss(ctx):
    w = ctx.node(2) if ctx.has(2) else None
    return _nll(ctx, ctx.node(0), ctx.node(1), w)


@converter("SoftmaxCrossEntropyLoss", 12, 13)
def _softmax_ce(ctx):
    x = ctx.node(0)
    logp = F.log_softmax(x, 1) if x.ndim > 1 else F.log_softmax(x, 0)
    w = ctx.node(2) if ctx.has(2) else None
    loss = _nll(ctx, logp, ctx.node(1), w)
    return [loss, logp] if len(ctx.proto.output) > 1 else loss


# ------------------------------------------------------------------ normalization
@converter("RMSNormalization", 23)
def _rms_norm(ctx):
    x, scale = ctx.node(0), ctx.node(1)
    axis = ctx.attr("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    wide = F.cast(x, "float64") if x.dtype == np.float64 else x
    ms = F.mean(F.square(wide), axes, keepdims=True)
    y = F.div(wide, F.sqrt(F.add(ms, ctx.attr("epsilon", 1e-5))))
    return F.mul(_same_dtype(y, x), scale)


def _layer_norm_full(ctx):
    x = ctx.node(0)
    axis = ctx.attr("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    eps = ctx.attr("epsilon", 1e-5)
    mean = F.mean(x, axes, keepdims=True)
    inv = F.reciprocal(F.sqrt(F.add(F.var(x, axes, keepdims=True), eps)))
    y = F.layer_norm(x, ctx.node(1), ctx.node(2) if ctx.has(2) else None, eps=eps, axis=axis)
    return [y, mean, inv]


CONVERTERS[("", "LayerNormalization")][17] = lambda ctx: (
    _layer_norm_full(ctx) if len(ctx.proto.output) > 1 else _layer_norm(ctx))


@converter("InstanceNormalization", 1, 6, 22)
def _instance_norm(ctx):
    x, scale, bias = ctx.node(0), ctx.node(1), ctx.node(2)
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = F.mean(x, axes, keepdims=True)
    y = F.div(F.sub(x, mean), F.sqrt(F.add(F.var(x, axes, keepdims=True), ctx.attr("epsilon", 1e-5))))
    return F.add(F.mul(y, F.reshape(scale, shape)), F.reshape(bias, shape))


@converter("GroupNormalization", 18, 21)
def _group_norm(ctx):
    x, scale, bias = ctx.node(0), ctx.node(1), ctx.node(2)
    g = ctx.attr("num_groups")
    N, C = x.shape[0], x.shape[1]
    if C is None or any(d is None for d in x.shape[2:]):
        raise ctx.unsupported("group normalization over dims known only at run time")
    grouped = F.reshape(x, (-1 if N is None else N, g, C // g) + tuple(x.shape[2:]))
    axes = tuple(range(2, grouped.ndim))
    mean = F.mean(grouped, axes, keepdims=True)
    y = F.div(F.sub(grouped, mean), F.sqrt(F.add(F.var(grouped, axes, keepdims=True), ctx.attr("epsilon", 1e-5))))
    y = F.reshape(y, x.shape if N is not None else (-1,) + x.shape[1:])
    shape = (1, C) + (1,) * (x.ndim - 2)
    if ctx.version < 21:  # scale and bias per group
        scale, bias = (F.reshape(F.broadcast_to(F.reshape(v, (g, 1)), (g, C // g)), (C,)) for v in (scale, bias))
    return F.add(F.mul(y, F.reshape(scale, shape)), F.reshape(bias, shape))


@converter("LpNormalization", 1, 22)
def _lp_norm(ctx):
    x = ctx.node(0)
    axis, p = ctx.attr("axis", -1) % x.ndim, ctx.attr("p", 2)
    n = F.sum(F.abs(x), axis, keepdims=True) if p == 1 else F.sqrt(F.sum(F.square(x), axis, keepdims=True))
    return F.div(x, F.where(F.equal(n, 0.0), 1.0, n))  # a zero vector stays zero (onnx's reference), not NaN


@converter("MeanVarianceNormalization", 9, 13)
def _mvn(ctx):
    x = ctx.node(0)
    axes = tuple(a % x.ndim for a in ctx.attr("axes", [0, 2, 3]))
    mean = F.mean(x, axes, keepdims=True)
    return F.div(F.sub(x, mean), F.add(F.sqrt(F.var(x, axes, keepdims=True)), 1e-9))


@converter("LRN", 1, 13)
def _lrn(ctx):
    x = ctx.node(0)
    size = ctx.attr("size")
    alpha, beta, bias = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0)
    C = x.shape[1]
    if C is None:
        raise ctx.unsupported("a channel count known only at run time")
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = F.pad(F.square(x), [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    win = None
    for k in range(size):
        part = F.getitem(sq, (slice(None), slice(k, k + C)))
        win = part if win is None else F.add(win, part)
    return F.div(x, F.pow(F.add(F.mul(win, alpha / size), bias), beta))


# ------------------------------------------------------------------ more movement
@converter("DepthToSpace", 1, 11, 13)
def _depth_to_space(ctx):
    x = ctx.node(0)
    b = ctx.attr("blocksize")
    N, C, H, W = x.shape
    if ctx.attr("mode", "DCR") == "DCR":
        t = F.reshape(x, (N, b, b, C // (b * b), H, W))
        t = F.transpose(t, (0, 3, 4, 1, 5, 2))
    else:
        t = F.reshape(x, (N, C // (b * b), b, b, H, W))
        t = F.transpose(t, (0, 1, 4, 2, 5, 3))
    return F.reshape(t, (N, C // (b * b), H * b, W * b))


@converter("SpaceToDepth", 1, 13)
def _space_to_depth(ctx):
    x = ctx.node(0)
    b = ctx.attr("blocksize")
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.unsupported(f"mode {mode!r}")
    N, C, H, W = x.shape
    t = F.reshape(x, (N, C, H // b, b, W // b, b))
    t = F.transpose(t, (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4))
    return F.reshape(t, (N, C * b * b, H // b, W // b))


@converter("GatherElements", 11, 13)
def _gather_elements(ctx):
    x, idx = ctx.node(0), ctx.node(1)
    axis = ctx.attr("axis", 0) % x.ndim
    if any(d is None for d in x.shape + idx.shape):
        raise ctx.unsupported("GatherElements over dims known only at run time")
    idx = F.cast(idx, "int64")
    idx = F.where(F.less(idx, 0), F.add(idx, x.shape[axis]), idx)
    strides = np.cumprod((1,) + x.shape[::-1])[:-1][::-1]
    flat = F.mul(idx, int(strides[axis]))
    for a in range(x.ndim):
        if a != axis:
            grid = np.arange(idx.shape[a]).reshape((1,) * a + (-1,) + (1,) * (x.ndim - a - 1)) * strides[a]
            flat = F.add(flat, F.constant(grid.astype(np.int64)))
    return F.take(F.reshape(x, (-1,)), flat)


@converter("CumSum", 11, 14)
def _cumsum(ctx):
    x = ctx.node(0)
    return F.cumsum(x, int(ctx.static(1)) % x.ndim, bool(ctx.attr("exclusive", 0)), bool(ctx.attr("reverse", 0)))


# ------------------------------------------------------------------ DFT (opset 17 on)
def _dft_matrices(n_in: int, length: int, inverse: bool, onesided: bool):
    """(real part, imaginary part) as matrices (t, k) from the signal's n_in entries along the axis to
    the output's: the forward transform over `length` points (zero-padded or cut), onesided keeping
    length // 2 + 1 frequencies; the inverse divided by length, and onesided there (irfft) the
    Hermitian extension of the half spectrum folded into weights, its output real."""
    if inverse and onesided:  # irfft: the first length // 2 + 1 frequencies in, length real points out
        k = np.arange(min(n_in, length // 2 + 1))[:, None]
        t = np.arange(length)[None, :]
        w = np.where((k == 0) | ((length % 2 == 0) & (k == length // 2)), 1.0, 2.0)
        theta = 2 * np.pi * k * t / length
        return w * np.cos(theta) / length, -w * np.sin(theta) / length  # x = sum_k Xr cos - Xi sin
    used = min(n_in, length)
    t = np.arange(used)[:, None]
    k = np.arange(length // 2 + 1 if onesided else length)[None, :]
    theta = 2 * np.pi * t * k / length
    cos, sin = np.cos(theta), np.sin(theta)
    if inverse:
        return cos / length, sin / length  # e^{+i theta} / length
    return cos, -sin                         # e^{-i theta}


def _dft(ctx, axis: int):
    """ONNX DFT: x (..., signal, ..., 1 or 2), the last dim real (and imaginary) parts; as two
    products with cos/sin matrices along the axis (exact to rounding; an FFT it is not)."""
    x = _float_only(ctx, ctx.node(0))
    if x.shape[-1] not in (1, 2):
        raise ctx.unsupported(f"DFT input of last dim {x.shape[-1]} (want 1 or 2: real, imaginary)")
    axis = axis % x.ndim
    if axis == x.ndim - 1 or x.shape[axis] is None:
        raise ctx.unsupported(f"DFT along axis {axis} of {x.shape}: a known signal axis before the last")
    inverse, onesided = bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0))
    n_in = x.shape[axis]
    if ctx.has(1) and np.asarray(ctx.static(1)).size:
        length = int(np.asarray(ctx.static(1)).reshape(()))
    else:
        length = 2 * (n_in - 1) if inverse and onesided else n_in
    re_m, im_m = _dft_matrices(n_in, length, inverse, onesided)
    rank = x.ndim - 1
    perm = tuple(q for q in range(rank) if q != axis) + (axis,)
    back = tuple(int(np.argsort(perm)[q]) for q in range(rank))

    # in float64, cast back: the sums of a float32 product leave ~1e-6 where an FFT gives exact zeros
    x64 = F.cast(x, "float64")

    def part(j):  # x[..., j] with the signal axis last, cut to the rows the matrices use
        p = F.transpose(F.getitem(x64, (Ellipsis, j)), perm)
        return F.getitem(p, (Ellipsis, slice(0, re_m.shape[0]))) if re_m.shape[0] < n_in else p

    def done(v):
        return F.cast(F.expand_dims(F.transpose(v, back), -1), x.dtype)
    xr = part(0)
    xi = part(1) if x.shape[-1] == 2 else None
    if inverse and onesided:
        out = F.matmul(xr, F.constant(re_m))
        return done(out if xi is None else out + F.matmul(xi, F.constant(im_m)))
    # (xr + i xi)(C + i S) with C, S the matrices: real xr C - xi S, imaginary xr S + xi C
    real = F.matmul(xr, F.constant(re_m))
    imag = F.matmul(xr, F.constant(im_m))
    if xi is not None:
        real = real - F.matmul(xi, F.constant(im_m))
        imag = imag + F.matmul(xi, F.constant(re_m))
    return F.concat([done(real), done(imag)], -1)


@converter("DFT", 17)
def _dft_17(ctx):
    return _dft(ctx, int(ctx.attr("axis", 1)))


@converter("DFT", 20)
def _dft_20(ctx):
    return _dft(ctx, int(np.asarray(ctx.static(2)).reshape(())) if ctx.has(2) else -2)


# ------------------------------------------------------------------ GridSample (opset 16 on)
def _gs_reflect(v: Node, lo: float, hi: float) -> Node:
    """v reflected at the borders lo and hi until it lies between them (ONNX's reference, as torch)."""
    span = hi - lo
    below, above = F.less(v, lo), F.greater(v, hi)
    d = F.where(below, F.sub(lo, v), F.sub(v, hi))  # >= 0 where it matters
    n = F.floor(F.div(d, span))
    r = F.sub(d, F.mul(n, span))
    even = F.equal(F.sub(n, F.mul(F.floor(F.mul(n, 0.5)), 2.0)), 0.0)
    from_below = F.where(even, F.add(lo, r), F.sub(hi, r))
    from_above = F.where(even, F.sub(hi, r), F.add(lo, r))
    return F.where(below, from_below, F.where(above, from_above, v))


def _gs_cubic(t: Node) -> list[Node]:
    """The four cubic convolution weights (Keys, alpha -0.75) of offset t in [0, 1)."""
    a = -0.75

    def far(u):   # |u| in [1, 2)
        return F.add(F.mul(F.add(F.mul(F.sub(F.mul(u, a), 5 * a), u), 8 * a), u), -4 * a)

    def near(u):  # |u| in [0, 1)
        return F.add(F.mul(F.mul(F.sub(F.mul(u, a + 2), a + 3), u), u), 1.0)
    return [far(F.add(t, 1.0)), near(t), near(F.sub(1.0, t)), far(F.sub(2.0, t))]


@converter("GridSample", 16, 20, 22)
def _grid_sample(ctx):
    """Y[n, c, h...] = X[n, c] sampled at grid[n, h...] (coordinates in [-1, 1], the last dim's
    first entry for X's last axis): nearest, linear or cubic; zeros, border or reflection padding.
    Each corner a gather (take) from X flattened, out-of-range corners clamped and then weighted 0
    (zeros) or moved in (border, reflection)."""
    X, grid = _float_only(ctx, ctx.node(0)), ctx.node(1)
    mode = ctx.attr("mode", "linear")  # opset 16's names: bilinear, bicubic
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    pad, align = ctx.attr("padding_mode", "zeros"), bool(ctx.attr("align_corners", 0))
    dims = X.shape[2:]
    k = len(dims)
    if None in dims or X.shape[1] is None or grid.shape[-1] != k or None in grid.shape[:-1] or X.shape[0] is None:
        raise ctx.unsupported(f"GridSample of X {X.shape} on grid {grid.shape}: known sizes, grid's last dim = "
                              f"X's spatial rank")
    if mode not in ("nearest", "linear", "cubic") or pad not in ("zeros", "border", "reflection"):
        raise ctx.unsupported(f"GridSample mode {mode!r}, padding {pad!r}")
    if mode == "cubic" and k != 2:
        raise ctx.unsupported("cubic GridSample of other than 2-d images (ONNX defines it for 4-d input only)")
    N, C = X.shape[0], X.shape[1]
    out_sp = tuple(grid.shape[1:-1])
    g = F.cast(grid, X.dtype) if grid.dtype != X.dtype else grid
    coords = []
    for i, d in enumerate(dims):  # spatial axis i of X is the grid's last-dim entry k - 1 - i
        u = F.getitem(g, (Ellipsis, k - 1 - i))
        x = F.mul(F.add(u, 1.0), (d - 1) / 2.0) if align else F.div(F.sub(F.mul(F.add(u, 1.0), float(d)), 1.0), 2.0)
        if mode == "nearest":
            x = F.round(x)
        lo, hi = (0.0, d - 1.0) if align else (-0.5, d - 0.5)
        if pad == "border":
            x = F.where(F.logical_or(F.less(x, lo), F.greater(x, hi)), F.clip(x, 0.0, d - 1.0), x)
        elif pad == "reflection":
            x = _gs_reflect(x, lo, hi)
        coords.append((x, d, lo, hi))

    def index_at(i, idx):
        """(clamped int index, in-range mask or None) of integer-valued float idx on axis i."""
        x, d, lo, hi = coords[i]
        if pad == "reflection":
            idx = F.trunc(_gs_reflect(idx, lo, hi))
        inside = F.logical_and(F.greater_equal(idx, 0.0), F.less(idx, float(d))) if pad == "zeros" else None
        return F.cast(F.clip(idx, 0.0, d - 1.0), "int64"), inside

    if mode == "nearest":
        taps = [[(F.trunc(x), None)] for x, _, _, _ in coords]
    else:
        taps = []
        for x, _, _, _ in coords:
            x0 = F.floor(x)
            t = F.sub(x, x0)
            if mode == "linear":
                taps.append([(x0, F.sub(1.0, t)), (F.add(x0, 1.0), t)])
            else:
                taps.append([(F.add(x0, float(o)), w) for o, w in zip((-1, 0, 1, 2), _gs_cubic(t))])
    # the gather's base: row (n, c) of X flattened to (N * C * prod(dims),)
    size = int(np.prod(dims))
    shape = (N, C) + out_sp
    nc = (np.arange(N)[:, None] * C + np.arange(C)[None, :]).reshape((N, C) + (1,) * len(out_sp)) * size
    flat_x = F.reshape(X, (-1,))
    out = None
    for combo in np.ndindex(*[len(t) for t in taps]):
        flat, weight, mask = None, None, None
        for i, j in enumerate(combo):
            idx, w = taps[i][j]
            ii, inside = index_at(i, idx)
            stride = int(np.prod(dims[i + 1:]))
            term = ii if stride == 1 else F.mul(ii, stride)
            flat = term if flat is None else F.add(flat, term)
            if w is not None:
                weight = w if weight is None else F.mul(weight, w)
            if inside is not None:
                mask = inside if mask is None else F.logical_and(mask, inside)
        full = F.add(F.expand_dims(flat, 1), F.constant(nc.astype(np.int64)))  # (N, C, out...)
        v = F.take(flat_x, F.broadcast_to(full, shape))
        if mask is not None:
            v = F.where(F.expand_dims(mask, 1), v, 0.0)
        if weight is not None:
            v = F.mul(v, F.expand_dims(weight, 1))
        out = v if out is None else F.add(out, v)
    return _same_dtype(out, X)


@converter("If", 1, 11, 13, 16, 19, 21, 23, 24, 25)
def _if(ctx):
    """If with a condition known at import (a constant, computed from constants and shapes, or a graph
    input given by load(values=...), as for a data-dependent shape): the taken branch's graph is
    imported in its place. A condition computed from other run-time values is not supported (both
    branches would have to run, and an index out of range in the other one would raise)."""
    try:
        cond = np.asarray(ctx.static(0))
    except NeedsValue:
        raise
    except UnsupportedError as e:
        raise ctx.unsupported(f"a condition known only at run time ({e.message})") from None
    if cond.size != 1:
        raise ctx.unsupported(f"a condition of shape {cond.shape}")
    taken = bool(cond.reshape(()))
    ctx.ignore("else_branch" if taken else "then_branch")
    branch = ctx.attr("then_branch" if taken else "else_branch")
    return ctx.imp.subgraph(branch, {})


@converter("AffineGrid", 20)
def _affine_grid(ctx):
    """The sampling grid of theta (N, 2, 3) or (N, 3, 4) over size (N, C, [D,] H, W): each output
    point's normalized coordinates (x for W first), homogeneous, times theta^T (one product)."""
    theta = _float_only(ctx, ctx.node(0))
    size = [int(v) for v in np.asarray(ctx.static(1)).reshape(-1)]
    spatial = size[2:]
    k = len(spatial)
    if k not in (2, 3) or theta.shape[1:] != (k, k + 1):
        raise ctx.unsupported(f"AffineGrid of theta {theta.shape} for size {size}")
    align = bool(ctx.attr("align_corners", 0))
    axes = [(-1 + 2 * np.arange(d) / (d - 1) if d > 1 else np.zeros(1)) if align else -1 + (2 * np.arange(d) + 1) / d
            for d in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # per spatial axis, in X's order (D, H, W)
    base = np.stack([m.reshape(-1) for m in mesh[::-1]] + [np.ones(mesh[0].size)], 1)  # (points, x y [z] 1)
    grid = F.matmul(F.constant(base.astype(theta.dtype)), F.transpose(theta, (0, 2, 1)))  # (N, points, k)
    return F.reshape(grid, (-1 if theta.shape[0] is None else theta.shape[0], *spatial, k))


# ------------------------------------------------------------------ LinearAttention (opset 26 on)
@converter("LinearAttention", 26)
def _linear_attention(ctx):
    """The recurrent (linear) attention of ONNX: per step the state S (B, H_kv, d_k, d_v) decays by
    exp(g) (gated), has beta (v - S^T k) written (delta) or v (linear) as the outer product with k,
    and is read by scale * q S (query heads grouped onto key heads); one gc.scan over time, in
    float32. Outputs: (B, T, H_q d_v) and the final state."""
    Q, K, V = (_float_only(ctx, ctx.node(i)) for i in range(3))
    rule = ctx.attr("update_rule", "gated_delta")
    hq, hk = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
    if rule not in ("linear", "gated", "delta", "gated_delta") or not hq or not hk or hq % hk:
        raise ctx.unsupported(f"LinearAttention update_rule {rule!r}, q_num_heads {hq}, kv_num_heads {hk}")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gating != ctx.has(4) or delta != ctx.has(5):
        raise ctx.unsupported(f"LinearAttention {rule!r} with decay given: {ctx.has(4)}, beta given: {ctx.has(5)}")
    if any(a.ndim != 3 or None in a.shape[1:] for a in (Q, K, V)) or Q.shape[1] is None:
        raise ctx.unsupported(f"LinearAttention of q {Q.shape}, k {K.shape}, v {V.shape}: (B, T, heads x dim)")
    B, T = Q.shape[0], Q.shape[1]
    dk, dv, group = Q.shape[2] // hq, V.shape[2] // hk, hq // hk
    b = -1 if B is None else B

    def steps(x, heads, d):  # (B, T, heads * d) -> (T, B, heads, d), float32
        return F.transpose(F.reshape(F.cast(x, "float32"), (b, T, heads, d)), (1, 0, 2, 3))
    xs = [steps(Q, hq, dk), steps(K, hk, dk), steps(V, hk, dv)]
    if gating:
        g = ctx.node(4)
        per = g.shape[-1] // hk
        if g.shape[-1] not in (hk, hk * dk):
            raise ctx.unsupported(f"LinearAttention decay of last dim {g.shape[-1]}")
        xs.append(steps(g, hk, per))          # (T, B, H_kv, 1 or d_k)
    if delta:
        bt = ctx.node(5)
        if bt.shape[-1] not in (hk, 1):
            raise ctx.unsupported(f"LinearAttention beta of last dim {bt.shape[-1]}")
        xs.append(steps(bt, bt.shape[-1], 1))  # (T, B, H_kv or 1, 1)
    if ctx.has(3):
        S0 = F.cast(ctx.node(3), "float32")
    else:
        # zeros (B, H_kv, d_k, d_v), B the feeds' (known at run time only, maybe)
        S0 = F.mul(F.expand_dims(F.zeros_like(F.sum(xs[1], 0)), -1), F.constant(np.zeros(dv, np.float32)))
    scale = ctx.attr("scale", 0.0) or 1.0 / math.sqrt(dk)

    def step(S, x):
        q, k, v = x[0], x[1], x[2]
        at = 3
        if gating:
            S = F.mul(S, F.expand_dims(F.exp(x[at]), -1))  # (B, H, 1 or d_k, 1): over d_v
            at += 1
        if delta:
            seen = F.reshape(F.matmul(F.expand_dims(k, 2), S), (b, hk, dv))  # S^T k
            v = F.mul(x[at], F.sub(v, seen))
        S = F.add(S, F.mul(F.expand_dims(k, -1), F.expand_dims(v, 2)))
        o = F.matmul(F.reshape(q, (b, hk, group, dk)), S)  # query head h reads key head h // group
        return S, F.mul(F.reshape(o, (b, hq, dv)), scale)
    S, ys = F.scan(step, S0, xs)
    out = F.reshape(F.transpose(ys, (1, 0, 2, 3)), (b, T, hq * dv))
    state_dtype = ctx.node(3).dtype if ctx.has(3) else Q.dtype
    return [_same_dtype(out, Q), S if state_dtype == S.dtype else F.cast(S, state_dtype)]


@converter("CausalConvWithState", 27)
def _causal_conv_with_state(ctx):
    """A depthwise causal 1-d convolution carrying its last k - 1 inputs: x (B, C, L) after the past
    state (B, C, k - 1; zeros when absent), weight (C, 1, k), an optional bias and SiLU; outputs the
    convolution and the new state. Each tap is a slice of the padded input times its weights."""
    x, w = _float_only(ctx, ctx.node(0)), ctx.node(1)
    act = ctx.attr("activation", "none")
    if x.ndim != 3 or w.ndim != 3 or w.shape[1] != 1 or None in (x.shape[1], x.shape[2], w.shape[2]) \
            or act not in ("none", "silu", "swish"):
        raise ctx.unsupported(f"CausalConvWithState of x {x.shape}, weight {w.shape}, activation {act!r}")
    C, L, k = x.shape[1], x.shape[2], w.shape[2]
    if ctx.has(3):
        past = ctx.node(3)
    else:
        past = F.mul(F.expand_dims(F.zeros_like(F.sum(x, 2)), -1), F.constant(np.zeros(k - 1, x.dtype)))
    padded = F.concat([past, x], 2) if k > 1 else x
    taps = F.reshape(w, (C, k))
    out = None
    for j in range(k):
        term = F.mul(F.getitem(padded, (slice(None), slice(None), slice(j, j + L))),
                     F.reshape(F.getitem(taps, (slice(None), j)), (1, C, 1)))
        out = term if out is None else F.add(out, term)
    if ctx.has(2):
        out = F.add(out, F.reshape(ctx.node(2), (1, C, 1)))
    if act != "none":
        out = _same_dtype(F.silu(out), x)
    state = F.getitem(padded, (slice(None), slice(None), slice(L, L + k - 1)))
    return [out, state]


# ------------------------------------------------------------------ attention (opset 23 on)
def _heads(x: Node, n: int) -> Node:
    """(B, S, n * d) -> (B, n, S, d)."""
    B, S, hidden = x.shape
    return F.transpose(F.reshape(x, (-1 if B is None else B, S, n, hidden // n)), (0, 2, 1, 3))


def _neg_inf_bias(allowed: np.ndarray, dtype) -> np.ndarray:
    return np.where(allowed, dtype.type(0), dtype.type(-np.inf))


@converter("Attention", 23, 24)
def _attention(ctx):
    ctx.ignore("softmax_precision")  # the softmax is computed in Q's float32/float64, no less precise
    Q, K, V = ctx.node(0), ctx.node(1), ctx.node(2)
    if Q.dtype.kind != "f":
        raise ctx.unsupported(f"Q of dtype {Q.dtype}")
    three = Q.ndim == 3
    if three:
        hk = ctx.attr("kv_num_heads")
        Q, K, V = _heads(Q, ctx.attr("q_num_heads")), _heads(K, hk), _heads(V, hk)
    past_k = ctx.node(4) if ctx.has(4) else None
    past_v = ctx.node(5) if ctx.has(5) else None
    K = F.concat([past_k, K], 2) if past_k is not None else K
    V = F.concat([past_v, V], 2) if past_v is not None else V
    present_k, present_v = K, V
    Sq, Skv = Q.shape[2], K.shape[2]
    if Sq is None or Skv is None:
        raise ctx.unsupported("sequence lengths known only at run time")
    dt = Q.dtype
    scale = ctx.attr("scale")
    scale = 1 / math.sqrt(Q.shape[3]) if scale is None else scale
    s = dt.type(math.sqrt(scale))
    offset = past_k.shape[2] if past_k is not None else 0
    nonpad = ctx.node(6) if ctx.has(6) else None
    bias = F.constant(np.zeros((Sq, Skv), dt))
    mask = ctx.node(3) if ctx.has(3) else None
    if mask is not None and mask.shape[-1] is not None and mask.shape[-1] < Skv:  # short masks pad
        widths = [(0, 0)] * (mask.ndim - 1) + [(0, Skv - mask.shape[-1])]
        mask = F.pad(mask, widths, False if mask.dtype == np.bool_ else -np.inf)
    if mask is not None:
        m = F.where(mask, dt.type(0), dt.type(-np.inf)) if mask.dtype == np.bool_ else F.cast(mask, dt)
        bias = F.add(bias, m)
    i_idx, j_idx = np.arange(Sq)[:, None], np.arange(Skv)[None, :]
    if nonpad is not None and past_k is None:
        off = F.reshape(F.sub(F.cast(nonpad, "int64"), Sq), (-1, 1, 1, 1))  # per batch
    else:
        off = None
    left, right = ctx.attr("left_window_size", -1), ctx.attr("right_window_size", -1)
    if ctx.attr("is_causal", 0):
        if off is None:
            bias = F.add(bias, F.constant(_neg_inf_bias(j_idx <= i_idx + offset, dt)))
        else:
            allowed = F.less_equal(F.constant(j_idx), F.add(F.constant(i_idx), off))
            bias = F.add(bias, F.where(allowed, dt.type(0), dt.type(-np.inf)))
    if left >= 0 or right >= 0:
        if off is not None:
            raise ctx.unsupported("a sliding window with nonpad_kv_seqlen")
        diff = i_idx + offset - j_idx
        allowed = np.ones_like(diff, dtype=bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = F.add(bias, F.constant(_neg_inf_bias(allowed, dt)))
    if nonpad is not None:
        pad_ok = F.less(F.constant(np.arange(Skv)), F.reshape(F.cast(nonpad, "int64"), (-1, 1, 1, 1)))
        bias = F.add(bias, F.where(pad_ok, dt.type(0), dt.type(-np.inf)))
    Hq, Hk = Q.shape[1], K.shape[1]
    if Hq != Hk and Hq % Hk == 0:  # grouped-query attention: each K/V head serves Hq / Hk heads
        reps = Hq // Hk
        K = F.take(K, F.constant(np.repeat(np.arange(Hk), reps)), axis=1)
        V = F.take(V, F.constant(np.repeat(np.arange(Hk), reps)), axis=1)
    qk = F.matmul(F.mul(Q, s), F.transpose(F.mul(K, s), (0, 1, 3, 2)))
    softcap = ctx.attr("softcap", 0.0)
    if softcap and softcap > 0:
        qk = F.mul(F.tanh(F.div(qk, softcap)), softcap)
    qk_out = qk
    with_bias = F.add(qk, bias)
    mode = ctx.attr("qk_matmul_output_mode", 0)
    if mode == 2 or (mode == 1 and not softcap):
        qk_out = with_bias
    probs = F.softmax(with_bias, -1)
    masked = F.equal(F.max(bias, -1, keepdims=True), -np.inf)  # a row that may attend nowhere: 0
    probs = F.where(masked, dt.type(0), probs)
    if mode == 3:
        qk_out = probs
    Y = F.matmul(probs, V)
    if three:
        B = Y.shape[0]
        Y = F.reshape(F.transpose(Y, (0, 2, 1, 3)), (-1 if B is None else B, Sq, Y.shape[1] * Y.shape[3]))
    return [Y, present_k, present_v, qk_out]


@converter("ConvTranspose", 1, 11, 22)
def _conv_transpose(ctx):
    """The adjoint of a (grouped) convolution: derived by graphc's own autodiff (the gradient of
    conv2d for its input, a GEMM and a col2im), then cropped by the pads."""
    from ..autodiff import vjp
    x, w = ctx.node(0), ctx.node(1)
    _kernel_shape_of(ctx, w)
    if x.ndim not in (3, 4):  # 1-d: a 2-d one over a height of 1
        raise ctx.unsupported(f"a {x.ndim - 2}-d transposed convolution (graphc has 1-d and 2-d)")
    if any(d is None for d in x.shape[1:]):
        raise ctx.unsupported("spatial dims known only at run time")
    one = x.ndim == 3
    nd = x.ndim - 2
    strides = list(ctx.attr("strides", [1] * nd))
    dil = list(ctx.attr("dilations", [1] * nd))
    op = list(ctx.attr("output_padding", [0] * nd))
    out_shape = ctx.attr("output_shape")
    pads = ctx.attr("pads")
    if one:
        x, w = F.expand_dims(x, 2), F.expand_dims(w, 2)
        strides, dil, op = [1] + strides, [1] + dil, [0] + op
        out_shape = None if out_shape is None else [1] + list(out_shape)[-1:]
        pads = None if pads is None else [0, pads[0], 0, pads[1]]
    k = tuple(w.shape[2:])
    full = [strides[i] * (x.shape[2 + i] - 1) + op[i] + (k[i] - 1) * dil[i] + 1 for i in range(2)]
    auto = ctx.attr("auto_pad", "NOTSET")
    if pads is None or auto in ("SAME_UPPER", "SAME_LOWER"):
        if out_shape is None:
            out_shape = [x.shape[2 + i] * strides[i] for i in range(2)] if auto in ("SAME_UPPER", "SAME_LOWER") \
                else full
        out_shape = list(out_shape)[-2:]
        total = [full[i] - out_shape[i] for i in range(2)]
        lo = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]  # as the reference splits it
    else:
        lo = list(pads[:2])
        if out_shape is None:
            out_shape = [full[i] - pads[i] - pads[i + 2] for i in range(2)]
        out_shape = list(out_shape)[-2:]
    N, g = x.shape[0], ctx.attr("group", 1)  # w (C, O/g, kh, kw) is conv2d's weight from O channels to C
    z = F.placeholder((N, w.shape[1] * g, full[0], full[1]), x.dtype)
    y = F.conv2d(z, w, stride=tuple(strides), dilation=tuple(dil), groups=g)
    if y.shape[2:] != x.shape[2:]:
        raise ctx.unsupported(f"output_padding {op} does not fit strides {strides}")
    (t,) = vjp(y, [z], x)
    before = [max(0, -lo[i]) for i in range(2)]  # an output_shape beyond the full result: zeros
    after = [max(0, lo[i] + out_shape[i] - full[i]) for i in range(2)]
    if any(before) or any(after):
        t = F.pad(t, [(0, 0), (0, 0)] + list(zip(before, after)))
        lo = [lo[i] + before[i] for i in range(2)]
    t = F.getitem(t, (slice(None), slice(None), slice(lo[0], lo[0] + out_shape[0]), slice(lo[1], lo[1] + out_shape[1])))
    if ctx.has(2):
        t = F.add(t, F.reshape(ctx.node(2), (1, -1, 1, 1)))
    return F.squeeze(t, 2) if one else t


# ------------------------------------------------------------------ recurrent layers, on gc.scan
_ACTS = {"Sigmoid": F.sigmoid, "Tanh": F.tanh, "Relu": F.relu}


def _activations(ctx, defaults):
    names = ctx.attr("activations") or defaults
    if ctx.attr("activation_alpha") or ctx.attr("activation_beta"):
        raise ctx.unsupported("activation_alpha / activation_beta")
    bad = [a for a in names if a not in _ACTS]
    if bad:
        raise ctx.unsupported(f"activations {bad} (graphc has {sorted(_ACTS)})")
    return [_ACTS[a] for a in names]


def _recurrent(ctx, gates: int, step, n_state: int, default_acts):
    """RNN, GRU and LSTM: per direction, the input gates of every step in one GEMM, then one
    gc.scan over time (reverse for the backward direction). step(z_x, state, R, Rb, acts, d) ->
    the new state (a tuple whose first entry is h)."""
    X, W, R = ctx.node(0), ctx.node(1), ctx.node(2)
    if ctx.attr("layout", 0):
        X = F.transpose(X, (1, 0, 2))
    T, N, _ = X.shape
    H = ctx.attr("hidden_size") or R.shape[-1]
    if ctx.has(4):
        lens = ctx.static(4)
        if T is None or np.any(lens != T):
            raise ctx.unsupported("sequence_lens shorter than the sequence (ragged batches)")
    if ctx.attr("clip") is not None:
        raise ctx.unsupported("clip")
    direction = ctx.attr("direction", "forward")
    dirs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]
    acts = _activations(ctx, default_acts * len(dirs))
    k = len(default_acts)
    B = ctx.node(3) if ctx.has(3) else None
    ys, finals = [], []
    for d, rev in enumerate(dirs):
        Wd, Rd = F.getitem(W, d), F.getitem(R, d)
        zx = F.matmul(X, F.transpose(Wd))
        Rb = None
        if B is not None:
            zx = F.add(zx, F.getitem(B, (d, slice(0, gates * H))))
            Rb = F.getitem(B, (d, slice(gates * H, 2 * gates * H)))
        init = []
        for idx in (5, 6)[:n_state]:  # initial_h, initial_c: zeros by default
            if ctx.has(idx):
                init.append(F.getitem(ctx.node(idx), d))
            elif N is None:
                init.append(F.broadcast_to(F.constant(np.zeros(H, X.dtype)), (None, H), like=F.getitem(X, 0)))
            else:
                init.append(F.constant(np.zeros((N, H), X.dtype)))
        a = acts[d * k:(d + 1) * k]

        def body(carry, z, Rd=Rd, Rb=Rb, a=a, d=d):
            new = step(ctx, z, tuple(carry), Rd, Rb, a, d)
            return new, new[0]
        fin, y = F.scan(body, tuple(init), zx, reverse=rev)
        ys.append(y)
        finals.append(fin)
    Y = F.stack(ys, 1)  # (T, num_directions, N, H)
    outs = [Y] + [F.stack([f[j] for f in finals], 0) for j in range(n_state)]
    if ctx.attr("layout", 0):
        outs = [F.transpose(Y, (2, 0, 1, 3))] + [F.transpose(o, (1, 0, 2)) for o in outs[1:]]
    return outs


def _rec_h(h, R, Rb):
    zh = F.matmul(h, F.transpose(R))
    return zh if Rb is None else F.add(zh, Rb)


def _rnn_step(ctx, z, state, R, Rb, acts, d):
    return (acts[0](F.add(z, _rec_h(state[0], R, Rb))),)


def _gru_step(ctx, z, state, R, Rb, acts, d):
    h = state[0]
    H = h.shape[-1]
    zx, rx, nx = F.split(z, H, axis=-1)
    f, g = acts
    Rz, Rr, Rn = F.split(R, H, axis=0)
    bz, br, bn = F.split(Rb, H, axis=-1) if Rb is not None else (None, None, None)
    zt = f(F.add(zx, _rec_h(h, Rz, bz)))
    rt = f(F.add(rx, _rec_h(h, Rr, br)))
    if ctx.attr("linear_before_reset", 0):
        nt = g(F.add(nx, F.mul(rt, _rec_h(h, Rn, bn))))
    else:
        nt = g(F.add(nx, _rec_h(F.mul(rt, h), Rn, bn)))
    return (F.add(F.mul(F.sub(1.0, zt), nt), F.mul(zt, h)),)


def _lstm_step(ctx, z, state, R, Rb, acts, d):
    h, c = state
    H = h.shape[-1]
    f, g, hact = acts
    zz = F.add(z, _rec_h(h, R, Rb))
    i, o, fg, cc = F.split(zz, H, axis=-1)  # ONNX's gate order: input, output, forget, cell
    if ctx.has(7):
        Pi, Po, Pf = F.split(F.getitem(ctx.node(7), d), H, axis=-1)
        i, fg = F.add(i, F.mul(Pi, c)), F.add(fg, F.mul(Pf, c))
    if ctx.attr("input_forget", 0):
        raise ctx.unsupported("input_forget=1")
    it, ft, ct = f(i), f(fg), g(cc)
    c2 = F.add(F.mul(ft, c), F.mul(it, ct))
    if ctx.has(7):
        o = F.add(o, F.mul(Po, c2))
    return (F.mul(f(o), hact(c2)), c2)


converter("RNN", 1, 7, 14, 22)(lambda ctx: _recurrent(ctx, 1, _rnn_step, 1, ["Tanh"]))
converter("GRU", 1, 3, 7, 14, 22)(lambda ctx: _recurrent(ctx, 3, _gru_step, 1, ["Sigmoid", "Tanh"]))
converter("LSTM", 1, 7, 14, 22)(lambda ctx: _recurrent(ctx, 4, _lstm_step, 2, ["Sigmoid", "Tanh", "Tanh"]))


# ------------------------------------------------------------------ a few more
@converter("RotaryEmbedding", 23)
def _rotary(ctx):
    x, cos, sin = ctx.node(0), ctx.node(1), ctx.node(2)
    shape = x.shape
    if None in shape:
        raise ctx.unsupported("dims known only at run time")
    if x.ndim == 4:
        x = F.transpose(x, (0, 2, 1, 3))
    else:
        n = ctx.attr("num_heads")
        x = F.reshape(x, (shape[0], shape[1], n, shape[2] // n))
    d = ctx.attr("rotary_embedding_dim", 0) or x.shape[3]
    rot, keep = F.getitem(x, (Ellipsis, slice(0, d))), F.getitem(x, (Ellipsis, slice(d, None)))
    if ctx.has(3):
        pos = ctx.node(3)
        cos, sin = F.take(cos, pos, axis=0), F.take(sin, pos, axis=0)
    cos, sin = F.expand_dims(cos, 2), F.expand_dims(sin, 2)
    inter = ctx.attr("interleaved", 0)
    if inter:
        x1, x2 = F.getitem(rot, (Ellipsis, slice(0, None, 2))), F.getitem(rot, (Ellipsis, slice(1, None, 2)))
    else:
        x1, x2 = F.split(rot, d // 2, axis=-1)
    real = F.sub(F.mul(cos, x1), F.mul(sin, x2))
    imag = F.add(F.mul(sin, x1), F.mul(cos, x2))
    if inter:
        rot = F.reshape(F.stack([real, imag], -1), rot.shape)
    else:
        rot = F.concat([real, imag], -1)
    out = F.concat([rot, keep], -1) if keep.shape[-1] else rot
    return F.reshape(out, shape) if len(shape) == 3 else F.transpose(out, (0, 2, 1, 3))


@converter("LpPool", 1, 2, 11, 18, 22)
def _lp_pool(ctx):
    """(sum over the window of |x|^p)^(1/p): an average pool times the window's size."""
    p = ctx.attr("p", 2)
    k = math.prod(ctx.attr("kernel_shape"))
    powered = F.pow(F.abs(ctx.node(0)), float(p))
    return F.pow(F.mul(_pool(ctx, F.avg_pool2d, 0.0, powered, count_pads=True), float(k)), 1.0 / p)


@converter("SwiGLU", 28)
def _swiglu(ctx):
    """a * sigmoid(alpha a) * b (a and b of one shape and dtype)."""
    a, b = _float_only(ctx, ctx.node(0)), ctx.node(1)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ctx.unsupported(f"SwiGLU of {a.shape} {a.dtype} and {b.shape} {b.dtype}: one shape and dtype")
    alpha = float(ctx.attr("alpha", 1.0))
    return _same_dtype(F.mul(F.mul(a, F.sigmoid(F.mul(a, alpha))), b), a)


@converter("ReverseSequence", 10)
def _reverse_sequence(ctx):
    """Each batch entry's first sequence_lens[b] steps along the time axis reversed, the rest kept: a
    gather of (batch, time) rows at b T + (L_b - 1 - t if t < L_b else t)."""
    x, lens = ctx.node(0), F.cast(ctx.node(1), "int64")
    ba, ta = ctx.attr("batch_axis", 1) % x.ndim, ctx.attr("time_axis", 0) % x.ndim
    B, T = x.shape[ba], x.shape[ta]
    if ba == ta or B is None or T is None or None in x.shape:
        raise ctx.unsupported(f"ReverseSequence of {x.shape} (batch axis {ba}, time axis {ta}): known sizes")
    perm = (ba, ta) + tuple(a for a in range(x.ndim) if a not in (ba, ta))
    rows = F.reshape(F.transpose(x, perm), (B * T,) + tuple(x.shape[a] for a in perm[2:]))
    t = F.constant(np.arange(T, dtype=np.int64)[None, :])
    L = F.reshape(lens, (B, 1))
    idx = F.where(F.less(t, L), F.sub(F.sub(L, 1), t), t)
    flat = F.reshape(F.add(idx, F.constant(np.arange(B, dtype=np.int64)[:, None] * T)), (B * T,))
    out = F.reshape(F.take(rows, flat, axis=0), tuple(x.shape[a] for a in perm))
    return F.transpose(out, tuple(int(i) for i in np.argsort(perm)))


@converter("CenterCropPad", 18)
def _center_crop_pad(ctx):
    x = ctx.node(0)
    want = _static_or_shape(ctx, 1)
    axes = ctx.attr("axes") or list(range(x.ndim))
    for a, w in zip([a % x.ndim for a in axes], want):
        n = x.shape[a]
        if n is None:
            raise ctx.unsupported("cropping a dim known only at run time")
        if n > w:  # crop the middle
            lo = (n - w) // 2
            x = F.getitem(x, (slice(None),) * a + (slice(lo, lo + w),))
        elif n < w:  # pad both sides
            lo = (w - n) // 2
            widths = [(0, 0)] * x.ndim
            widths[a] = (lo, w - n - lo)
            x = F.pad(x, widths)
    return x


@converter("CumProd", 26)
def _cumprod(ctx):
    x = ctx.node(0)
    return F.cumprod(x, int(ctx.static(1)) % x.ndim, bool(ctx.attr("exclusive", 0)), bool(ctx.attr("reverse", 0)))


# ------------------------------------------------------------------ Resize
def _resample_matrix(ctx, n_in: int, scale=None, size=None, roi=None):
    """The (n_out, n_in) matrix one axis of this Resize applies (its interpolation is separable):
    onnx's reference Resize of an identity matrix along that axis, with this node's attributes.
    Returns (matrix, extrapolated rows or None)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    attrs = {k: v for k, v in ctx.attrs.items() if k not in ("axes", "keep_aspect_ratio_policy")}
    eye = np.eye(n_in, dtype=np.float64)
    names = ["x", "roi" if roi is not None else "", "scales" if scale is not None else "",
             "sizes" if size is not None else ""]
    while names and names[-1] == "":
        names.pop()
    inputs = [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [n_in, n_in])]
    feeds = {"x": eye}
    if roi is not None:
        inputs.append(helper.make_tensor_value_info("roi", TensorProto.DOUBLE, [4]))
        feeds["roi"] = np.array([roi[0], 0.0, roi[1], 1.0])
    if scale is not None:
        inputs.append(helper.make_tensor_value_info("scales", TensorProto.FLOAT, [2]))
        feeds["scales"] = np.array([scale, 1.0], np.float32)
    if size is not None:
        inputs.append(helper.make_tensor_value_info("sizes", TensorProto.INT64, [2]))
        feeds["sizes"] = np.array([size, n_in], np.int64)

    def resize(**kw):
        node = helper.make_node("Resize", names, ["y"], **{**attrs, **kw})
        g = helper.make_graph([node], "resize_axis", inputs, [helper.make_tensor_value_info("y", TensorProto.DOUBLE,
                                                                                          None)])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", max(ctx.version, 11))])
        return ReferenceEvaluator(model).run(None, feeds)[0]
    M = resize()
    extra = None
    if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":  # rows outside the roi
        extra = np.isnan(resize(extrapolation_value=float("nan"))).any(axis=1)
        M = np.where(extra[:, None], 0.0, M)
    return M, extra


@converter("Resize", 10, 11, 13, 18, 19)
def _resize(ctx):
    x = ctx.node(0)
    if any(d is None for d in x.shape):
        raise ctx.unsupported("resizing dims known only at run time")
    r = x.ndim
    if ctx.version == 10:
        scales, sizes, roi = ctx.static(1).astype(float).tolist(), None, None
    else:
        roi = ctx.static(1).astype(float).tolist() if ctx.has(1) and ctx.static(1).size else None
        scales = ctx.static(2).astype(float).tolist() if ctx.has(2) and ctx.static(2).size else None
        sizes = _static_or_shape(ctx, 3) if ctx.has(3) and ctx.static(3).size else None
    axes = [a % r for a in ctx.attr("axes", list(range(r)))]
    if roi is not None and len(roi) == 2 * len(axes) and len(axes) != r:
        full = [0.0] * r + [1.0] * r
        for k, a in enumerate(axes):
            full[a], full[a + r] = roi[k], roi[k + len(axes)]
        roi = full
    per_axis = {}
    if sizes is not None:
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        want = dict(zip(axes, sizes))
        if policy == "stretch":
            per_axis = {a: (None, want[a]) for a in axes}
        else:
            ratios = [want[a] / x.shape[a] for a in axes]
            s = min(ratios) if policy == "not_larger" else max(ratios)
            per_axis = {a: (s, int(math.floor(s * x.shape[a] + 0.5))) for a in axes}
    else:
        per_axis = {a: (scales[k] if len(scales) == len(axes) else scales[a], None) for k, a in enumerate(axes)}
    out = x
    for a, (s, n) in per_axis.items():
        n_in = x.shape[a]
        if s is not None and n is None and s == 1.0 and roi is None:
            continue
        M, extra = _resample_matrix(ctx, n_in, scale=s if n is None or s is not None else None,
                                    size=n if s is None else None,
                                    roi=None if roi is None else (roi[a], roi[a + r]))
        if n is not None and M.shape[0] != n:
            raise ctx.unsupported(f"axis {a}: {M.shape[0]} outputs where the sizes ask for {n}")
        moved = F.transpose(out, tuple(b for b in range(r) if b != a) + (a,)) if a != r - 1 else out
        if ctx.attr("mode", "nearest") == "nearest":  # a selection: gather, exact for every dtype
            res = F.take(moved, F.constant(M.argmax(axis=1)), axis=moved.ndim - 1)
        else:
            if out.dtype.kind != "f":
                raise ctx.unsupported(f"{ctx.attr('mode')} resizing of {out.dtype}")
            res = F.matmul(moved, F.constant(M.T.astype(out.dtype)))
        if extra is not None and extra.any():
            res = F.where(F.constant(extra), out.dtype.type(ctx.attr("extrapolation_value", 0.0)), res)
        if a != r - 1:
            perm = list(range(r - 1))
            perm.insert(a, r - 1)
            res = F.transpose(res, tuple(perm))
        out = res
    return out


# ------------------------------------------------------------------ scatters and n-d gathers
def _scatter_flat(ctx, data, flat_idx, flat_updates):
    """data with flat positions flat_idx set to (reduction none) or combined with (add) the updates."""
    from ..ir import make_node
    from ..ops import REGISTRY
    size = math.prod(data.shape)
    flat = F.reshape(data, (size,))

    def scatter(v):
        return make_node(REGISTRY["scatter_add"], (v, flat_idx), {"axis": 0, "shape": (size,)})
    red = ctx.attr("reduction", "none")
    if red == "add":
        out = F.add(flat, scatter(flat_updates))
    elif red == "none":  # indices are distinct (ONNX leaves repeats undefined)
        hit = F.greater(scatter(F.add(F.zeros_like(F.cast(flat_updates, "int64")), 1)), 0)
        out = F.where(hit, scatter(flat_updates), flat)
    else:
        raise ctx.unsupported(f"reduction {red!r}")
    return F.reshape(out, data.shape)


def _static_shapes(ctx, *xs):
    if any(d is None for x in xs for d in x.shape):
        raise ctx.unsupported("dims known only at run time")


@converter("Scatter", 9)
@converter("ScatterElements", 11, 13, 16, 18)
def _scatter_elements(ctx):
    data, idx, upd = ctx.node(0), ctx.node(1), ctx.node(2)
    _static_shapes(ctx, data, idx)
    axis = ctx.attr("axis", 0) % data.ndim
    idx = F.cast(idx, "int64")
    idx = F.where(F.less(idx, 0), F.add(idx, data.shape[axis]), idx)
    strides = np.cumprod((1,) + data.shape[::-1])[:-1][::-1]
    flat = F.mul(idx, int(strides[axis]))
    for a in range(data.ndim):
        if a != axis:
            grid = np.arange(idx.shape[a]).reshape((1,) * a + (-1,) + (1,) * (data.ndim - a - 1)) * strides[a]
            flat = F.add(flat, F.constant(grid.astype(np.int64)))
    return _scatter_flat(ctx, data, F.reshape(flat, (-1,)), F.reshape(upd, (-1,)))


def _nd_offsets(ctx, data, idx, batch=0):
    """Flat offsets into data of the index tuples in idx's last axis (and their trailing blocks)."""
    _static_shapes(ctx, data, idx)
    k = idx.shape[-1]
    shape = data.shape
    strides = np.cumprod((1,) + shape[::-1])[:-1][::-1]
    idx = F.cast(idx, "int64")
    base = None
    for j in range(k):
        comp = F.getitem(idx, (Ellipsis, j))
        comp = F.where(F.less(comp, 0), F.add(comp, shape[batch + j]), comp)
        term = F.mul(comp, int(strides[batch + j]))
        base = term if base is None else F.add(base, term)
    if batch:  # leading batch dims shared by data and indices
        grid = np.zeros(idx.shape[:-1], np.int64)
        for a in range(batch):
            grid = grid + np.arange(idx.shape[a]).reshape((1,) * a + (-1,) + (1,) * (idx.ndim - 2 - a)) * strides[a]
        base = F.add(base, F.constant(grid))
    block = math.prod(shape[batch + k:])
    offs = F.add(F.expand_dims(base, base.ndim), F.constant(np.arange(block, dtype=np.int64)))
    return offs, shape[batch + k:]


@converter("ScatterND", 11, 13, 16, 18)
def _scatter_nd(ctx):
    data, idx, upd = ctx.node(0), ctx.node(1), ctx.node(2)
    offs, _ = _nd_offsets(ctx, data, idx)
    return _scatter_flat(ctx, data, F.reshape(offs, (-1,)), F.reshape(upd, (-1,)))


@converter("GatherND", 11, 12, 13)
def _gather_nd(ctx):
    data, idx = ctx.node(0), ctx.node(1)
    b = ctx.attr("batch_dims", 0)
    offs, rest = _nd_offsets(ctx, data, idx, b)
    out = F.take(F.reshape(data, (-1,)), F.reshape(offs, (-1,)))
    return F.reshape(out, tuple(idx.shape[:-1]) + tuple(rest))


# ------------------------------------------------------------------ windows, sorting
def _window(fn):
    def convert(ctx):
        from .importer import onnx_dtype
        n = int(ctx.static(0))
        dt = onnx_dtype(ctx.attr("output_datatype", 1), ctx.where())
        N = n if ctx.attr("periodic", 1) else n - 1
        k = np.arange(n, dtype=np.float64)
        return fn(k, N).astype(dt) if n > 1 or not ctx.attr("periodic", 1) else np.ones(n, dt)
    return convert


converter("HannWindow", 17)(_window(lambda k, N: np.sin(np.pi * k / N) ** 2))
converter("HammingWindow", 17)(_window(lambda k, N: 25 / 46 - (1 - 25 / 46) * np.cos(2 * np.pi * k / N)))
converter("BlackmanWindow", 17)(_window(
    lambda k, N: 0.42 - 0.5 * np.cos(2 * np.pi * k / N) + 0.08 * np.cos(4 * np.pi * k / N)))


@converter("TopK", 1, 10, 11, 24)
def _topk(ctx):
    x = ctx.node(0)
    ctx.ignore("sorted")  # sorted=0 leaves the order unspecified: sorted is one of them
    k = int(ctx.attr("k")) if ctx.version < 10 else int(ctx.static(1).reshape(-1)[0])
    values, index = F.topk(x, k, ctx.attr("axis", -1), bool(ctx.attr("largest", 1)))
    return [values, F.cast(index, "int64")]

# ------------------------------------------------------------------ control flow
@converter("Scan", 9, 11, 16, 19, 21)
def _scan(ctx):
    """ONNX's Scan as gc.scan: the body graph converted inside the step (outer names in scope)."""
    body = ctx.attr("body")
    m = ctx.attr("num_scan_inputs")
    ins = [ctx.node(i) for i in range(ctx.n_inputs())]
    n_state = len(ins) - m
    states, xs = ins[:n_state], ins[n_state:]
    in_dirs = ctx.attr("scan_input_directions") or [0] * m
    n_out = len(body.output) - n_state
    out_dirs = ctx.attr("scan_output_directions") or [0] * n_out
    if len(set(in_dirs) | set(out_dirs)) > 1:
        raise ctx.unsupported("scan inputs and outputs in different directions")
    reverse = bool((in_dirs or out_dirs or [0])[0])
    in_axes = ctx.attr("scan_input_axes") or [0] * m
    out_axes = ctx.attr("scan_output_axes") or [0] * n_out
    xs = [x if a % x.ndim == 0 else F.transpose(x, (a % x.ndim,) + tuple(b for b in range(x.ndim) if b != a % x.ndim))
          for x, a in zip(xs, in_axes)]

    def step(carry, slices):
        bindings = {vi.name: v for vi, v in zip(body.input, list(carry) + list(slices))}
        outs = [o if isinstance(o, Node) else F.constant(o) for o in ctx.imp.subgraph(body, bindings)]
        return tuple(outs[:n_state]), tuple(outs[n_state:])
    final, ys = F.scan(step, tuple(states), tuple(xs), reverse=reverse)
    res = list(final)
    for y, a in zip(ys, out_axes):
        a %= y.ndim
        if a:
            perm = list(range(1, y.ndim))
            perm.insert(a, 0)
            y = F.transpose(y, tuple(perm))
        res.append(y)
    return res


@converter("ArrayFeatureExtractor", 1, domain="ai.onnx.ml")
def _array_feature_extractor(ctx):
    """X[..., indices] (scikit-learn's exported classifiers map argmax to class labels with it)."""
    x, idx = ctx.node(0), ctx.node(1)
    return F.take(x, F.reshape(idx, (-1,)), axis=x.ndim - 1)

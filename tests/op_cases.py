"""The op test table: every primitive and composite, its NumPy reference, and the shapes it runs on.

Each Case compiles once per dtype with every shape variant as separate inputs and outputs.
tests/graph/test_registry.py checks that these graphs use every primitive in the registry.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import graphc as gc

F = ["float32", "float64"]
I = ["int32", "int64"]


@dataclass
class Case:
    id: str
    graph: Callable          # (*nodes) -> node
    ref: Callable            # (*arrays) -> array, NumPy's meaning
    shapes: list             # list of variants, each a tuple of input shapes
    dtypes: list = field(default_factory=lambda: list(F))
    domain: tuple = ()       # per input: any | pos | nonzero | unit | bool | idx:N | small
    in_dtypes: Callable | None = None  # dtype -> tuple of input dtypes (default: all `dtype`)
    check_dtype: bool = True  # result dtype must equal NumPy's
    dynamic: bool = False     # placeholders get None for their first dim (run-time batch)
    scale: Callable | None = None  # args -> magnitude of the values an output is a difference of

    def placeholder_shape(self, shape):
        return (None,) + tuple(shape[1:]) if self.dynamic and len(shape) else tuple(shape)


def make_array(rng, shape, dtype, domain="any"):
    dtype = np.dtype(dtype)
    if domain == "bool" or dtype == np.bool_:
        return (rng.random(shape) < 0.5).astype(dtype)
    if domain.startswith("idx:"):
        return rng.integers(0, int(domain[4:]), shape).astype(dtype)
    if dtype.kind in "iu":
        lo, hi = (1, 4) if domain in ("pos", "nonzero") else (-4, 4)
        return rng.integers(lo, hi, shape).astype(dtype)
    if domain == "pos":
        a = rng.uniform(0.1, 3.0, shape)
    elif domain == "unit":
        a = rng.uniform(0.05, 0.95, shape)
    elif domain == "nonzero":
        a = rng.uniform(0.5, 2.0, shape) * np.where(rng.random(shape) < 0.5, -1, 1)
    elif domain == "small":
        a = rng.uniform(-1.0, 1.0, shape)
    else:
        a = rng.normal(0, 2.0, shape)
    return np.asarray(a).astype(dtype)


UNARY_SHAPES = [((),), ((5,),), ((2, 1, 3),), ((0, 4),), ((1,),)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((1,), (0,)),
                 ((0, 3), (1, 3))]


def _f64(fn):
    """Reference computed in float64, cast back to the input's float dtype."""
    def ref(x):
        return np.asarray(fn(x.astype(np.float64))).astype(x.dtype)
    return ref


_erf = np.vectorize(math.erf, otypes=[np.float64])

CASES: list[Case] = []


def unary(id, g, r, domain="any", dtypes=F, **kw):
    CASES.append(Case(id, g, r, UNARY_SHAPES, list(dtypes), (domain,), **kw))


def binary(id, g, r, domain=("any", "any"), dtypes=F, **kw):
    CASES.append(Case(id, g, r, BINARY_SHAPES, list(dtypes), domain, **kw))


# ---------------------------------------------------------------- elementwise
unary("exp", gc.exp, np.exp)
unary("log", gc.log, np.log, "pos")
unary("log1p", gc.log1p, np.log1p, "pos")
unary("sqrt", gc.sqrt, np.sqrt, "pos")
unary("sin", gc.sin, np.sin)
unary("cos", gc.cos, np.cos)
unary("tanh", gc.tanh, np.tanh)
unary("atan", gc.atan, np.arctan)
unary("erf", gc.erf, _f64(_erf))
unary("sigmoid", gc.sigmoid, _f64(lambda x: 1 / (1 + np.exp(-x))))
unary("softplus", gc.softplus, _f64(lambda x: np.logaddexp(0, x)))
unary("neg", gc.neg, np.negative, dtypes=F + I)
unary("neg_op", lambda x: -x, np.negative, dtypes=F + I)
unary("abs", gc.abs, np.abs, dtypes=F + I)
unary("sign", gc.sign, np.sign, dtypes=F + I)
unary("relu", gc.relu, lambda x: np.maximum(x, x.dtype.type(0)), dtypes=F + I)
unary("step", gc.step, lambda x: (x >= 0).astype(x.dtype), dtypes=F + I)
unary("square", gc.square, np.square, dtypes=F + I)
unary("reciprocal", gc.reciprocal, lambda x: 1 / x, "nonzero")
unary("exp_of_int", gc.exp, np.exp, dtypes=I)
unary("sqrt_of_int", gc.sqrt, np.sqrt, "pos", dtypes=I)
unary("logical_not", gc.logical_not, np.logical_not, "bool", dtypes=["bool"])
unary("invert", lambda x: ~x, np.logical_not, "bool", dtypes=["bool"])
for _to in ["float32", "float64", "int32", "int64", "bool"]:
    unary(f"cast_to_{_to}", lambda x, _to=_to: gc.cast(x, _to), lambda x, _to=_to: x.astype(_to),
          dtypes=F + I + ["bool"])
unary("leaky_relu", lambda x: gc.leaky_relu(x, 0.1), _f64(lambda x: np.where(x > 0, x, 0.1 * x)))
unary("elu", lambda x: gc.elu(x, 1.5), _f64(lambda x: np.where(x > 0, x, 1.5 * (np.exp(x) - 1))))
unary("gelu", gc.gelu, _f64(lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))))
unary("gelu_tanh", lambda x: gc.gelu(x, "tanh"),
      _f64(lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))))
unary("clip", lambda x: gc.clip(x, -1.0, 0.5), lambda x: np.clip(x, -1.0, 0.5))
unary("clip_lo", lambda x: gc.clip(x, lo=0), lambda x: np.clip(x, 0, None), dtypes=F + I)
unary("scalar_ops", lambda x: x * 2.5 + 1 - x / 4 + 3 ** (x * 0.1) - x ** 2,
      lambda x: x * 2.5 + 1 - x / 4 + 3 ** (x * 0.1) - x ** 2)
unary("scalar_ops_int", lambda x: x * 3 + 1 - 2 * x + x ** 2,
      lambda x: x * 3 + 1 - 2 * x + x ** 2, dtypes=I)
unary("scalar_true_div_int", lambda x: x / 2 + 1.5, lambda x: x / 2 + 1.5, dtypes=I)
unary("scalar_compare", lambda x: gc.logical_and(x > 0.5, x <= 2), lambda x: (x > 0.5) & (x <= 2))
unary("numpy_scalar_promotes", lambda x: x * np.float64(2.0), lambda x: x * np.float64(2.0))
unary("reflected_numpy_scalar", lambda x: np.float32(2.0) - x, lambda x: np.float32(2.0) - x)

binary("add", gc.add, np.add, dtypes=F + I)
binary("add_op", lambda a, b: a + b, np.add, dtypes=F + I)
binary("sub", gc.sub, np.subtract, dtypes=F + I)
binary("mul", lambda a, b: a * b, np.multiply, dtypes=F + I)
binary("div", lambda a, b: a / b, np.true_divide, ("any", "nonzero"), dtypes=F + I)
binary("pow", lambda a, b: a ** b, np.power, ("pos", "small"))
binary("pow_int", gc.pow, np.power, ("any", "pos"), dtypes=I)
binary("maximum", gc.maximum, np.maximum, dtypes=F + I)
binary("minimum", gc.minimum, np.minimum, dtypes=F + I)
binary("less", lambda a, b: a < b, np.less, dtypes=F + I)
binary("less_equal", lambda a, b: a <= b, np.less_equal, dtypes=F + I)
binary("greater", lambda a, b: a > b, np.greater, dtypes=F + I)
binary("greater_equal", lambda a, b: a >= b, np.greater_equal, dtypes=F + I)
binary("equal", lambda a, b: a == b, np.equal, ("small", "small"), dtypes=I)
binary("not_equal", lambda a, b: a != b, np.not_equal, ("small", "small"), dtypes=I)
binary("logical_and", lambda a, b: a & b, np.logical_and, ("bool", "bool"), dtypes=["bool"])
binary("logical_or", lambda a, b: a | b, np.logical_or, ("bool", "bool"), dtypes=["bool"])
binary("mixed_int_float", gc.add, np.add, in_dtypes=lambda d: ("int32", d))
binary("mixed_f32_f64", gc.mul, np.multiply, in_dtypes=lambda d: ("float32", d))
binary("prelu", gc.prelu, lambda x, a: np.where(x > 0, x, a * x))
CASES.append(Case("where", gc.where, np.where,
                  [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()), ((0, 2), (1,), (2,)), ((), (), ())],
                  F + I, ("bool", "any", "any"), in_dtypes=lambda d: ("bool", d, d)))

# ---------------------------------------------------------------- reductions
RED_AXES = [None, 0, 1, -1, (0, 2), (2, 0)]


def reduction(id, g, r, dtypes=F, domain="any", keep=(False, True), axes=RED_AXES, **kw):
    for keepdims in keep:
        for axis in axes:
            CASES.append(Case(f"{id}-axis{axis}-keep{keepdims}".replace(" ", ""),
                              lambda x, axis=axis, k=keepdims: g(x, axis=axis, keepdims=k),
                              lambda x, axis=axis, k=keepdims: r(x, axis=axis, keepdims=k),
                              [((2, 3, 4),), ((1, 3, 1),), ((2, 0, 3),)], list(dtypes), (domain,), **kw))


def _lse(x, axis, keepdims):
    x64 = x.astype(np.float64)
    m = np.max(x64, axis=axis, keepdims=True) if x.size else 0
    out = np.log(np.sum(np.exp(x64 - m), axis=axis, keepdims=True)) + m
    out = out if keepdims else np.squeeze(out, axis=axis)
    return np.asarray(out).astype(x.dtype if x.dtype.kind == "f" else np.float64)


reduction("sum", gc.sum, np.sum, F + I)
reduction("mean", gc.mean, np.mean, F + I)
reduction("prod", gc.prod, np.prod, F + I, domain="small")
reduction("logsumexp", gc.logsumexp, _lse, keep=(False, True))
reduction("var", gc.var, np.var, F + I)
reduction("std", gc.std, np.std)
for _name, _g, _r in [("max", gc.max, np.max), ("min", gc.min, np.min)]:
    for _k in (False, True):
        for _axis in [None, 0, 1, -1, (0, 2)]:
            CASES.append(Case(f"{_name}-axis{_axis}-keep{_k}".replace(" ", ""),
                              lambda x, a=_axis, k=_k, g=_g: g(x, axis=a, keepdims=k),
                              lambda x, a=_axis, k=_k, r=_r: r(x, axis=a, keepdims=k),
                              [((2, 3, 4),), ((1, 3, 1),), ((2, 3, 0),)] if _axis not in (None, -1, (0, 2))
                              else [((2, 3, 4),), ((1, 3, 1),)], F + I))
for _name, _g, _r in [("argmax", gc.argmax, np.argmax), ("argmin", gc.argmin, np.argmin)]:
    for _k in (False, True):
        for _axis in [None, 0, 1, -1]:
            CASES.append(Case(f"{_name}-axis{_axis}-keep{_k}",
                              lambda x, a=_axis, k=_k, g=_g: g(x, axis=a, keepdims=k),
                              lambda x, a=_axis, k=_k, r=_r: r(x, axis=a, keepdims=k),
                              [((2, 3, 4),), ((1, 3, 1),)], F + I))
CASES.append(Case("methods", lambda x: x.sum(0) + x.mean(1, keepdims=True).sum() - x.max() + x.min(-1).sum(),
                  lambda x: x.sum(0) + x.mean(1, keepdims=True).sum() - x.max() + x.min(-1).sum(),
                  [((3, 4),)]))

# ---------------------------------------------------------------- shape ops
X3 = [((3, 4, 5),)]
CASES += [
    Case("reshape", lambda x: gc.reshape(x, (6, 10)), lambda x: x.reshape(6, 10), [((3, 4, 5),), ((60,),)],
         F + I + ["bool"]),
    Case("reshape_infer", lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2), [((3, 4, 5),), ((0, 4),)],
         F + I),
    Case("reshape_scalar", lambda x: x.reshape(1, 1), lambda x: x.reshape(1, 1), [((),), ((1,),)]),
    Case("transpose", lambda x: gc.transpose(x, (1, 2, 0)), lambda x: np.transpose(x, (1, 2, 0)),
         X3 + [((0, 2, 1),)], F + I + ["bool"]),
    Case("T", lambda x: x.T, lambda x: x.T, X3 + [((3,),), ((),)]),
    Case("permute", lambda x: gc.permute(x, 2, 0, 1), lambda x: np.transpose(x, (2, 0, 1)), X3),
    Case("broadcast_to", lambda x: gc.broadcast_to(x, (2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)),
         [((3, 1),), ((4,),), ((),), ((2, 3, 4),)], F + I),
    Case("expand_dims", lambda x: gc.expand_dims(x, (0, 2)), lambda x: np.expand_dims(x, (0, 2)),
         [((3, 4),), ((3,),)], F + I),
    Case("squeeze", gc.squeeze, np.squeeze, [((1, 3, 1),), ((1,),), ((2, 3),)], F + I),
    Case("squeeze_axis", lambda x: gc.squeeze(x, -1), lambda x: np.squeeze(x, -1), [((1, 3, 1),), ((4, 1),)]),
    Case("flatten", gc.flatten, lambda x: x.reshape(-1), [((2, 3, 4),), ((),)]),
    Case("flatten_1", lambda x: gc.flatten(x, 1), lambda x: x.reshape(x.shape[0], -1), [((2, 3, 4),)]),
    Case("concat0", lambda a, b: gc.concat([a, b], 0), lambda a, b: np.concatenate([a, b], 0),
         [((2, 3), (4, 3)), ((0, 3), (1, 3))], F + I),
    Case("concat_neg", lambda a, b, c: gc.concat([a, b, c], -1), lambda a, b, c: np.concatenate([a, b, c], -1),
         [((2, 3), (2, 1), (2, 0))], F, in_dtypes=lambda d: (d, "int32", d)),
    Case("stack", lambda a, b: gc.stack([a, b], 1), lambda a, b: np.stack([a, b], 1),
         [((2, 3), (2, 3)), ((0, 3), (0, 3))], F + I),
    Case("stack_scalars", lambda a, b, c: gc.stack([a, b, c]), lambda a, b, c: np.stack([a, b, c]),
         [((), (), ())], F),
    Case("pad", lambda x: gc.pad(x, ((1, 2), (0, 1)), value=-1.5), lambda x: np.pad(x, ((1, 2), (0, 1)),
                                                                                      constant_values=-1.5),
         [((2, 3),), ((0, 1),)]),
    Case("pad_int", lambda x: gc.pad(x, 2), lambda x: np.pad(x, 2), [((2, 3),), ((3,),)], I),
    Case("take", lambda x, i: gc.take(x, i, axis=1), lambda x, i: np.take(x, i, axis=1),
         [((3, 4, 5), (2, 3)), ((2, 4), ()), ((1, 4), (0,))], F + I, ("any", "idx:4"),
         in_dtypes=lambda d: (d, "int64")),
    Case("take_flat", lambda x, i: gc.take(x, i), lambda x, i: np.take(x, i), [((3, 4), (5,))], F,
         ("any", "idx:12"), in_dtypes=lambda d: (d, "int32")),
    Case("take_const_negative", lambda x: gc.take(x, [-1, 0, -2], axis=0), lambda x: np.take(x, [-1, 0, -2], 0),
         [((3, 2),)]),
    Case("one_hot", lambda i: gc.one_hot(i, 5), lambda i: np.eye(5, dtype=np.float32)[i], [((4,),), ((2, 3),),
                                                                                         ((0,),)],
         I, ("idx:5",)),
    Case("size_of", lambda x: x.sum() / gc.size_of(x, (0, 1)), lambda x: np.float32(x.sum() / x.size),
         [((3, 4),)], ["float32"]),
]

KEYS = [1, -1, slice(1, 3), slice(None, None, 2), slice(None, None, -1), (1, 2), (Ellipsis, 1),
        (None, 1), (slice(None), None, slice(2, None)), [0, 2], ([0, 2], 1), (1, [0, 3]),
        (slice(None), [0, 1], [1, 2]), ([0, 1], slice(None), [2, 3]), np.array([[0, 1], [2, 0]]),
        (Ellipsis, [1, -1]), (0, Ellipsis, None), (slice(None), slice(None), -1),
        (slice(-2, None), [[0], [3]], slice(None, 1)), ([2, -3], [[1], [0]]), (slice(10, 20),),
        (None, Ellipsis, None), ([1, 0], None, [0, 2]), ([[0, 1]], 2, slice(None, None, 3))]
for _k, _key in enumerate(KEYS):
    CASES.append(Case(f"getitem{_k}", lambda x, key=_key: x[key], lambda x, key=_key: x[key], X3, F + I))
CASES.append(Case("getitem_node_index", lambda x, i: x[:, i], lambda x, i: x[:, i], [((3, 4), (2, 2))], F,
                  ("any", "idx:4"), in_dtypes=lambda d: (d, "int64")))
CASES.append(Case("getitem_two_node_indices", lambda x, i, j: x[i, :, j], lambda x, i, j: x[i, :, j],
                  [((3, 4, 5), (2,), (2,))], F, ("any", "idx:3", "idx:3"),
                  in_dtypes=lambda d: (d, "int64", "int32")))

# ---------------------------------------------------------------- windows: convolution, pooling
# references by their definitions, element by element (the ops are built from im2col + GEMM)
def _window(x, kernel, stride, padding, dilation, fill):
    """windows[n, c, oh, ow, p, q] of x padded with fill."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), fill, x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    out = np.empty((n, c, oh, ow, kh, kw), x.dtype)
    for a in range(oh):
        for b in range(ow):
            for p in range(kh):
                for q in range(kw):
                    out[:, :, a, b, p, q] = xp[:, :, a * sh + p * dh, b * sw + q * dw]
    return out


def _conv_ref(x, w, stride, padding, dilation, groups=1):
    """Group by group: output channels [i*O/g, (i+1)*O/g) read input channels [i*C/g, (i+1)*C/g)."""
    win = _window(x, w.shape[2:], stride, padding, dilation, 0).astype(np.float64)
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    return np.concatenate([np.einsum("ncabpq,ocpq->noab", win[:, i * cg:(i + 1) * cg],
                                     w[i * og:(i + 1) * og].astype(np.float64)) for i in range(groups)],
                          axis=1).astype(x.dtype)


def _fold_ref(cols, size, kernel, stride, padding, dilation):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    h, w = size
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), cols.dtype)
    cc = cols.reshape(n, c, kh, kw, oh, ow)
    for a in range(oh):
        for b in range(ow):
            for p in range(kh):
                for q in range(kw):
                    out[:, :, a * sh + p * dh, b * sw + q * dw] += cc[:, :, p, q, a, b]
    return out[:, :, ph:ph + h, pw:pw + w]


def _max_pool_grad_ref(x, g, kernel, stride, padding):
    """Each window's cotangent split among its maxima, added back onto their pixels."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    win = _window(x, kernel, stride, padding, (1, 1), -np.inf)
    hit = (win == win.max(axis=(4, 5), keepdims=True)).astype(x.dtype)
    share = g[..., None, None] * hit / hit.sum(axis=(4, 5), keepdims=True)
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    for a in range(win.shape[2]):
        for b in range(win.shape[3]):
            out[:, :, a * sh:a * sh + kh, b * sw:b * sw + kw] += share[:, :, a, b]
    return out[:, :, ph:ph + h, pw:pw + w]


def _max_pool_grad(x, g, kernel, stride, padding):
    return gc.autodiff.grad(gc.sum(gc.max_pool2d(x, kernel, stride, padding) * g), [x])[0]


_W = np.random.default_rng(7).normal(size=(4, 3, 3, 2)).astype(np.float32)
_WG = np.random.default_rng(8).normal(size=(6, 2, 3, 2)).astype(np.float32)
CASES += [
    Case("conv2d", lambda x: gc.conv2d(x, _W.astype(x.dtype)),
         lambda x: _conv_ref(x, _W.astype(x.dtype), (1, 1), (0, 0), (1, 1)), [((2, 3, 6, 5),), ((1, 3, 3, 2),)],
         dynamic=True),
    Case("conv2d_stride_pad_dilation", lambda x: gc.conv2d(x, _W.astype(x.dtype), stride=(2, 1), padding=(1, 2),
                                                           dilation=(1, 2)),
         lambda x: _conv_ref(x, _W.astype(x.dtype), (2, 1), (1, 2), (1, 2)), [((2, 3, 7, 6),)]),
    Case("conv2d_input_and_weight", lambda x, w: gc.conv2d(x, w, stride=2, padding=1),
         lambda x, w: _conv_ref(x, w, (2, 2), (1, 1), (1, 1)), [((2, 3, 5, 6), (4, 3, 3, 3))]),
    Case("conv2d_groups", lambda x: gc.conv2d(x, _WG.astype(x.dtype), padding=1, groups=2),  # 2 of 2 -> 3
         lambda x: _conv_ref(x, _WG.astype(x.dtype), (1, 1), (1, 1), (1, 1), 2), [((2, 4, 4, 5),)], dynamic=True),
    Case("conv2d_depthwise", lambda x, w: gc.conv2d(x, w, stride=(1, 2), padding=1, dilation=(2, 1), groups=3),
         lambda x, w: _conv_ref(x, w, (1, 2), (1, 1), (2, 1), 3), [((2, 3, 6, 5), (3, 1, 3, 3))]),
    Case("max_pool2d", lambda x: gc.max_pool2d(x, 3, 2, 1),
         lambda x: _window(x, (3, 3), (2, 2), (1, 1), (1, 1), -np.inf).max(axis=(4, 5)), [((2, 3, 7, 6),)],
         dynamic=True),
    Case("max_pool2d_grad", lambda x, g: _max_pool_grad(x, g, 3, 2, 1),
         lambda x, g: _max_pool_grad_ref(x, g, (3, 3), (2, 2), (1, 1)), [((2, 3, 7, 6), (2, 3, 4, 3))], dynamic=True),
    Case("max_pool2d_grad_windows_apart", lambda x, g: _max_pool_grad(x, g, (2, 3), None, 0),
         lambda x, g: _max_pool_grad_ref(x, g, (2, 3), (2, 3), (0, 0)), [((2, 2, 4, 7), (2, 2, 2, 2))]),
    Case("avg_pool2d", lambda x: gc.avg_pool2d(x, (2, 3), 1, (1, 0)),
         lambda x: _window(x, (2, 3), (1, 1), (1, 0), (1, 1), 0).mean(axis=(4, 5)), [((2, 2, 5, 5),)]),
    Case("unfold", lambda x: gc.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
         lambda x: np.moveaxis(_window(x, (2, 3), (1, 2), (1, 1), (2, 1), 0), (2, 3), (4, 5)).reshape(
             x.shape[0], -1, _window(x, (2, 3), (1, 2), (1, 1), (2, 1), 0).shape[2] *
             _window(x, (2, 3), (1, 2), (1, 1), (2, 1), 0).shape[3]), [((2, 3, 5, 6),)], F + I),
    Case("fold", lambda c: gc.fold(c, (5, 4), (2, 3), padding=(1, 0), stride=(2, 1)),
         lambda c: _fold_ref(c, (5, 4), (2, 3), (2, 1), (1, 0), (1, 1)), [((2, 12, 6),)], F + I, dynamic=True),
]

# ---------------------------------------------------------------- recurrent cells (composites)
def _sig(a):
    return 1 / (1 + np.exp(-a))


def _lstm_ref(x, h, c, W, U, b):
    z = x @ W + h @ U + b
    H = z.shape[-1] // 4
    i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
    c2 = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c2) + 0.5 * c2


CASES += [
    Case("rnn_step", lambda x, h, W, U, b: gc.nn.rnn_step(x, h, W, U, b),
         lambda x, h, W, U, b: np.tanh(x @ W + h @ U + b), [((3, 4), (3, 5), (4, 5), (5, 5), (5,))],
         domain=("small",) * 5),
    # both halves of the new state in one output, so the gradient test reaches c' too
    Case("lstm_step", lambda x, h, c, W, U, b: (lambda hc: hc[0] + 0.5 * hc[1])(gc.nn.lstm_step(x, h, c, W, U, b)),
         _lstm_ref, [((3, 4), (3, 2), (3, 2), (4, 8), (2, 8), (8,))], domain=("small",) * 6),
]

# ---------------------------------------------------------------- scan (a loop node; T = 0 and 1 too)
def _scan_rnn_ref(xs, h, W):
    total = np.zeros_like(h)
    for x in xs:
        total = total + h * x
        h = np.tanh(h @ W + x)
    return total + h


def _scan_rev_ref(xs):
    s, m, ys = np.zeros(xs.shape[1:], xs.dtype), np.ones(xs.shape[1:], xs.dtype), []
    for x in xs[::-1]:
        ys.append(s * m)
        s, m = s + x, m * xs.dtype.type(0.5) + np.sin(x)
    return np.stack(ys[::-1] or [np.zeros_like(s)])[: len(xs)].sum(0) + s + m


CASES += [
    Case("scan_rnn", lambda xs, h, W: (lambda r: gc.sum(r[1], 0) + r[0])(
        gc.scan(lambda c, x: (gc.tanh(c @ W + x), c * x), h, xs)),
        _scan_rnn_ref, [((4, 3, 2), (3, 2), (2, 2)), ((1, 3, 2), (3, 2), (2, 2)), ((0, 3, 2), (3, 2), (2, 2))],
        domain=("small",) * 3),
    Case("scan_reverse", lambda xs: (lambda r: gc.sum(r[1], 0) + r[0][0] + r[0][1])(
        gc.scan(lambda c, x: ((c[0] + x, c[1] * 0.5 + gc.sin(x)), c[0] * c[1]),
                (gc.zeros_like(xs[0]), gc.zeros_like(xs[0]) + 1.0), xs, reverse=True)),
        _scan_rev_ref, [((5, 3),), ((1, 2),)], domain=("small",)),
]

# ---------------------------------------------------------------- matmul
CASES.append(Case("matmul", lambda a, b: a @ b, np.matmul,
                  [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                   ((2, 1, 3, 4), (5, 4, 2)), ((0, 4), (4, 3)), ((3, 0), (0, 2))], F + I))
CASES.append(Case("matmul_mixed", gc.matmul, np.matmul, [((3, 4), (4, 2))], F,
                  in_dtypes=lambda d: ("float32", d)))
CASES.append(Case("rmatmul_constant", lambda x: np.ones((2, 3), np.float32) @ x,
                  lambda x: np.ones((2, 3), np.float32) @ x, [((3, 4),)]))


# ---------------------------------------------------------------- nn functions
def _log_softmax(x, axis=-1):
    x64 = x.astype(np.float64)
    m = x64.max(axis=axis, keepdims=True, initial=-np.inf)
    return (x64 - m - np.log(np.exp(x64 - m).sum(axis=axis, keepdims=True))).astype(x.dtype)


def _ce_int(z, y, reduction="mean"):
    lp = _log_softmax(z).astype(np.float64)
    loss = -lp[np.arange(len(y)), y]
    return np.asarray({"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]).astype(z.dtype)


def _large(x):
    return x * 300  # logits large enough that a naive exp overflows float32


CASES += [
    Case("softmax", gc.softmax, lambda x: np.exp(_log_softmax(x)), [((4, 5),), ((3,),), ((2, 0),)]),
    Case("softmax_large", lambda x: gc.softmax(_large(x), 0), lambda x: np.exp(_log_softmax(_large(x), 0)),
         [((4, 5),)]),
    Case("log_softmax", gc.log_softmax, _log_softmax, [((4, 5),), ((3,),)]),
    Case("log_softmax_large", lambda x: gc.log_softmax(_large(x)), lambda x: _log_softmax(_large(x)),
         [((4, 5),)], scale=lambda x: np.abs(_large(x)).max()),
    Case("bce_logits", gc.binary_cross_entropy_with_logits,
         lambda z, t: np.mean(np.logaddexp(0, z.astype(np.float64)) - t * z).astype(z.dtype),
         [((6,), (6,)), ((3, 2), (3, 2))], F, ("any", "unit")),
    Case("bce_logits_large", lambda z, t: gc.binary_cross_entropy_with_logits(_large(z), t, "none"),
         lambda z, t: (np.logaddexp(0, _large(z).astype(np.float64)) - t * _large(z)).astype(z.dtype),
         [((6,), (6,))], F, ("any", "bool"), in_dtypes=lambda d: (d, d)),
    Case("bce", gc.binary_cross_entropy,
         lambda p, t: np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))).astype(p.dtype),
         [((6,), (6,)), ((3, 2), (3, 2))], F, ("unit", "unit")),
    Case("bce_saturated", lambda p, t: gc.binary_cross_entropy(gc.clip(p * 0, 0, 0), t, "sum"),
         lambda p, t: np.asarray(np.sum(t * 100.0), p.dtype), [((5,), (5,))], F, ("unit", "bool"),
         in_dtypes=lambda d: (d, d)),
    Case("mse", gc.mse, lambda a, b: np.mean((a - b) ** 2), [((4, 3), (4, 3)), ((5,), ())]),
    Case("mse_sum", lambda a, b: gc.mse(a, b, "sum"), lambda a, b: np.sum((a - b) ** 2), [((4, 3), (4, 3))]),
    Case("l1", gc.l1_loss, lambda a, b: np.mean(np.abs(a - b)), [((4, 3), (4, 3))]),
    Case("l1_none", lambda a, b: gc.l1_loss(a, b, "none"), lambda a, b: np.abs(a - b), [((4, 3), (3,))]),
    Case("hinge", lambda s, t: gc.hinge(s, 2 * t - 1), lambda s, t: np.mean(np.maximum(0, 1 - (2 * t - 1) * s)),
         [((7,), (7,))], F, ("any", "bool"), in_dtypes=lambda d: (d, d)),
]
for _red in ("mean", "sum", "none"):
    CASES.append(Case(f"cross_entropy_int_{_red}", lambda z, y, r=_red: gc.cross_entropy(z, y, r),
                      lambda z, y, r=_red: _ce_int(z, y, r), [((6, 5), (6,)), ((1, 3), (1,))], F,
                      ("any", "idx:3"), in_dtypes=lambda d: (d, "int64")))
CASES += [
    Case("cross_entropy_probs", gc.cross_entropy,
         lambda z, p: np.mean(-(p * _log_softmax(z).astype(np.float64)).sum(-1)).astype(z.dtype),
         [((6, 5), (6, 5))], F, ("any", "unit")),
    Case("cross_entropy_axis1", lambda z, y: gc.cross_entropy(z, y, "none", axis=1),
         lambda z, y: -np.take_along_axis(_log_softmax(z, 1), y[:, None, :], 1)[:, 0, :],
         [((2, 4, 3), (2, 3))], F, ("any", "idx:4"), in_dtypes=lambda d: (d, "int32")),
    Case("cross_entropy_large", lambda z, y: gc.cross_entropy(_large(z), y),
         lambda z, y: _ce_int(_large(z), y), [((5, 4), (5,))], F, ("any", "idx:4"),
         in_dtypes=lambda d: (d, "int64"), scale=lambda z, y: np.abs(_large(z)).max()),
    Case("bce_logits_large_mean", lambda z, t: gc.binary_cross_entropy_with_logits(_large(z), t),
         lambda z, t: np.mean(np.logaddexp(0, _large(z).astype(np.float64)) - t * _large(z)).astype(z.dtype),
         [((6,), (6,))], F, ("any", "bool"), in_dtypes=lambda d: (d, d), scale=lambda z, t: np.abs(_large(z)).max()),
]


# ---------------------------------------------------------------- adjoints of movement ops (via vjp)
def _unslice_ref(x, u):
    out = np.zeros_like(x)
    out[::2, 1:] = u
    return out


def _scatter_ref(x, i, u):
    out = np.zeros_like(x)
    np.add.at(out, (slice(None), i), u)
    return out


CASES += [
    Case("vjp_slice", lambda x, u: gc.vjp(x[::2, 1:], x, u), _unslice_ref, [((3, 4), (2, 3)), ((1, 2), (1, 1))]),
    Case("vjp_take", lambda x, i, u: gc.vjp(gc.take(x, i, 1), x, u), _scatter_ref,
         [((3, 4), (2, 2), (3, 2, 2)), ((2, 3), (5,), (2, 5))], F, ("any", "idx:3", "any"),
         in_dtypes=lambda d: (d, "int64", d)),
    Case("vjp_take_dynamic", lambda x, i, u: gc.vjp(gc.take(x, i, 1), x, u), _scatter_ref,
         [((3, 4), (6,), (3, 6))], F, ("any", "idx:4", "any"), in_dtypes=lambda d: (d, "int64", d),
         dynamic=True),
]

# ---------------------------------------------------------------- run-time (None) batch dims
CASES += [
    Case("dyn_mean", lambda x: x.mean(0) + x.mean(), lambda x: x.mean(0) + x.mean(), [((5, 3),), ((0, 2),)],
         F + I, dynamic=True),
    Case("dyn_var", lambda x: gc.var(x, 0, ddof=1), lambda x: np.var(x, 0, ddof=1), [((5, 3),)], dynamic=True),
    Case("dyn_cross_entropy", gc.cross_entropy, lambda z, y: _ce_int(z, y), [((6, 5), (6,))], F,
         ("any", "idx:5"), in_dtypes=lambda d: (d, "int64"), dynamic=True),
    Case("dyn_reshape", lambda x: x.reshape(-1, 2, 2), lambda x: x.reshape(-1, 2, 2), [((3, 4),)],
         dynamic=True),
    Case("dyn_squeeze_two_none", lambda x: gc.squeeze(gc.transpose(x, (1, 0, 2))[None], 1),
         lambda x: np.squeeze(np.transpose(x, (1, 0, 2))[None], 1), [((3, 1, 4),)], dynamic=True),
    Case("dyn_expand_dims", lambda x: gc.expand_dims(x, (0, 2)), lambda x: np.expand_dims(x, (0, 2)),
         [((3, 4),)], dynamic=True),
    Case("dyn_int_index", lambda x: x[-1], lambda x: x[-1], [((3, 4),)], dynamic=True),
    Case("dyn_getitem_mixed", lambda x: x[1:, None, [0, 2]], lambda x: x[1:, None, [0, 2]], [((3, 4),)],
         dynamic=True),
    Case("dyn_flatten", lambda x: gc.flatten(x, 1), lambda x: x.reshape(x.shape[0], -1), [((3, 2, 2),)],
         dynamic=True),
    Case("dyn_broadcast_matmul", lambda x, w: gc.relu(x @ w + 1.0), lambda x, w: np.maximum(x @ w + 1.0, 0),
         [((4, 3), (3, 2))], dynamic=True),
]


# ---------------------------------------------------------------- random numbers
def _uniform_ref(key, like):
    """The counter-based generator written with Python ints (an oracle independent of NumPy's uint64)."""
    m = (1 << 64) - 1
    out = []
    for i in range(like.size):
        z = ((int(key) & m) * 0xD1B54A32D192ED03 + (i + 1) * 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 33)) * 0xFF51AFD7ED558CCD) & m
        z = ((z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53) & m
        z ^= z >> 33
        out.append((z >> 40) * 2.0 ** -24 if like.dtype == np.float32 else (z >> 11) * 2.0 ** -53)
    return np.array(out, like.dtype).reshape(like.shape)


CASES += [
    # the key is a random int in [-4, 4): negative keys wrap as uint64 the same way everywhere
    Case("random_uniform", gc.random_uniform, _uniform_ref, [((), (3, 5)), ((), ()), ((), (0, 2)), ((), (70,))],
         F, in_dtypes=lambda d: ("int64", d)),
    Case("random_uniform_fused", lambda k, x: gc.where(gc.random_uniform(k, x) < 0.5, x, 0) * 3,
         lambda k, x: np.where(_uniform_ref(k, x) < 0.5, x, 0) * 3, [((), (4, 3))], F,
         in_dtypes=lambda d: ("int64", d), dynamic=False),
]

def tolerance(dtype, scale: float = 1.0):
    """float32: 2e-5 relative; absolute 2e-6, or a few ulps of `scale` for outputs that are
    differences of values of that size (x - logsumexp(x) for logits in the hundreds)."""
    eps = np.finfo(dtype).eps
    if np.dtype(dtype) == np.float32:
        return dict(rtol=2e-5, atol=max(2e-6, 8 * eps * scale))
    return dict(rtol=1e-12, atol=max(1e-12, 8 * eps * scale))


# ---------------------------------------------------------------- transformer building blocks (issue 24)
def _ln_ref(x, w=None, b=None, axis=-1, eps=1e-5, rms=False):
    x64 = x.astype(np.float64)
    axes = tuple(range(axis % x.ndim, x.ndim))
    if rms:
        y = x64 / np.sqrt((x64 * x64).mean(axes, keepdims=True) + eps)
    else:
        d = x64 - x64.mean(axes, keepdims=True)
        y = d / np.sqrt((d * d).mean(axes, keepdims=True) + eps)
    y = y if w is None else y * w
    y = y if b is None else y + b
    return y.astype(x.dtype)


def _softmax64(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def _sdpa_ref(q, k, v, mask=None, causal=False, scale=None):
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    s = q64 @ np.swapaxes(k64, -1, -2) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    keep = np.ones(s.shape[-2:], bool)
    if causal:
        keep = np.tril(keep)
    if mask is not None and mask.dtype == np.bool_:
        keep = keep & mask
    elif mask is not None:
        s = s + mask
    s = np.where(keep, s, -np.inf)
    return (_softmax64(s) @ v64).astype(q.dtype)


def _normalize_grad(x, g, center):
    from graphc.ir import make_node
    from graphc.ops import REGISTRY
    return make_node(REGISTRY["normalize_grad"], (x, g), {"axes": (x.ndim - 1,), "eps": 1e-5, "center": center})


def _norm_grad_ref(x, g, center):
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    d = x64 - x64.mean(-1, keepdims=True) if center else x64
    rs = 1 / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5)
    y = d * rs
    inner = g64 - y * (g64 * y).mean(-1, keepdims=True) - (g64.mean(-1, keepdims=True) if center else 0)
    return (rs * inner).astype(x.dtype)


def _causal_softmax(x, diag, scale):
    from graphc.ir import make_node
    from graphc.ops import REGISTRY
    y = make_node(REGISTRY["causal_log_softmax"], (x,), {"axes": (x.ndim - 1,), "scale": scale, "diag": diag})
    return gc.exp(y)  # softmax: finite where log_softmax is -inf above the diagonal


def _causal_softmax_ref(x, diag, scale):
    keep = np.arange(x.shape[-1])[None, :] <= np.arange(x.shape[-2])[:, None] + diag
    return _softmax64(np.where(keep, x.astype(np.float64) * scale, -np.inf)).astype(x.dtype)


_KEEP = np.random.default_rng(3).random((4, 5)) < 0.7
_KEEP[:, 0] = True  # every query attends somewhere
_BIAS = np.random.default_rng(4).normal(size=(4, 5)).astype(np.float32)
unary("silu", gc.silu, _f64(lambda x: x / (1 + np.exp(-x))))
CASES += [
    Case("layer_norm", gc.layer_norm, _ln_ref, [((3, 5),), ((2, 3, 4),)], dynamic=True),
    Case("layer_norm_affine_axis", lambda x, w, b: gc.layer_norm(x, w, b, axis=-2),
         lambda x, w, b: _ln_ref(x, w, b, axis=-2), [((2, 3, 4), (3, 4), (3, 4))]),
    Case("rms_norm", lambda x, w: gc.rms_norm(x, w), lambda x, w: _ln_ref(x, w, eps=1e-6, rms=True),
         [((3, 5), (5,)), ((2, 2, 4), (4,))]),
    # the backward row kernel itself (its own gradient: through the same formula in primitives)
    Case("normalize_grad", lambda x, g: _normalize_grad(x, g, True), lambda x, g: _norm_grad_ref(x, g, True),
         [((3, 5), (3, 5)), ((2, 3, 4), (2, 3, 4))], dynamic=True),
    Case("normalize_grad_rms", lambda x, g: _normalize_grad(x, g, False), lambda x, g: _norm_grad_ref(x, g, False),
         [((4, 6), (4, 6))]),
    # attention's causal softmax as graphc.passes.masks folds it (mask from indices, scale inside)
    Case("causal_softmax", lambda x: _causal_softmax(x, 0, 0.5), lambda x: _causal_softmax_ref(x, 0, 0.5),
         [((4, 4),), ((2, 3, 5),)]),
    Case("causal_softmax_diag", lambda x: _causal_softmax(x, 2, 1.0), lambda x: _causal_softmax_ref(x, 2, 1.0),
         [((2, 5, 3),)], dynamic=True),
    Case("sdpa", gc.scaled_dot_product_attention, _sdpa_ref, [((4, 3), (5, 3), (5, 2)), ((2, 4, 3), (2, 5, 3),
                                                                                          (2, 5, 2))]),
    Case("sdpa_causal_scaled", lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, causal=True, scale=0.3),
         lambda q, k, v: _sdpa_ref(q, k, v, causal=True, scale=0.3), [((2, 1, 4, 3), (2, 1, 4, 3), (2, 1, 4, 2))]),
    Case("sdpa_bool_mask", lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, mask=_KEEP),
         lambda q, k, v: _sdpa_ref(q, k, v, mask=_KEEP), [((3, 4, 3), (3, 5, 3), (3, 5, 2))]),
    Case("sdpa_float_mask_causal", lambda q, k, v: gc.scaled_dot_product_attention(q, k, v, _BIAS, causal=True),
         lambda q, k, v: _sdpa_ref(q, k, v, _BIAS.astype(q.dtype), causal=True),
         [((4, 3), (5, 3), (5, 2))]),
    Case("tril_triu", lambda x: gc.tril(x) * 2 + gc.triu(x, 1) * 3 - gc.tril(x, -2),
         lambda x: np.tril(x) * 2 + np.triu(x, 1) * 3 - np.tril(x, -2), [((4, 5),), ((2, 3, 3),)], F + I),
    Case("split", lambda x: gc.concat([p * (i + 1) for i, p in enumerate(gc.split(x, 2, axis=1))], 1),
         lambda x: np.concatenate([p * (i + 1) for i, p in enumerate(np.split(x, [2, 4], axis=1))], 1),
         [((3, 5),)], F + I),
    Case("split_sizes", lambda x: gc.split(x, [1, 0, 3])[2] - gc.split(x, [1, 0, 3])[0],
         lambda x: x[1:] - x[:1], [((4, 2),)]),
    Case("einsum_attention", lambda q, k: gc.einsum("...ld,...sd->...ls", q, k),
         lambda q, k: np.einsum("...ld,...sd->...ls", q, k), [((2, 3, 4), (2, 5, 4)), ((3, 4), (2, 5, 4))]),
    Case("einsum_bilinear", lambda x, w, y: gc.einsum("bi,oij,bj->bo", x, w, y),
         lambda x, w, y: np.einsum("bi,oij,bj->bo", x, w, y), [((3, 2), (4, 2, 5), (3, 5))]),
    Case("einsum_sum_outer", lambda a, b: gc.einsum("ij,k", a, b), lambda a, b: np.einsum("ij,k", a, b),
         [((2, 3), (4,))]),
    Case("einsum_batch_dynamic", lambda x, w: gc.einsum("btc,cd->btd", x, w),
         lambda x, w: np.einsum("btc,cd->btd", x, w), [((2, 3, 4), (4, 5))], dynamic=True),
]

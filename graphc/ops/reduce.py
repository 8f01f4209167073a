"""Reductions over a sorted tuple of axes (attrs: axes, keepdims), and the run-time size of axes."""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import float_result, int64
from ..errors import ShapeError
from ..ir import make_node
from . import build
from .base import Op, fmt_shape, reduced_shape


def expand_back(node, v):
    """v (shaped like the reduction node) broadcast back to the reduced input's shape."""
    (x,) = node.inputs
    axes = node.attrs["axes"]
    if not node.attrs["keepdims"] and axes:
        v = build.expand_dims(v, axes)
    return build.broadcast_to(v, x.shape, like=x)


class Reduce(Op):
    kind = "reduction"
    arity = 1
    has_identity = True

    @classmethod
    def out_dtype(cls, dt):
        return dt

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        axes = attrs["axes"]
        if not cls.has_identity and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"{cls.name} over a zero-size axis of shape {fmt_shape(x.shape)} "
                             f"(axes {axes}) has no identity")
        return reduced_shape(x.shape, axes, attrs["keepdims"]), cls.out_dtype(x.dtype)


def _sum_dtype(dt):
    # NumPy accumulates bools and small ints in the platform int (int64 here)
    return dt if dt.kind == "f" else int64


class Sum(Reduce):
    name = "sum"
    loop_reduction = True
    out_dtype = classmethod(lambda cls, dt: _sum_dtype(dt))

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.sum(x, axis=axes, keepdims=keepdims, dtype=_sum_dtype(x.dtype))

    @classmethod
    def grad(cls, node, g):
        return (expand_back(node, g),)


class Prod(Reduce):
    name = "prod"
    loop_reduction = True
    out_dtype = classmethod(lambda cls, dt: _sum_dtype(dt))

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.prod(x, axis=axes, keepdims=keepdims, dtype=_sum_dtype(x.dtype))

    @classmethod
    def grad(cls, node, g):
        # d prod / d x_i = product of the others, exact with zeros: with no zero it is prod / x_i;
        # with one zero only that entry gets the product of the non-zeros; with two, all get 0.
        (x,) = node.inputs
        axes = node.attrs["axes"]
        zero = x == 0
        nonzero = build.where(zero, 1, x)
        p_nz = build.prod(nonzero, axes, keepdims=True)
        n_zero = build.sum(build.cast(zero, "int32"), axes, keepdims=True)
        others = build.where(n_zero == 0, p_nz / nonzero, build.where(build.logical_and(n_zero == 1, zero), p_nz, 0))
        return (expand_back(node, g) * others,)


class ExtremumReduce(Reduce):
    """max/min: the gradient goes to the entries equal to the result; ties share it equally."""

    loop_reduction = True
    has_identity = False

    @classmethod
    def grad(cls, node, g):
        (x,) = node.inputs
        hit = build.cast(x == expand_back(node, node), x.dtype)
        count = build.sum(hit, node.attrs["axes"], keepdims=True)
        return (expand_back(node, g) * hit / build.broadcast_to(count, x.shape, like=x),)


class Max(ExtremumReduce):
    name = "max"

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.max(x, axis=axes, keepdims=keepdims)


class Min(ExtremumReduce):
    name = "min"

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.min(x, axis=axes, keepdims=keepdims)


class LogSumExp(Reduce):
    """log(sum(exp(x))) over axes, computed around the max so large inputs do not overflow."""

    name = "logsumexp"
    row_reduction = True
    out_dtype = classmethod(lambda cls, dt: float_result(dt))

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        x = x.astype(float_result(x.dtype), copy=False)
        if x.size == 0 or any(x.shape[a] == 0 for a in axes):
            return np.full(reduced_shape(x.shape, axes, keepdims), -np.inf, x.dtype)
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axes)

    @classmethod
    def grad(cls, node, g):
        (x,) = node.inputs
        return (expand_back(node, g) * build.exp(x - expand_back(node, node)),)  # softmax


class RowMap(Op):
    """A primitive of a float x's shape computed row by row over trailing axes (statistics of the
    row, then one value per element): a "rows" kernel on numba, its epilogue fused in."""

    kind = "reduction"  # a row reduction, then one value per element
    arity = 1
    row_reduction = True

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        if x.dtype.kind != "f":
            from ..errors import DTypeError
            raise DTypeError(f"{cls.name} needs floats, got {x.dtype}")
        return x.shape, x.dtype


class LogSoftmax(RowMap):
    """x - max - log(sum(exp(x - max))) over axes (attrs axes; the output has x's shape).

    A primitive, not x - logsumexp(x): that subtraction of two large numbers loses what they differ
    by (logits of 1e6 in float32: 2.4375 for 2.4076). A row with a NaN or a +-inf max is all NaN, as
    the formula gives in NumPy."""

    name = "log_softmax"

    @classmethod
    def impl(cls, x, *, axes):
        if x.size == 0:
            return x.copy()
        d = x - np.max(x, axis=axes, keepdims=True)
        return d - np.log(np.sum(np.exp(d), axis=axes, keepdims=True))

    @classmethod
    def grad(cls, node, g):
        axes = node.attrs["axes"]
        return (g - build.exp(node) * build.sum(g, axes, keepdims=True),)


def causal_keep(rows: int, cols: int, diag: int) -> np.ndarray:
    """The (rows, cols) bool mask of causal_log_softmax: key j kept for query i when j <= i + diag."""
    return np.arange(cols)[None, :] <= np.arange(rows)[:, None] + diag


class CausalLogSoftmax(RowMap):
    """log_softmax over the last axis of where(j <= i + diag, x * scale, -inf), i the index along
    the second-last axis, j along the last (attrs axes = (last,), scale, diag): attention's causal
    mask and score scale folded into the row primitive, so a backend computes the mask from its loop
    indices and reads x once (no (L, S) mask array, no scaled copy). The pass graphc.passes.masks
    builds it from log_softmax(where(triangle, s * c, -inf)); a row with no kept key is NaN, as
    there. Its derivative is that of composite(), the same formula in primitives."""

    name = "causal_log_softmax"
    composite_grad = True

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        if x.ndim < 2 or tuple(attrs["axes"]) != (x.ndim - 1,) or None in x.shape[-2:]:
            raise ShapeError(f"causal_log_softmax: x {fmt_shape(x.shape)} needs known last two dims, "
                             f"over the last axis (axes {attrs['axes']})")
        return super().infer(inputs, attrs)

    @classmethod
    def impl(cls, x, *, axes, scale, diag):
        keep = causal_keep(x.shape[-2], x.shape[-1], diag)
        s = np.where(keep, x * x.dtype.type(scale), x.dtype.type(-np.inf)).astype(x.dtype, copy=False)
        return LogSoftmax.impl(s, axes=axes)

    @classmethod
    def composite(cls, node):
        """The same value built from primitives: where(triangle, x * scale, -inf), log_softmax."""
        (x,) = node.inputs
        keep = build.constant(causal_keep(x.shape[-2], x.shape[-1], node.attrs["diag"]))
        s = build.where(keep, build.mul(x, node.attrs["scale"]), build.constant(np.asarray(-np.inf, x.dtype)))
        return build.log_softmax(s, x.ndim - 1)


class ArgReduce(Op):
    """argmax/argmin along one axis (attrs axis: int or None for the flattened tensor)."""

    kind = "reduction"
    arity = 1
    fn = None
    differentiable = False  # integer positions

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        axis, keepdims = attrs["axis"], attrs["keepdims"]
        axes = tuple(range(x.ndim)) if axis is None else (axis,)
        if any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"{cls.name} of an empty axis of shape {fmt_shape(x.shape)}")
        return reduced_shape(x.shape, axes, keepdims), int64

    @classmethod
    def impl(cls, x, *, axis, keepdims):
        return cls.fn(x, axis=axis, keepdims=keepdims)


class ArgMax(ArgReduce):
    name = "argmax"
    fn = staticmethod(np.argmax)


class ArgMin(ArgReduce):
    name = "argmin"
    fn = staticmethod(np.argmin)


class DimSize(Op):
    """The number of elements along `axes` of x, known at run time (for mean over a None batch)."""

    name = "dimsize"
    kind = "movement"
    arity = 1
    differentiable = False  # a size, not a function of x's values

    @classmethod
    def infer(cls, inputs, attrs):
        return (), attrs["dtype"]

    @classmethod
    def impl(cls, x, *, axes, dtype):
        return np.asarray(math.prod(x.shape[a] for a in axes), dtype=dtype)


class Normalize(RowMap):
    """Each row of x over trailing `axes` standardised: (x - mean) / sqrt(var + eps) (center) or
    x / sqrt(mean(x**2) + eps) (not center: RMS norm); attrs axes, eps, center; the output has x's
    shape and dtype. The statistics are x's dtype, the variance that of the deviations from the mean
    (two passes over the row), as ONNX's LayerNormalization and torch compute them. A primitive so
    that a backend computes each row in one kernel, the weight and bias fused after it (layer_norm
    and rms_norm build on it)."""

    name = "normalize"

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        axes = tuple(attrs["axes"])
        if not axes or axes != tuple(range(x.ndim - len(axes), x.ndim)):
            raise ShapeError(f"normalize: axes {axes} must be the trailing axes of {fmt_shape(x.shape)}")
        return super().infer(inputs, attrs)

    @classmethod
    def impl(cls, x, *, axes, eps, center):
        if x.size == 0:
            return x.copy()
        d = x - np.mean(x, axis=axes, keepdims=True) if center else x
        v = np.mean(d * d, axis=axes, keepdims=True)
        return (d / np.sqrt(v + x.dtype.type(eps))).astype(x.dtype, copy=False)

    @classmethod
    def grad(cls, node, g):
        """dx = normalize_grad(x, g): one row kernel, the statistics recomputed from x."""
        return (make_node(NormalizeGrad, (node.inputs[0], g), dict(node.attrs)),)


class NormalizeGrad(Op):
    """The cotangent of normalize's input x given g, its output's: per row rs (g - mean(g) - y
    mean(g y)) with y = (x - mean) rs, rs = 1 / sqrt(var + eps) (the mean(g) term only when
    centred); attrs those of normalize. A primitive so that the backward of a layer norm is one row
    kernel (the statistics recomputed, then two sums, then each element). Its own derivative is that
    of composite(), the same formula in primitives (graphc.autodiff differentiates it)."""

    name = "normalize_grad"
    kind = "reduction"
    arity = 2
    composite_grad = True

    @classmethod
    def infer(cls, inputs, attrs):
        x, g = inputs
        if x.shape != g.shape or x.dtype != g.dtype or x.dtype.kind != "f":
            raise ShapeError(f"normalize_grad: x {fmt_shape(x.shape)} {x.dtype} and its cotangent "
                             f"{fmt_shape(g.shape)} {g.dtype} must be floats of one shape and dtype")
        return x.shape, x.dtype

    @classmethod
    def impl(cls, x, g, *, axes, eps, center):
        if x.size == 0:
            return np.zeros_like(x)
        d = x - np.mean(x, axis=axes, keepdims=True) if center else x
        rs = 1 / np.sqrt(np.mean(d * d, axis=axes, keepdims=True) + x.dtype.type(eps))
        y = d * rs
        inner = g - y * np.mean(g * y, axis=axes, keepdims=True)
        if center:
            inner = inner - np.mean(g, axis=axes, keepdims=True)
        return (rs * inner).astype(x.dtype, copy=False)

    @classmethod
    def composite(cls, node):
        """The same value built from primitives (what its gradient differentiates)."""
        x, g = node.inputs
        axes, eps, center = node.attrs["axes"], node.attrs["eps"], node.attrs["center"]
        d = build.sub(x, build.mean(x, axes, keepdims=True)) if center else x
        rs = build.div(1.0, build.sqrt(build.add(build.mean(build.mul(d, d), axes, keepdims=True), eps)))
        y = build.mul(d, rs)
        inner = build.sub(g, build.mul(y, build.mean(build.mul(g, y), axes, keepdims=True)))
        if center:
            inner = build.sub(inner, build.mean(g, axes, keepdims=True))
        return build.mul(rs, inner)

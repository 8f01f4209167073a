"""Reductions over a sorted tuple of axes (attrs: axes, keepdims), and the run-time size of axes."""
from __future__ import annotations

import numpy as np

from ..dtypes import float_result, int64
from ..errors import ShapeError
from .base import Op, fmt_shape, reduced_shape


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
    out_dtype = classmethod(lambda cls, dt: _sum_dtype(dt))

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.sum(x, axis=axes, keepdims=keepdims, dtype=_sum_dtype(x.dtype))


class Prod(Reduce):
    name = "prod"
    out_dtype = classmethod(lambda cls, dt: _sum_dtype(dt))

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.prod(x, axis=axes, keepdims=keepdims, dtype=_sum_dtype(x.dtype))


class Max(Reduce):
    name = "max"
    has_identity = False

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.max(x, axis=axes, keepdims=keepdims)


class Min(Reduce):
    name = "min"
    has_identity = False

    @classmethod
    def impl(cls, x, *, axes, keepdims):
        return np.min(x, axis=axes, keepdims=keepdims)


class LogSumExp(Reduce):
    """log(sum(exp(x))) over axes, computed around the max so large inputs do not overflow."""

    name = "logsumexp"
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


class ArgReduce(Op):
    """argmax/argmin along one axis (attrs axis: int or None for the flattened tensor)."""

    kind = "reduction"
    arity = 1
    fn = None

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

    @classmethod
    def infer(cls, inputs, attrs):
        return (), attrs["dtype"]

    @classmethod
    def impl(cls, x, *, axes, dtype):
        return np.asarray(int(np.prod([x.shape[a] for a in axes], dtype=np.int64)), dtype=dtype)

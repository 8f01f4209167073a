"""Linear algebra primitives: matmul with NumPy's rules."""
from __future__ import annotations

import numpy as np

from ..dtypes import result_type
from ..errors import ShapeError
from .base import Op, broadcast_shapes, fmt_shape


def matmul_shape(a, b) -> tuple:
    """np.matmul's shape rule: 1-d operands are promoted and their dim dropped; batch dims broadcast."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul needs at least 1-d operands, got {fmt_shape(a.shape)} @ "
                         f"{fmt_shape(b.shape)} (use * for scalars)")
    sa = (1,) + a.shape if a.ndim == 1 else a.shape
    sb = b.shape + (1,) if b.ndim == 1 else b.shape
    k1, k2 = sa[-1], sb[-2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(f"matmul: inner dimensions differ: {fmt_shape(a.shape)} @ {fmt_shape(b.shape)}")
    try:
        batch = broadcast_shapes(sa[:-2], sb[:-2])
    except ShapeError:
        raise ShapeError(f"matmul: batch dimensions do not broadcast: {fmt_shape(a.shape)} @ "
                         f"{fmt_shape(b.shape)}") from None
    out = batch + ((sa[-2],) if a.ndim > 1 else ()) + ((sb[-1],) if b.ndim > 1 else ())
    return out


class MatMul(Op):
    """a @ b with NumPy's rules (vectors, matrices, broadcast batches)."""

    name = "matmul"
    kind = "matmul"
    arity = 2

    @classmethod
    def infer(cls, inputs, attrs):
        a, b = inputs
        return matmul_shape(a, b), result_type(a.dtype, b.dtype)

    @classmethod
    def impl(cls, a, b):
        return np.matmul(a, b)

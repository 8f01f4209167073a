"""Linear algebra primitives: matmul with NumPy's rules."""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from . import build
from .base import Op, broadcast_shapes, check_run_time_broadcast, fmt_shape, swap_last_two


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
        if a.dtype != b.dtype:
            raise DTypeError(f"matmul operands must have one dtype, got {a.dtype} and {b.dtype} "
                             "(gc.matmul casts them)")
        return matmul_shape(a, b), a.dtype

    @classmethod
    def check_run_time(cls, node, in_shapes, out_shape):
        batch = out_shape[:len(out_shape) - (node.inputs[0].ndim > 1) - (node.inputs[1].ndim > 1)]
        check_run_time_broadcast(node, [(x, x.shape[:-2], s[:-2]) for x, s in zip(node.inputs, in_shapes)
                                        if x.ndim > 2], batch)

    @classmethod
    def impl(cls, a, b):
        return np.matmul(a, b)

    @classmethod
    def grad(cls, node, g):
        # promote vectors as matmul does, take the matrix rule, drop the promoted axis again;
        # batch dims broadcast in the forward are summed back by the driver
        a, b = node.inputs
        A = build.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        B = build.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        G = g
        if a.ndim == 1:
            G = build.expand_dims(G, G.ndim - (0 if b.ndim == 1 else 1))
        if b.ndim == 1:
            G = build.expand_dims(G, G.ndim)
        ga = build.matmul(G, _swap(B))
        gb = build.matmul(_swap(A), G)
        if a.ndim == 1:
            ga = build.squeeze(ga, ga.ndim - 2)
        if b.ndim == 1:
            gb = build.squeeze(gb, gb.ndim - 1)
        return (ga, gb)


def _swap(x):
    """x with its last two axes swapped."""
    return build.transpose(x, swap_last_two(x.ndim))

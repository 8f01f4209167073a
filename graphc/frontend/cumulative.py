"""Along one axis: running sums and products, and the k largest or smallest entries."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, user_location
from ..ops.build import (
    add,
    as_node,
    cast,
    constant,
    equal,
    expand_dims,
    greater,
    less,
    logical_and,
    logical_or,
    matmul,
    mul,
    sum,
    transpose,
    where,
    zeros_like,
)
from .control import scan
from .indexing import getitem

__all__ = ["cumsum", "cumprod", "topk"]

TRIANGLE_MAX = 1024  # up to this length a running sum is one product with a triangle of ones


def _to_last(x: Node, axis: int) -> Node:
    return x if axis == x.ndim - 1 else transpose(x, tuple(a for a in range(x.ndim) if a != axis) + (axis,))


def _from_last(x: Node, axis: int) -> Node:
    if axis == x.ndim - 1:
        return x
    perm = list(range(x.ndim - 1))
    perm.insert(axis, x.ndim - 1)
    return transpose(x, tuple(perm))


def _axis(x: Node, axis: int, what: str) -> int:
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{what}: axis {axis} is out of range for {x.ndim}-d {x.label}", user_location())
    return axis % x.ndim


def cumsum(x, axis: int = 0, exclusive: bool = False, reverse: bool = False) -> Node:
    """Running sums along axis (np.cumsum; exclusive: each sum leaves out its own entry; reverse:
    from the end). Up to TRIANGLE_MAX entries one product with a triangle of ones (a GEMM), beyond
    that a gc.scan; differentiable either way."""
    x = as_node(x)
    axis = _axis(x, axis, "cumsum")
    n = x.shape[axis]
    if n is not None and n <= TRIANGLE_MAX and x.ndim:
        tri = np.triu(np.ones((n, n), x.dtype), 1 if exclusive else 0)
        return _from_last(matmul(_to_last(x, axis), constant(tri.T if reverse else tri)), axis)
    return _running(x, axis, add, 0, exclusive, reverse)


def cumprod(x, axis: int = 0, exclusive: bool = False, reverse: bool = False) -> Node:
    """Running products along axis (np.cumprod), as a gc.scan: exact with zeros and signs."""
    x = as_node(x)
    return _running(x, _axis(x, axis, "cumprod"), mul, 1, exclusive, reverse)


def _running(x, axis, op, identity, exclusive, reverse):
    front = transpose(x, (axis,) + tuple(a for a in range(x.ndim) if a != axis)) if axis else x
    start = cast(add(zeros_like(getitem(front, 0)), identity), x.dtype) if front.shape[0] != 0 else None
    if start is None:
        return x

    def step(acc, v):
        new = op(acc, v)
        return new, acc if exclusive else new
    _, ys = scan(step, start, front, reverse=reverse)
    if axis:
        perm = list(range(1, x.ndim))
        perm.insert(axis, 0)
        ys = transpose(ys, tuple(perm))
    return ys


def topk(x, k: int, axis: int = -1, largest: bool = True) -> tuple[Node, Node]:
    """(values, indices) of the k largest (or smallest) entries along axis, sorted, ties to the
    smaller index (torch.topk, ONNX TopK). Each entry's rank is the number ahead of it: an (n, n)
    comparison per row (memory n**2), then one-hot sums pick ranks 0..k-1. The values differentiate
    (to the entries picked)."""
    x = as_node(x)
    axis = _axis(x, axis, "topk")
    n = x.shape[axis]
    if n is None:
        raise ShapeError(f"topk over axis {axis} of {x.label}: its length must be known when the graph is built",
                         user_location())
    if not 0 <= k <= n:
        raise ShapeError(f"topk: k = {k} for an axis of {n}", user_location())
    moved = _to_last(x, axis)
    a, b = expand_dims(moved, moved.ndim), expand_dims(moved, moved.ndim - 1)  # [.., i, j]: x_i, x_j
    ahead = greater(b, a) if largest else less(b, a)
    earlier = constant(np.arange(n)[None, :] < np.arange(n)[:, None])  # j < i
    ahead = logical_or(ahead, logical_and(equal(b, a), earlier))
    rank = sum(cast(ahead, "int64"), -1)  # (..., n)
    pick = equal(expand_dims(rank, rank.ndim - 1), constant(np.arange(k).reshape(k, 1)))  # (..., k, n)
    row = expand_dims(moved, moved.ndim - 1)  # (..., 1, n)
    values = sum(where(pick, row, zeros_like(row)), -1)
    index = sum(where(pick, constant(np.broadcast_to(np.arange(n), (k, n))), 0), -1)
    return _from_last(values, axis), _from_last(index, axis)

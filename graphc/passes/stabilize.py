"""Numerically stabilizing rewrites: expressions that overflow or lose precision, replaced by stable
primitives."""
from __future__ import annotations

import numpy as np

from ..ir import Node
from ..ops import build


def _one_minus(n: Node):
    """x when n is 1 - x (built as add(1, neg(x)) or add(neg(x), 1)), else None."""
    if n.op.name != "add":
        return None
    a, b = n.inputs
    for c, other in ((a, b), (b, a)):
        if c.op.name == "constant" and c.data.size == 1 and float(c.data.reshape(())) == 1.0 \
                and other.op.name == "neg":
            return other.inputs[0]
    return None


def stabilize_node(n: Node):
    """log(exp(x)) -> x (so log(softmax) is log_softmax); log(sigmoid(x)) -> -softplus(-x);
    log(1 - sigmoid(x)) -> -softplus(x); log1p(exp(x)) -> softplus(x)."""
    if n.op.name == "log":
        (x,) = n.inputs
        if x.op.name == "exp":
            return _same(n, x.inputs[0])
        if x.op.name == "sigmoid":
            return _same(n, build.neg(build.softplus(build.neg(x.inputs[0]))))
        inner = _one_minus(x)
        if inner is not None and inner.op.name == "sigmoid":
            return _same(n, build.neg(build.softplus(inner.inputs[0])))
    if n.op.name == "log1p":
        (x,) = n.inputs
        if x.op.name == "exp":
            return _same(n, build.softplus(x.inputs[0]))
        if x.op.name == "neg" and x.inputs[0].op.name == "sigmoid":
            return _same(n, build.neg(build.softplus(x.inputs[0].inputs[0])))
    return None


def _same(n, r):
    if r.shape != n.shape:
        return None
    return r if r.dtype == n.dtype else build.cast(r, n.dtype) if np.can_cast(r.dtype, n.dtype) else None

"""Algebraic simplification and constant folding, as (pattern, function) tables.

Every replacement keeps the node's shape and dtype; a rule that would change either does nothing.
"""
from __future__ import annotations

import numpy as np

from ..ir import Node
from ..ops import build

FOLD_MAX_ELEMENTS = 1 << 16  # larger constant results stay computed at run time


def _const(n: Node):
    return n.data if n.op.name == "constant" else None


def _all(n: Node, value) -> bool:
    c = _const(n)
    return c is not None and c.size > 0 and bool(np.all(c == value))


def _keeps(n: Node, r: Node) -> Node | None:
    return r if r.shape == n.shape and r.dtype == n.dtype else None


def fold(n: Node):
    """op(constants) -> constant, for small results."""
    if n.is_leaf or not all(i.op.name == "constant" for i in n.inputs) or n.op.kind in ("random", "control"):
        return None
    if None in n.shape or int(np.prod(n.shape)) > FOLD_MAX_ELEMENTS:
        return None
    with np.errstate(all="ignore"):
        try:
            value = n.op.impl(*(i.data for i in n.inputs), **n.attrs)
        except Exception:  # noqa: BLE001 - an op that fails at run time keeps failing there, with its message
            return None
    return build.constant(np.asarray(value).astype(n.dtype, copy=False))


def _zero(n: Node) -> bool:
    """n is a symbolic zero: a zero constant broadcast to a shape (zeros_like, a switched-off
    gradient), possibly reshaped, cast or negated. Plain constants are left alone, so user
    arithmetic keeps NumPy's meaning (0 * inf is NaN); gradients treat these as exact zeros."""
    seen_broadcast = False
    while n.op.name in ("broadcast_to", "reshape", "cast", "neg"):
        seen_broadcast |= n.op.name == "broadcast_to"
        n = n.inputs[0]
    return seen_broadcast and _all(n, 0)


def _zeros_for(n: Node, *candidates):
    """Zeros of n's shape and dtype: a candidate zero node that has them, or a broadcast constant."""
    for z in candidates:
        if _zero(z) and z.shape == n.shape and z.dtype == n.dtype:
            return z
    if None in n.shape:
        return None
    return build.broadcast_to(build.constant(np.zeros((), n.dtype)), n.shape)


def _add(n):
    a, b = n.inputs
    for x, z in ((a, b), (b, a)):
        if _all(z, 0) or _zero(z):
            return _keeps(n, x)
    return None


def _zero_in(n):
    """A product with a symbolic zero is zeros."""
    return _zeros_for(n, *n.inputs) if any(_zero(i) for i in n.inputs) else None


def _mul(n):
    a, b = n.inputs
    if _zero(a) or _zero(b):
        return _zero_in(n)
    for x, c in ((a, b), (b, a)):
        if _all(c, 1):
            return _keeps(n, x)
        if _all(c, -1) and x.dtype != np.bool_:
            return _keeps(n, build.neg(x))
    return None


def _div(n):
    a, b = n.inputs
    if _zero(a):
        return _zeros_for(n, a)
    return _keeps(n, a) if _all(b, 1) else None


def _neg(n):
    (x,) = n.inputs
    if _zero(x):
        return _keeps(n, x)
    return x.inputs[0] if x.op.name == "neg" else None


def _reduce_zero(n):
    return _zeros_for(n) if _zero(n.inputs[0]) else None


def _pow(n):
    a, b = n.inputs
    if _all(b, 1):
        return _keeps(n, a)
    if _all(b, 2):
        return _keeps(n, build.mul(a, a))
    if _all(b, 0.5) and a.dtype.kind == "f":
        return _keeps(n, build.sqrt(a))
    return None


def _where(n):
    c, a, b = n.inputs
    if a is b:
        return _keeps(n, a)
    if _all(c, True):
        return _keeps(n, a)
    if _all(c, False):
        return _keeps(n, b)
    return None


def _transpose(n):
    (x,) = n.inputs
    if x.op.name == "transpose":
        inner, outer = x.attrs["perm"], n.attrs["perm"]
        perm = tuple(inner[p] for p in outer)
        return x.inputs[0] if perm == tuple(range(len(perm))) else build.transpose(x.inputs[0], perm)
    return None


def _reshape(n):
    (x, *rest) = n.inputs
    if rest or n.attrs.get("src") is not None:
        return None
    if x.op.name == "reshape" and len(x.inputs) == 1 and x.attrs.get("src") is None:
        return _keeps(n, build.reshape(x.inputs[0], n.attrs["shape"]))
    if x.shape == n.shape and None not in n.shape:
        return x
    return None


def _cast(n):
    (x,) = n.inputs
    return x if x.dtype == n.dtype else None


RULES = {
    "add": _add, "mul": _mul, "div": _div, "neg": _neg, "pow": _pow, "where": _where,
    "transpose": _transpose, "reshape": _reshape, "cast": _cast, "sum": _reduce_zero,
    "matmul": _zero_in,
}


def simplify_node(n: Node):
    """One step of folding or algebraic simplification of n, or None."""
    r = fold(n)
    if r is not None:
        return r
    rule = RULES.get(n.op.name)
    return rule(n) if rule else None

"""Algebraic simplification and constant folding, as (pattern, function) tables.

Every replacement keeps the node's shape and dtype; a rule that would change either does nothing.
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from ..ir import Node

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
    if n.is_leaf or not all(i.op.name == "constant" for i in n.inputs) or n.op.kind == "random":
        return None
    if None in n.shape or int(np.prod(n.shape)) > FOLD_MAX_ELEMENTS:
        return None
    with np.errstate(all="ignore"):
        try:
            value = n.op.impl(*(i.data for i in n.inputs), **n.attrs)
        except Exception:  # noqa: BLE001 - an op that fails at run time keeps failing there, with its message
            return None
    return F.constant(np.asarray(value).astype(n.dtype, copy=False))


def _add(n):
    a, b = n.inputs
    if _all(b, 0):
        return _keeps(n, a)
    if _all(a, 0):
        return _keeps(n, b)
    return None


def _mul(n):
    a, b = n.inputs
    for x, c in ((a, b), (b, a)):
        if _all(c, 1):
            return _keeps(n, x)
        if _all(c, -1) and x.dtype != np.bool_:
            return _keeps(n, F.neg(x))
    return None


def _div(n):
    a, b = n.inputs
    return _keeps(n, a) if _all(b, 1) else None


def _neg(n):
    (x,) = n.inputs
    return x.inputs[0] if x.op.name == "neg" else None


def _pow(n):
    a, b = n.inputs
    if _all(b, 1):
        return _keeps(n, a)
    if _all(b, 2):
        return _keeps(n, F.mul(a, a))
    if _all(b, 0.5) and a.dtype.kind == "f":
        return _keeps(n, F.sqrt(a))
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
        return x.inputs[0] if perm == tuple(range(len(perm))) else F.transpose(x.inputs[0], perm)
    return None


def _reshape(n):
    (x, *rest) = n.inputs
    if rest or n.attrs.get("src") is not None:
        return None
    if x.op.name == "reshape" and len(x.inputs) == 1 and x.attrs.get("src") is None:
        return _keeps(n, F.reshape(x.inputs[0], n.attrs["shape"]))
    if x.shape == n.shape and None not in n.shape:
        return x
    return None


def _cast(n):
    (x,) = n.inputs
    return x if x.dtype == n.dtype else None


RULES = {
    "add": _add, "mul": _mul, "div": _div, "neg": _neg, "pow": _pow, "where": _where,
    "transpose": _transpose, "reshape": _reshape, "cast": _cast,
}


def simplify_node(n: Node):
    """One step of folding or algebraic simplification of n, or None."""
    r = fold(n)
    if r is not None:
        return r
    rule = RULES.get(n.op.name)
    return rule(n) if rule else None

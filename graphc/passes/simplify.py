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


def tiled_unslices(n):
    """A sum of unslices of n's shape (the gradient of split pieces: an LSTM's four gates, a
    transformer's q, k and v) whose slices, of step 1, cut one axis of known size into disjoint
    blocks and take the others whole -> the blocks side by side (concat), zeros in the gaps. The
    sum wrote zeros around each block and added them; this copies each block once (the one
    difference: a -0.0 stays -0.0 instead of 0.0 + -0.0). None where the terms are anything else."""
    leaves, stack = [], list(n.inputs)
    while stack:
        m = stack.pop()
        if m.shape != n.shape or m.dtype != n.dtype or m.op.name not in ("add", "unslice"):
            return None
        (stack if m.op.name == "add" else leaves).extend(m.inputs if m.op.name == "add" else [m])
    axis, blocks, like = None, [], None
    for m in leaves:
        cut, got = _blocks(m)
        if cut is None or (axis is not None and cut != axis):
            return None
        axis = cut
        blocks += got
        if len(m.inputs) > 1:
            like = m.inputs[1]  # the run-time shape, for the zeros in a gap
    blocks.sort(key=lambda b: b[0])
    pieces, at = [], 0
    for start, stop, g in blocks + [(n.shape[axis], n.shape[axis], None)]:
        if start < at:  # blocks overlap
            return None
        if start > at:
            if None in n.shape and like is None:
                return None
            gap = tuple(start - at if q == axis else d for q, d in enumerate(n.shape))
            pieces.append(build.broadcast_to(build.constant(np.zeros((), n.dtype)), gap, like=like))
        if g is not None:
            pieces.append(g)
        at = stop
    return _keeps(n, build.concat(pieces, axis))


def _fused_into(n, users) -> bool:
    """Whether a loop kernel would compute n inside itself: a user (through views) that is
    elementwise, a loop or a row reduction."""
    for u in users.get(n, ()):
        if u.op.view and _fused_into(u, users):
            return True
        if u.op.fusible or u.op.loop_reduction or u.op.row_reduction:
            return True
    return False


def join_unslices(graph):
    """tiled_unslices where the sum is read only by what no loop kernel fuses it into (a product,
    a view of one, a scan's step output): an LSTM step's gate gradients, the rows of one GEMM. A
    sum that an elementwise op or a reduction reads (a bias gradient over the batch) costs nothing
    extra inside that kernel; a concat would be a kernel of its own before it."""
    from ..ir import consumers
    from .graph import rewrite
    users = consumers(graph.nodes)
    chosen = {id(n) for n in graph.nodes if n.op.name == "add" and not _fused_into(n, users)}
    return rewrite(graph, lambda n: tiled_unslices(n) if id(n) in chosen else None)


def _blocks(m):
    """(axis, [(start, stop, value)]): the block of m, an unslice of step 1 whose index cuts one
    axis of known size and takes the others whole (none when it is empty); (None, None) otherwise."""
    from ..ops.movement import Unslice
    bounds = Unslice._bounds(m)
    if bounds is None:
        return None, None
    cut = [q for q, b in enumerate(bounds) if b is not None and (b[0], b[1]) != (0, b[2])]
    if len(cut) != 1:
        return None, None
    start, stop, _ = bounds[cut[0]]
    return cut[0], [(start, stop, m.inputs[0])] if stop > start else []


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

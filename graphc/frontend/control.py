"""Loops: gc.scan, JAX's lax.scan as one graph node whose step is traced once."""
from __future__ import annotations

from ..errors import GraphError, ShapeError
from ..ir import user_location
from ..ops.build import as_node, placeholder
from ..ops.control import close_body, make_scan, outputs

__all__ = ["scan"]


def _flatten(tree, what: str) -> tuple[list, object]:
    """(the leaves of a nest of tuples and lists, its structure); a leaf is a node or a value."""
    if isinstance(tree, (tuple, list)):
        leaves, shape = [], []
        for t in tree:
            ls, s = _flatten(t, what)
            leaves += ls
            shape.append(s)
        return leaves, (type(tree), shape)
    if tree is None:
        return [], None
    if callable(tree) or isinstance(tree, (dict, str)):
        raise GraphError(f"scan: {what} must be nodes or arrays in tuples and lists, got {type(tree).__name__}",
                         user_location())
    return [as_node(tree)], "leaf"


def _unflatten(leaves, structure):
    it = iter(leaves)

    def build(s):
        if s == "leaf":
            return next(it)
        if s is None:
            return None
        kind, parts = s
        return kind(build(p) for p in parts)
    return build(structure)


def scan(fn, init, xs=None, length: int | None = None, reverse: bool = False):
    """Loop fn over the leading axis of xs: `carry, y = fn(carry, x)` per step, as jax.lax.scan.

    init and xs may be nodes (or arrays) or tuples and lists of them; x is the slice xs[i] of each.
    fn is traced once into the body of one graph node (not unrolled): what it reads from outside
    (parameters, outer values) is captured and fed on every step. Returns (final carry, ys) where
    ys stacks each step's y on a new leading axis (None if fn returns none). reverse=True runs the
    steps last to first (ys keep the order of xs). length is the step count when there are no xs;
    with xs of a run-time length it may be left out. The gradient is a reverse scan over the
    carries the forward one saves (each step's inner values recomputed).
    """
    loc = user_location()
    if not callable(fn):
        raise GraphError(f"scan: fn must be callable, got {type(fn).__name__}", loc)
    if length is not None and (not isinstance(length, int) or length < 0):
        raise ShapeError(f"scan: length must be a non-negative int, got {length!r}", loc)
    init_leaves, c_struct = _flatten(init, "init")
    x_leaves, x_struct = _flatten(xs, "xs")
    for x in x_leaves:
        if x.ndim == 0:
            raise ShapeError(f"scan: xs must have a leading axis to loop over; {x.label} is 0-d", loc)
    p_carry = [placeholder(c.shape, c.dtype) for c in init_leaves]
    p_x = [placeholder(x.shape[1:], x.dtype) for x in x_leaves]
    res = fn(_unflatten(p_carry, c_struct), _unflatten(p_x, x_struct))
    if not (isinstance(res, tuple) and len(res) == 2):
        raise GraphError("scan: fn must return a pair (new carry, y); y may be None", loc)
    new_carry, y = res
    out_leaves, out_struct = _flatten(new_carry, "the returned carry")
    if out_struct != c_struct:
        raise ShapeError(f"scan: fn returns a carry of {len(out_leaves)} tensors in another structure than "
                         f"init's ({len(init_leaves)} tensors): a carry keeps its structure", loc)
    y_leaves, y_struct = _flatten(y, "y")
    body, captured = close_body(p_carry, p_x, out_leaves, y_leaves)
    node = make_scan(body, init_leaves, x_leaves, captured, reverse, length, loc=loc)
    finals, ys = outputs(node)
    return _unflatten(finals, c_struct), _unflatten(ys, y_struct)


"""Masks folded into the row primitive they feed: attention's causal softmax as one primitive.

log_softmax(where(keep, s, -inf)) over the last axis, keep a constant lower triangle over the last
two dims (j <= i + diag, as gc.tril and causal attention build it) and s optionally x * c with c a
scalar constant, becomes causal_log_softmax(x, scale=c, diag=diag): a backend then computes the mask
from its loop indices inside the row kernel, instead of reading an (L, S) mask and a masked copy of
the scores written by a kernel of their own. Exact: the primitive's meaning is the same formula.
"""
from __future__ import annotations

import numpy as np

from ..ir import Node, make_node
from ..ops import REGISTRY
from ..ops.reduce import causal_keep


def _bool_value(n: Node):
    """n's value when it is a bool constant or an op of bool/int constants (an unfolded comparison of
    two index vectors, as triangle_mask builds when the mask is too large to fold); else None."""
    if n.dtype != np.bool_:
        return None
    if n.op.name == "constant":
        return n.data
    if n.is_leaf or n.op.kind in ("random", "control") or not n.inputs \
            or not all(i.op.name == "constant" for i in n.inputs):
        return None
    with np.errstate(all="ignore"):
        return np.asarray(n.op.impl(*(i.data for i in n.inputs), **n.attrs))


def _diag(keep: np.ndarray, rows: int, cols: int):
    """k with keep == (j <= i + k) over (rows, cols) (leading dims of size 1), or None."""
    if keep.shape[-2:] != (rows, cols) or any(d != 1 for d in keep.shape[:-2]):
        return None
    keep = keep.reshape(rows, cols)
    counts = keep.sum(axis=1)
    partial = np.flatnonzero((counts > 0) & (counts < cols))
    full = np.flatnonzero(counts == cols)
    if partial.size:
        k = int(counts[partial[0]]) - 1 - int(partial[0])
    elif full.size:
        k = -int(full[0]) if full[0] > 0 else cols - 1
    else:
        return None  # nothing kept: left as it is
    return k if np.array_equal(keep, causal_keep(rows, cols, k)) else None


def _scaled(s: Node):
    """(x, c) when s is x * c or c * x with c a scalar float constant, else (s, 1.0)."""
    if s.op.name == "mul":
        for x, c in (s.inputs, s.inputs[::-1]):
            if c.op.name == "constant" and c.data.size == 1 and x.shape == s.shape and x.dtype == s.dtype:
                return x, float(c.data.reshape(()))
    return s, 1.0


def fold_mask(n: Node):
    if n.op.name != "log_softmax" or n.ndim < 2 or tuple(n.attrs["axes"]) != (n.ndim - 1,) \
            or None in n.shape[-2:]:
        return None
    (w,) = n.inputs
    if w.op.name != "where":
        return None
    cond, s, fill = w.inputs
    if s.shape != w.shape or s.dtype != w.dtype or fill.op.name != "constant" or fill.data.size != 1 \
            or float(fill.data.reshape(())) != -np.inf:
        return None
    keep = _bool_value(cond)
    if keep is None:
        return None
    diag = _diag(keep, *n.shape[-2:])
    if diag is None:
        return None
    x, scale = _scaled(s)
    return make_node(REGISTRY["causal_log_softmax"], (x,), {"axes": n.attrs["axes"], "scale": scale, "diag": diag})

"""Indexing: take, embedding, one_hot, x[key] with NumPy's rules, and run-time index checks."""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, GraphIndexError, ShapeError
from ..ir import Node, make_node, user_location
from ..ops import REGISTRY as _OPS
from ..ops.base import broadcast_shapes, fmt_shape
from ..ops.build import (
    add,
    as_node,
    cast,
    checked_axes,
    constant,
    equal,
    expand_dims,
    less,
    less_equal,
    mul,
    reshape,
    reshape_keep,
    size_of,
    transpose,
    where,
)

_op = _OPS.__getitem__

__all__ = ["take", "embedding", "one_hot", "getitem", "check_index", "tril", "triu", "triangle_mask"]


def take(x, indices, axis=None) -> Node:
    """np.take: gather entries of x along axis (flattened when None) at integer indices."""
    x = as_node(x)
    if axis is None:
        x, axis = reshape(x, -1), 0
    (axis,) = checked_axes(x, axis)
    idx = _index_node(indices, x.shape[axis])
    return make_node(_op("take"), (x, idx), {"axis": axis})


def embedding(ids, table) -> Node:
    """table[ids]: one row of table (num_embeddings, dim) per integer id, shape ids.shape + (dim,).
    Ids outside [-num, num) raise (GraphIndexError); negative ids count from the end, as NumPy.
    The gradient with respect to table adds each row's gradient into its id's row (scatter-add),
    so repeated ids accumulate."""
    table = as_node(table)
    if table.ndim != 2:
        raise ShapeError(f"embedding: the table must be 2-D (num_embeddings, dim), got shape "
                         f"{fmt_shape(table.shape)}", user_location())
    return take(table, ids, axis=0)


def _index_node(indices, dim) -> Node:
    """Integer indices as a node; constant ones are range-checked now when dim is known."""
    if isinstance(indices, Node):
        if indices.dtype == dt.bool_:
            raise GraphIndexError("boolean masks give data-dependent shapes; use gc.where instead",
                                  user_location())
        if indices.dtype.kind not in "iu":
            raise DTypeError(f"indices must be integers, got {indices.dtype}", user_location())
        return indices
    arr = np.asarray(indices)
    if arr.dtype.kind == "b":
        raise GraphIndexError("boolean masks give data-dependent shapes; use gc.where instead",
                              user_location())
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise GraphIndexError(f"indices must be integers, got {arr.dtype}", user_location())
    if dim is not None and arr.size and (arr.min() < -dim or arr.max() >= dim):
        bad = arr[(arr < -dim) | (arr >= dim)].flat[0]
        raise GraphIndexError(f"index {bad} is out of range for an axis of size {dim}", user_location())
    return constant(arr.astype(np.int64))


def one_hot(labels, num_classes: int, dtype="float32") -> Node:
    """labels[..., None] == arange(num_classes), as dtype (labels outside the range give zeros)."""
    labels = as_node(labels)
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"one_hot needs integer labels, got {labels.dtype}", user_location())
    classes = constant(np.arange(int(num_classes), dtype=labels.dtype))
    return cast(equal(expand_dims(labels, -1), classes), dtype)


# ====================================================================== indexing


def getitem(x: Node, key) -> Node:
    """x[key] with ints, slices, None, Ellipsis and integer arrays (NumPy's rules for all of them)."""
    x = as_node(x)
    key = key if isinstance(key, tuple) else (key,)
    key = tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    if builtins.sum(k is Ellipsis for k in key) > 1:
        raise GraphIndexError("an index can only have one ellipsis (...)", user_location())
    n_real = builtins.sum(k is not None and k is not Ellipsis for k in key)
    if n_real > x.ndim:
        raise GraphIndexError(f"too many indices ({n_real}) for a tensor of shape {fmt_shape(x.shape)}",
                              user_location())
    if Ellipsis in [k if k is Ellipsis else None for k in key]:
        i = [k is Ellipsis for k in key].index(True)
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    else:
        key = key + (slice(None),) * (x.ndim - n_real)

    def is_adv(k):
        return isinstance(k, (Node, np.ndarray)) and not (isinstance(k, np.ndarray) and k.ndim == 0
                                                          and k.dtype.kind in "iu")

    any_adv = builtins.any(is_adv(k) for k in key)
    # items: one per key entry, each ("new",) | ("int", i) | ("slice", s) | ("adv", node)
    items, axis = [], 0
    for k in key:
        if k is None:
            items.append(("new",))
            continue
        d = x.shape[axis]
        if isinstance(k, slice):
            items.append(("slice", k))
        elif is_adv(k) or (any_adv and isinstance(k, (int, np.integer, np.ndarray))):
            items.append(("adv", _index_node(k, d)))
        elif isinstance(k, (int, np.integer, np.ndarray)):
            i = int(k)
            if d is not None and not -d <= i < d:
                raise GraphIndexError(f"index {i} is out of range for axis {axis} of shape "
                                      f"{fmt_shape(x.shape)}", user_location())
            items.append(("int", i))
        else:
            raise GraphIndexError(f"unsupported index {k!r} (use ints, slices, None, ..., or integer "
                                  "arrays)", user_location())
        axis += 1

    # 1) basic slicing of every real axis (ints on static dims become length-1 slices)
    index, axis = [], 0
    for it in items:
        if it[0] == "new":
            continue
        d = x.shape[axis]
        if it[0] == "slice":
            s = it[1]
            index.append((s.start, s.stop, s.step))
        elif it[0] == "int" and d is not None:
            i = it[1] % d
            index.append((i, i + 1, 1))
        else:
            index.append((None, None, None))
        axis += 1
    index = tuple(tuple(None if v is None else int(v) for v in t) for t in index)
    if builtins.any(t != (None, None, None) for t in index):
        x = make_node(_op("slice"), (x,), {"index": index})

    # 2) ints on run-time dims: take a 0-d index (checked at run time), axis disappears
    real = [it for it in items if it[0] != "new"]
    axis = 0
    dropped = set()
    for pos, it in enumerate(real):
        if it[0] == "int" and x.shape[pos] is None:
            x = make_node(_op("take"), (x, constant(np.asarray(it[1], np.int64))), {"axis": axis})
            dropped.add(pos)
        elif pos not in dropped:
            axis += 1
    # x's axes now: the real axes minus `dropped`
    live = [pos for pos in range(len(real)) if pos not in dropped]

    # 3) advanced indices
    adv_pos = [pos for pos, it in enumerate(real) if it[0] == "adv"]
    if adv_pos:
        x, bshape = _advanced(x, [live.index(p) for p in adv_pos], [real[p][1] for p in adv_pos])
        adjacent = adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1)) and \
            _no_new_between(items, adv_pos)
        rest = [p for p in live if p not in adv_pos]
        # x's axes now: bshape then `rest`
        if adjacent:
            before = [p for p in rest if p < adv_pos[0]]
            nb = len(bshape)
            perm = list(range(nb, nb + len(before))) + list(range(nb)) + \
                list(range(nb + len(before), nb + len(rest)))
            x = transpose(x, perm)
    # 4) drop int axes (static ints sliced to length 1) and insert new axes, in item order
    shape, src = [], []
    axis = 0
    if adv_pos and not adjacent:
        shape, src = list(x.shape[:len(bshape)]), list(range(len(bshape)))
        axis = len(bshape)
    pos = 0
    for it in items:
        if it[0] == "new":
            shape.append(1)
            src.append(-1)
            continue
        if it[0] == "adv":
            if adjacent and pos == adv_pos[0]:
                shape.extend(x.shape[axis:axis + len(bshape)])
                src.extend(range(axis, axis + len(bshape)))
                axis += len(bshape)
        elif pos in dropped:
            pass
        elif it[0] == "int":
            axis += 1
        else:
            shape.append(x.shape[axis])
            src.append(axis)
            axis += 1
        pos += 1
    return reshape_keep(x, tuple(shape), tuple(src))


def _no_new_between(items, adv_pos) -> bool:
    """True when no None (new axis) sits between the first and last advanced index."""
    pos, seen, new_inside = 0, 0, False
    for it in items:
        if it[0] == "new":
            if 0 < seen < len(adv_pos):
                new_inside = True
            continue
        if pos in adv_pos:
            seen += 1
        pos += 1
    return not new_inside


def _advanced(x: Node, axes: list, idxs: list) -> tuple[Node, tuple]:
    """Gather x at broadcast integer index tensors on `axes`; result axes: broadcast shape, then the
    remaining axes of x in order."""

    try:
        bshape = broadcast_shapes(*(i.shape for i in idxs))
    except ShapeError as e:
        raise GraphIndexError("index arrays do not broadcast: " + e.message, user_location()) from None
    if len(axes) == 1:
        (a,) = axes
        out = make_node(_op("take"), (x, idxs[0]), {"axis": a})
        nb = len(idxs[0].shape)
        perm = list(range(a, a + nb)) + list(range(a)) + list(range(a + nb, out.ndim))
        return transpose(out, perm), bshape
    # several index arrays: move their axes to the front, merge them, gather with a flat index
    rest = [a for a in range(x.ndim) if a not in axes]
    x = transpose(x, axes + rest)
    flat = None
    for k, i in enumerate(idxs):
        size = size_of(x, k, "int64")
        d = x.shape[k]
        # in range, as NumPy checks: once merged, a wrong index would land in another row
        i = check_index(cast(i, "int64"), size if d is None else d, wrap=True)
        i = where(less(i, 0), add(i, size), i)  # NumPy's negative indices
        flat = i if flat is None else add(mul(flat, size), i)
    merged = [x.shape[k] for k in range(len(axes))]
    m = None if None in merged else math.prod(merged)
    x = reshape_keep(x, (m,) + x.shape[len(axes):], (-1,) + tuple(range(len(axes), x.ndim)))
    return make_node(_op("take"), (x, flat), {"axis": 0}), bshape


def check_index(indices, bound, wrap: bool = False) -> Node:
    """indices unchanged, with a run-time check that each is in [0, bound) ([-bound, bound) with
    wrap); bound an int, or a 0-d integer node (a size known only at run time)."""
    if isinstance(bound, Node):
        return make_node(_op("check_index"), (as_node(indices), bound), {"bound": -1, "wrap": bool(wrap)})
    return make_node(_op("check_index"), (as_node(indices),), {"bound": int(bound), "wrap": bool(wrap)})


def _triangle(x, k, lower: bool, what: str) -> Node:
    x = as_node(x)
    if x.ndim < 2 or None in x.shape[-2:]:
        raise ShapeError(f"{what} needs at least 2 dims with the last two known, got {fmt_shape(x.shape)}",
                         user_location())
    return where(triangle_mask(x.shape[-2], x.shape[-1], k, lower), x, constant(np.zeros((), x.dtype)))


def triangle_mask(rows: int, cols: int, k: int = 0, lower: bool = True) -> Node:
    """A (rows, cols) bool node, True on and below diagonal k (lower) or on and above it, built as a
    comparison of two index vectors (rows,1) and (1,cols), so a fused kernel computes it."""
    r = constant(np.arange(rows, dtype=np.int64).reshape(rows, 1) + int(k))
    c = constant(np.arange(cols, dtype=np.int64).reshape(1, cols))
    return less_equal(c, r) if lower else less_equal(r, c)


def tril(x, k: int = 0) -> Node:
    """The lower triangle of the last two dims of x (entries above diagonal k zeroed), as torch.tril."""
    return _triangle(x, k, True, "tril")


def triu(x, k: int = 0) -> Node:
    """The upper triangle of the last two dims of x (entries below diagonal k zeroed), as torch.triu."""
    return _triangle(x, k, False, "triu")

"""Shape ops: reshape, transpose, broadcast, expand/squeeze/flatten, concat/stack, pad, split."""
from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from ..errors import ShapeError
from ..ir import Node, make_node, user_location
from ..ops import REGISTRY as _OPS
from ..ops.base import fmt_shape
from .tensors import _axes, _axes_for_rank, as_node, constant

_op = _OPS.__getitem__

__all__ = [
    "reshape", "transpose", "permute", "broadcast_to", "zeros_like", "expand_dims", "squeeze",
    "flatten", "concat", "stack", "pad", "split",
]


# ====================================================================== shape ops


def reshape(x, *shape) -> Node:
    """x with a new shape (one -1 or one None is inferred; other None dims keep x's run-time size)."""
    x = as_node(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(-1 if d is None else int(d) for d in shape)
    if shape == x.shape:
        return x
    return make_node(_op("reshape"), (x,), {"shape": shape})


def _reshape_keep(x: Node, new_shape: tuple, src: tuple) -> Node:
    """Reshape to new_shape; a None entry i takes x's run-time size along axis src[i], or is
    inferred from the element count when src[i] is -1 (at most one such entry)."""
    if new_shape == x.shape:
        return x
    if builtins.sum(d is None for d in new_shape) <= 1:
        return make_node(_op("reshape"), (x,), {"shape": tuple(-1 if d is None else d for d in new_shape)})
    if builtins.sum(d is None and s < 0 for d, s in zip(new_shape, src)) > 1:
        raise ShapeError(f"reshape of {fmt_shape(x.shape)} to {fmt_shape(new_shape)}: more than one "
                         "run-time dimension would need inferring", user_location())
    shape = tuple(-1 if d is None and s < 0 else d for d, s in zip(new_shape, src))
    src = tuple(s if d is None else -1 for d, s in zip(shape, src))
    return make_node(_op("reshape"), (x,), {"shape": shape, "src": src})


def transpose(x, axes=None) -> Node:
    """Permute axes (reverse them when axes is None), as np.transpose."""
    x = as_node(x)
    if axes is None:
        perm = tuple(range(x.ndim))[::-1]
    else:
        perm = tuple(int(a) for a in axes)
        if sorted(a % builtins.max(x.ndim, 1) if -x.ndim <= a < x.ndim else a for a in perm) != list(range(x.ndim)):
            raise ShapeError(f"transpose: permutation {tuple(axes)} does not fit {fmt_shape(x.shape)} (it must "
                             f"order the axes 0..{x.ndim - 1}, each once)", user_location())
        perm = tuple(a % x.ndim for a in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return make_node(_op("transpose"), (x,), {"perm": perm})


def permute(x, *axes) -> Node:
    """transpose(x, axes), PyTorch's spelling."""
    return transpose(x, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)


def broadcast_to(x, shape, like: Node | None = None) -> Node:
    """x broadcast to shape; None dims of shape are read from `like` at run time."""
    x = as_node(x)
    shape = tuple(None if d is None else int(d) for d in shape)
    if shape == x.shape:
        return x
    inputs = (x, like) if like is not None and None in shape else (x,)
    return make_node(_op("broadcast_to"), inputs, {"shape": shape})


def zeros_like(x) -> Node:
    """Zeros of x's shape and dtype (run-time dims read from x)."""
    x = as_node(x)
    return broadcast_to(constant(np.zeros((), x.dtype)), x.shape, like=x)


def expand_dims(x, axis) -> Node:
    """x with size-1 axes inserted at the given positions of the result."""
    x = as_node(x)
    n = x.ndim + (1 if isinstance(axis, (int, np.integer)) else len(axis))
    axes = _axes_for_rank(axis, n)
    shape, src, k = [], [], 0
    for i in range(n):
        if i in axes:
            shape.append(1)
            src.append(-1)
        else:
            shape.append(x.shape[k])
            src.append(k)
            k += 1
    return _reshape_keep(x, tuple(shape), tuple(src))


def squeeze(x, axis=None) -> Node:
    """x without size-1 axes (all of them, or the given ones, which must have size 1)."""
    x = as_node(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = _axes(x, axis)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ShapeError(f"squeeze: axis {bad[0]} of {fmt_shape(x.shape)} does not have size 1",
                             user_location())
    keep = [i for i in range(x.ndim) if i not in axes]
    return _reshape_keep(x, tuple(x.shape[i] for i in keep), tuple(keep))


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Node:
    """Merge axes start_dim..end_dim into one (PyTorch's flatten)."""
    x = as_node(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _axes(x, (start_dim,))[0], _axes(x, (end_dim,))[0]
    merged = x.shape[s:e + 1]
    m = None if None in merged else math.prod(merged)
    shape = x.shape[:s] + (m,) + x.shape[e + 1:]
    src = tuple(range(s)) + (-1,) + tuple(range(e + 1, x.ndim))
    return _reshape_keep(x, shape, src)


def concat(xs, axis: int = 0) -> Node:
    """Join tensors along an existing axis."""
    xs = [as_node(x) for x in xs]
    if not xs:
        raise ShapeError("concat needs at least one tensor", user_location())
    (axis,) = _axes(xs[0], axis)
    if len(xs) == 1:
        return xs[0]
    return make_node(_op("concat"), tuple(xs), {"axis": axis})


def stack(xs, axis: int = 0) -> Node:
    """Join tensors along a new axis."""
    xs = [as_node(x) for x in xs]
    if not xs:
        raise ShapeError("stack needs at least one tensor", user_location())
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise ShapeError("stack needs tensors of one shape, got " +
                         ", ".join(fmt_shape(x.shape) for x in xs), user_location())
    (axis,) = _axes_for_rank(axis, xs[0].ndim + 1)
    return concat([expand_dims(x, axis) for x in xs], axis)


def pad(x, pad_width, value=0) -> Node:
    """Constant padding, np.pad's pad_width forms: n, (before, after), or one pair per axis."""
    x = as_node(x)
    try:
        pw = np.asarray(pad_width)
        if pw.dtype.kind not in "iu" and pw.size:
            raise ValueError(f"pad widths must be integers, got {pw.dtype}")
        pw = np.broadcast_to(pw.astype(np.int64), (x.ndim, 2))
    except ValueError as e:
        raise ShapeError(f"pad: pad_width {pad_width!r} does not fit a {x.ndim}-d tensor {fmt_shape(x.shape)}: "
                         "give n, (before, after) or one (before, after) pair per axis"
                         + (f" ({e})" if "integers" in str(e) else ""), user_location()) from None
    pw = tuple((int(a), int(b)) for a, b in pw)
    if all(a == 0 and b == 0 for a, b in pw):
        return x
    return make_node(_op("pad"), (x,), {"pad_width": pw, "value": float(value) if x.dtype.kind == "f"
                                         else int(value)})


def split(x, sections, axis: int = 0) -> tuple:
    """x cut along axis into pieces, as torch.split: `sections` an int (every piece that size, the
    last one smaller when it does not divide the axis) or a list of sizes summing to the axis."""
    x = as_node(x)
    (axis,) = _axes(x, axis)
    n = x.shape[axis]
    if n is None:
        raise ShapeError(f"split: axis {axis} of {fmt_shape(x.shape)} must have a known size", user_location())
    if isinstance(sections, (int, np.integer)):
        if sections < 1:
            raise ShapeError(f"split: the piece size must be >= 1, got {sections}", user_location())
        sizes = [int(sections)] * (n // sections) + ([n % sections] if n % sections else [])
    else:
        try:
            sizes = [operator.index(s) for s in sections]
        except TypeError:
            raise ShapeError(f"split: sections must be an int or a list of ints, got {sections!r}",
                             user_location()) from None
        if any(s < 0 for s in sizes) or builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} must be >= 0 and sum to axis {axis}'s size {n} "
                             f"(x {fmt_shape(x.shape)})", user_location())
    pieces, start = [], 0
    for size in sizes:
        index = tuple((start, start + size, 1) if a == axis else (None, None, None) for a in range(x.ndim))
        pieces.append(x if size == n else make_node(_op("slice"), (x,), {"index": index}))
        start += size
    return tuple(pieces)

"""Shape ops beyond the builder's primitives: permute, flatten, pad, split (reshape, transpose,
broadcast_to, expand_dims, squeeze, concat and stack are graphc.ops.build's)."""
from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from ..errors import ShapeError
from ..ir import Node, fmt_shape, make_node, user_location
from ..ops import REGISTRY as _OPS
from ..ops.build import as_node, checked_axes, reshape, reshape_keep, transpose

_op = _OPS.__getitem__

__all__ = ["permute", "flatten", "pad", "split"]


def permute(x, *axes) -> Node:
    """transpose(x, axes), PyTorch's spelling."""
    return transpose(x, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Node:
    """Merge axes start_dim..end_dim into one (PyTorch's flatten)."""
    x = as_node(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = checked_axes(x, (start_dim,))[0], checked_axes(x, (end_dim,))[0]
    merged = x.shape[s:e + 1]
    m = None if None in merged else math.prod(merged)
    shape = x.shape[:s] + (m,) + x.shape[e + 1:]
    src = tuple(range(s)) + (-1,) + tuple(range(e + 1, x.ndim))
    return reshape_keep(x, shape, src)


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
    (axis,) = checked_axes(x, axis)
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

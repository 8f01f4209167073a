"""Leaves and the front end's common helpers: placeholders, parameters, constants, random bits and
the train/eval switch; turning Python values into nodes; normalising axes."""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError
from ..ir import Cell, Node, constant_key, make_node, new_uid, user_location
from ..ops import REGISTRY as _OPS
from ..ops.base import normalize_axes

_op = _OPS.__getitem__

__all__ = ["placeholder", "parameter", "constant", "as_node", "random_uniform", "train_switch"]


# ====================================================================== leaves


def _supported_array(value, dtype=None) -> np.ndarray:
    """value as an array of a supported dtype (NumPy's small ints and float16 are widened)."""
    arr = np.asarray(value)
    if dtype is not None:
        return np.asarray(arr, dtype=dt.as_dtype(dtype))
    if arr.dtype not in dt.SUPPORTED:
        if arr.dtype.kind == "f" and arr.dtype.itemsize < 4:
            arr = arr.astype(dt.float32)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(dt.int64)
        else:
            raise DTypeError(f"cannot make a graph value of dtype {arr.dtype}", user_location())
    return arr


def placeholder(shape, dtype="float32", name: str | None = None) -> Node:
    """An input fed when the compiled function is called; None dims are known only at run time."""
    shape = tuple(None if d is None else int(d) for d in shape)
    if any(d is not None and d < 0 for d in shape):
        raise ShapeError(f"placeholder {name or ''} has a negative dimension: {shape}", user_location())
    return make_node(_op("placeholder"), (), {"shape": shape, "dtype": dt.as_dtype(dtype)},
                     uid=new_uid(), name=name)


def parameter(value, name: str | None = None, dtype=None, trainable: bool = True) -> Node:
    """A trainable tensor whose current array is `.value` (graphc keeps its own copy)."""
    arr = np.array(_supported_array(value, dtype), copy=True, order="C")
    return make_node(_op("parameter"), (),
                     {"shape": arr.shape, "dtype": arr.dtype, "trainable": bool(trainable)},
                     uid=new_uid(), name=name, data=Cell(arr))


def constant(value, dtype=None) -> Node:
    """A constant tensor; equal values give the same node."""
    arr = _supported_array(value, dtype)
    arr = np.array(arr, copy=True, order="C")
    arr.flags.writeable = False
    return make_node(_op("constant"), (),
                     {"shape": arr.shape, "dtype": arr.dtype, "key": constant_key(arr)}, data=arr)


def as_node(x, like: Node | None = None) -> Node:
    """x as a node. Python scalars are weakly typed, as in NumPy: 2.0 next to float32 is float32."""
    if isinstance(x, Node):
        return x
    if isinstance(x, (bool, numbers.Number)) and not isinstance(x, np.generic):
        if like is not None:
            return constant(np.asarray(x, dtype=dt.result_type(like.dtype, x)))
        return constant(np.asarray(x))
    return constant(x)


def _pair(a, b) -> tuple[Node, Node]:
    if isinstance(a, Node):
        return a, as_node(b, like=a)
    if isinstance(b, Node):
        return as_node(a, like=b), b
    a = as_node(a)
    return a, as_node(b, like=a)


def _axes(x: Node, axis) -> tuple:
    try:
        return normalize_axes(axis, x.ndim, x.shape)
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


def _axes_for_rank(axis, ndim):
    try:
        return normalize_axes(axis, ndim)
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


def random_uniform(key, like, dtype=None) -> Node:
    """Uniform [0, 1) numbers of like's shape drawn from an int64 scalar key (counter-based: element
    i is a hash of (key, i), the same on every backend). dtype defaults to like's float dtype."""
    key, like = as_node(key), as_node(like)
    if dtype is None:
        dtype = like.dtype if like.dtype.kind == "f" else dt.float32
    return make_node(_op("random_uniform"), (key, like), {"dtype": dt.as_dtype(dtype)})


def train_switch(train, eval) -> Node:  # noqa: A002 - the mode's name
    """`train` in a function compiled with training=True, `eval` in one compiled for inference."""
    train, eval = _pair(train, eval)
    if train is eval:
        return train
    return make_node(_op("train_switch"), (train, eval))

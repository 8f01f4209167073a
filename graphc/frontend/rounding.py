"""Rounding, remainders and the inverse sines: exact compositions of graphc's primitives, so they
run on every backend and differentiate where they have a derivative (floor and friends: zero)."""
from __future__ import annotations

import numpy as np

from ..ir import Node
from ..ops.build import (
    abs,
    add,
    as_node,
    atan,
    cast,
    div,
    equal,
    greater,
    less,
    logical_and,
    mul,
    not_equal,
    pair,
    sign,
    sqrt,
    square,
    sub,
    where,
)

__all__ = ["trunc", "floor", "ceil", "round", "fmod", "mod", "asin", "acos"]


def trunc(x) -> Node:
    """x rounded toward zero (integers unchanged). Exact: through int64 below 2**52, where every
    float is an integer already (inf and NaN pass through)."""
    x = as_node(x)
    if x.dtype.kind != "f":
        return x
    t = cast(cast(x, "int64"), x.dtype)
    return where(less(abs(x), 2.0 ** 52), t, x)


def _from_trunc(x, down: bool) -> Node:
    """floor (down) or ceil: trunc(x), moved by one where it went the wrong way."""
    x = as_node(x)
    if x.dtype.kind != "f":
        return x
    t = trunc(x)
    return sub(t, cast(greater(t, x), x.dtype)) if down else add(t, cast(less(t, x), x.dtype))


def floor(x) -> Node:
    """The largest integer <= x, as np.floor (integers unchanged)."""
    return _from_trunc(x, down=True)


def ceil(x) -> Node:
    """The smallest integer >= x, as np.ceil (integers unchanged)."""
    return _from_trunc(x, down=False)


def round(x) -> Node:  # noqa: A001 - NumPy's name
    """x rounded to the nearest integer, halves to even (np.round, ONNX Round), exactly: from the
    fraction x - trunc(x), which is exact."""
    x = as_node(x)
    if x.dtype.kind != "f":
        return x
    t = trunc(x)
    frac = sub(x, t)
    up = cast(greater(frac, 0.5), x.dtype)
    down = cast(less(frac, -0.5), x.dtype)
    odd = not_equal(sub(t, mul(trunc(mul(t, 0.5)), 2.0)), 0.0)
    tie = logical_and(equal(abs(frac), 0.5), odd)
    r = add(add(t, sub(up, down)), mul(cast(tie, x.dtype), sign(frac)))
    return where(less(abs(x), 2.0 ** 52), r, x)  # integers already (and inf, NaN) as they are


def _remainder(a, b, python: bool) -> Node:
    a, b = pair(a, b)
    ints = a.dtype.kind in "iu" and b.dtype.kind in "iu"
    out_dtype = np.result_type(a.dtype, b.dtype)
    af, bf = (cast(a, "float64"), cast(b, "float64")) if ints else (a, b)  # exact below 2**53
    r = sub(af, mul(bf, trunc(div(af, bf))))
    if not ints:  # fmod(a, +-inf) = a for a finite a
        r = where(logical_and(equal(abs(bf), np.inf), less(abs(af), np.inf)), af, r)
    if python:  # the sign of b
        wrong = logical_and(not_equal(r, 0.0), not_equal(less(r, 0.0), less(bf, 0.0)))
        r = where(wrong, add(r, bf), r)
    return r if r.dtype == out_dtype else cast(r, out_dtype)


def fmod(a, b) -> Node:
    """The remainder of a / b with a's sign (C's fmod, np.fmod, ONNX Mod with fmod=1)."""
    return _remainder(a, b, python=False)


def mod(a, b) -> Node:
    """The remainder of a / b with b's sign (Python's %, np.mod, ONNX Mod)."""
    return _remainder(a, b, python=True)


def asin(x) -> Node:
    """arcsin, as atan(x / sqrt(1 - x**2)) (NaN outside [-1, 1], +-pi/2 at +-1)."""
    x = as_node(x)
    return atan(div(x, sqrt(sub(1.0, square(x)))))


def acos(x) -> Node:
    """arccos = pi/2 - arcsin(x)."""
    x = as_node(x)
    return sub(np.asarray(np.pi / 2, x.dtype), asin(x))

"""Composite math: activations (leaky_relu, elu, gelu, silu...), clip, variance and standard
deviation, built from the primitives of graphc.ops.build (which the front end re-exports)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..ir import Node
from ..ops.build import (
    add,
    as_node,
    cast,
    div,
    erf,
    exp,
    greater,
    maximum,
    mean,
    minimum,
    mul,
    sigmoid,
    size_of,
    sqrt,
    sub,
    sum,
    tanh,
    where,
)

__all__ = ["clip", "leaky_relu", "prelu", "elu", "gelu", "silu", "var", "std"]


# ====================================================================== activations


def clip(x, lo=None, hi=None) -> Node:
    """minimum(maximum(x, lo), hi); either bound may be None."""
    x = as_node(x)
    if lo is not None:
        x = maximum(x, lo)
    if hi is not None:
        x = minimum(x, hi)
    return x


def leaky_relu(x, alpha: float = 0.01) -> Node:
    """x where x > 0, else alpha * x."""
    x = as_node(x)
    return where(greater(x, 0), x, mul(x, alpha))


def prelu(x, alpha) -> Node:
    """leaky_relu with a (learnable) slope tensor alpha, broadcast against x."""
    x = as_node(x)
    return where(greater(x, 0), x, mul(alpha, x))


def elu(x, alpha: float = 1.0) -> Node:
    """x where x > 0, else alpha * (exp(x) - 1); the exp sees only x <= 0, so it never overflows."""
    x = as_node(x)
    neg_part = mul(sub(exp(minimum(x, 0)), 1), alpha)
    return where(greater(x, 0), x, neg_part)


def gelu(x, approximate: str = "none") -> Node:
    """x * Phi(x): exact with erf ("none") or the tanh approximation ("tanh"), as in PyTorch."""
    x = as_node(x)
    if approximate == "none":
        return mul(mul(x, 0.5), add(erf(mul(x, float(1 / np.sqrt(2)))), 1))
    if approximate == "tanh":
        inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), float(np.sqrt(2 / np.pi)))
        return mul(mul(x, 0.5), add(tanh(inner), 1))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x) -> Node:
    """x * sigmoid(x) (SiLU, swish), as torch.nn.functional.silu."""
    x = as_node(x)
    return mul(x, sigmoid(x))


# ====================================================================== moments


def var(x, axis=None, keepdims: bool = False, ddof: int = 0) -> Node:
    """Variance over axis: mean of squared deviations, divided by N - ddof."""
    x = as_node(x)
    if x.dtype.kind != "f":
        x = cast(x, dt.float64)
    d = sub(x, mean(x, axis, keepdims=True))
    s = sum(mul(d, d), axis, keepdims)
    return div(s, sub(size_of(x, axis, x.dtype), ddof))


def std(x, axis=None, keepdims: bool = False, ddof: int = 0) -> Node:
    """Standard deviation: sqrt(var)."""
    return sqrt(var(x, axis, keepdims, ddof))

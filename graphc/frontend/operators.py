"""Node's Python operators and NumPy-style methods, installed in one place (so ir.py needs no front end)."""
from __future__ import annotations

from ..ir import Node
from .indexing import getitem
from .mathops import (
    _require_bool,
    abs,
    add,
    argmax,
    argmin,
    cast,
    div,
    equal,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    matmul,
    max,
    mean,
    min,
    mul,
    neg,
    not_equal,
    pow,
    prod,
    std,
    sub,
    sum,
    var,
)
from .shape import flatten, reshape, squeeze, transpose


def _install_operators() -> None:
    """Give Node its Python operators and NumPy-style methods (one place, so ir.py needs no api)."""

    def rev(f):
        return lambda self, other: f(other, self)

    N = Node
    N.__add__, N.__radd__ = add, rev(add)
    N.__sub__, N.__rsub__ = sub, rev(sub)
    N.__mul__, N.__rmul__ = mul, rev(mul)
    N.__truediv__, N.__rtruediv__ = div, rev(div)
    N.__pow__, N.__rpow__ = pow, rev(pow)
    N.__matmul__, N.__rmatmul__ = matmul, rev(matmul)
    N.__neg__ = neg
    N.__pos__ = lambda self: self
    N.__abs__ = abs
    N.__lt__, N.__le__ = less, less_equal
    N.__gt__, N.__ge__ = greater, greater_equal
    N.__eq__, N.__ne__ = equal, not_equal
    N.__and__, N.__rand__ = _logical(logical_and), rev(_logical(logical_and))
    N.__or__, N.__ror__ = _logical(logical_or), rev(_logical(logical_or))
    N.__xor__, N.__rxor__ = logical_xor, rev(logical_xor)
    N.__invert__ = lambda self: logical_not(_require_bool(self, "~"))
    N.__getitem__ = getitem
    N.T = property(lambda self: transpose(self))
    N.reshape = reshape
    N.transpose = lambda self, *axes: transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    N.sum, N.mean, N.max, N.min, N.prod = sum, mean, max, min, prod
    N.argmax, N.argmin, N.var, N.std = argmax, argmin, var, std
    N.astype = cast
    N.flatten = flatten
    N.squeeze = squeeze


def _logical(f):
    def g(a, b):
        return f(_require_bool(a, "&|"), _require_bool(b, "&|"))
    return g


_install_operators()

"""Leaves: placeholders (fed at call time), parameters (trainable state) and constants."""
from __future__ import annotations

from .base import Op


class Leaf(Op):
    kind = "leaf"
    arity = 0

    @classmethod
    def infer(cls, inputs, attrs):
        return attrs["shape"], attrs["dtype"]

    @classmethod
    def impl(cls, *xs, **attrs):
        raise TypeError(f"a {cls.name} has no computation: backends read its value directly")


class Placeholder(Leaf):
    name = "placeholder"


class Parameter(Leaf):
    name = "parameter"


class Constant(Leaf):
    name = "constant"

"""The training switch: one graph, two meanings (dropout on/off, batch vs running statistics).

gc.compile resolves every switch before the passes run: training=True keeps the first input,
training=False the second, so no backend ever sees one.
"""
from __future__ import annotations

from ..errors import DTypeError, ShapeError
from . import build
from .base import Op, fmt_shape


class TrainSwitch(Op):
    """train_switch(train, eval): `train` in a training function, `eval` in an inference function."""

    name = "train_switch"
    kind = "mode"
    arity = 2

    @classmethod
    def infer(cls, inputs, attrs):
        a, b = inputs
        if a.dtype != b.dtype:
            raise DTypeError(f"training value is {a.dtype} but inference value is {b.dtype}")
        if len(a.shape) != len(b.shape) or any(x is not None and y is not None and x != y
                                               for x, y in zip(a.shape, b.shape)):
            raise ShapeError(f"training value {fmt_shape(a.shape)} and inference value "
                             f"{fmt_shape(b.shape)} differ in shape")
        return tuple(x if x is not None else y for x, y in zip(a.shape, b.shape)), a.dtype

    @classmethod
    def impl(cls, a, b):
        return a  # never run by a backend (compile resolves switches); the training meaning

    @classmethod
    def grad(cls, node, g):
        z = build.zeros_like(g)
        return build.train_switch(g, z), build.train_switch(z, g)


def resolve(node, training: bool):
    """The input a switch stands for in this mode (rewrite rule)."""
    if node.op is TrainSwitch:
        return node.inputs[0 if training else 1]
    return None

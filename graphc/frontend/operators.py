"""Node's front-end methods: indexing (x[...]), flatten, var and std (graphc.ops.build gives Node
its arithmetic, comparison and logical operators and the other NumPy-style methods)."""
from __future__ import annotations

from ..ir import Node
from .indexing import getitem
from .mathops import std, var
from .shape import flatten


def _install_methods() -> None:
    N = Node
    N.__getitem__ = getitem
    N.var, N.std = var, std
    N.flatten = flatten


_install_methods()

"""Every error graphc raises derives from GraphError; each names the node, the shapes and the user's line."""
from __future__ import annotations

import linecache


def format_loc(loc) -> str:
    """'file:line: source text' for a (filename, lineno) pair, or '' when unknown."""
    if not loc:
        return ""
    filename, lineno = loc
    text = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno}" + (f": {text}" if text else "")


class GraphError(Exception):
    """Base class of graphc's errors. `loc` is the (file, line) of user code the error points at."""

    def __init__(self, message: str, loc=None):
        self.message = message
        self.loc = loc
        where = format_loc(loc)
        super().__init__(message + (f"\n  at {where}" if where else ""))


class ShapeError(GraphError, ValueError):
    """Shapes that do not fit an op (raised when the node is built, or at run time for None dims)."""


class DTypeError(GraphError, TypeError):
    """A dtype an op does not accept, or one graphc does not support."""


class GraphIndexError(GraphError, IndexError):
    """An index out of range, known when the node is built or found at run time."""


class FeedError(GraphError, TypeError):
    """A value fed to a compiled function that does not fit its placeholder."""


class CompileError(GraphError):
    """A graph that cannot be compiled: missing inputs, bad updates, unknown backend."""


class GraphRuntimeError(GraphError, RuntimeError):
    """An op that failed while a compiled function ran."""


class OutOfMemoryError(GraphRuntimeError, MemoryError):
    """The arrays a call needs for its feed shapes do not fit in memory."""


class CheckpointError(GraphError, ValueError):
    """A checkpoint does not fit what it is loaded into (names, shapes or dtypes), or two parameters
    to be saved share a name."""

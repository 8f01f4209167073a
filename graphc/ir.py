"""The one graph type: an immutable Node built through a constructor cache, and graph traversals."""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import sys
import weakref

import numpy as np

from .errors import GraphError, ShapeError

_HERE = os.path.dirname(os.path.abspath(__file__))
# Frames from graphc itself (and its backends, which install beside it or sit at the repo root)
# are skipped when recording the user's line.
_INTERNAL = (_HERE + os.sep, os.path.join(os.path.dirname(_HERE), "backends") + os.sep)


def fmt_shape(shape) -> str:
    """A shape as Python writes a tuple, None for a dim known only at run time: (None, 3)."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
           ("," if len(shape) == 1 else "") + ")"


def user_location(depth: int = 1):
    """(filename, lineno) of the innermost frame outside graphc: the user's line that built a node."""
    f = sys._getframe(depth)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_INTERNAL):
            return (fn, f.f_lineno)
        f = f.f_back
    return None


class FrozenAttrs(dict):
    """An immutable, hashable dict of an op's attributes (ints, floats, strings, tuples, dtypes)."""

    __slots__ = ("_hash",)

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._hash = hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))

    def __hash__(self):
        return self._hash

    def _immutable(self, *a, **k):
        raise TypeError("op attributes are immutable")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _immutable


def _bits(v):
    """v as a cache key that tells apart what == does not: -0.0 from 0.0, True from 1, 1.0 from 1."""
    if isinstance(v, tuple):
        return tuple(_bits(x) for x in v)
    if isinstance(v, float):
        return ("f", v.hex())
    if isinstance(v, (bool, int)):
        return (type(v).__name__, v)
    return v


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


_EMPTY = FrozenAttrs()
_serial = itertools.count(1)
# Structurally identical nodes are one object; weak values let unused graphs be collected.
_CACHE: weakref.WeakValueDictionary[tuple, Node] = weakref.WeakValueDictionary()


class Cell:
    """The mutable storage behind a parameter: one array, updated in place so its identity is stable.

    A device backend may keep a copy of it elsewhere (a GPU's memory): it attaches a `mirror`
    (graphc.protocol.Mirror, the backend's own object) that knows whether its copy is ahead of the
    host array. Reading `array` asks the mirror to bring a newer copy back first; anyone given the
    host array may write into it, so the mirror also learns that its copy may be out of date. A host
    backend tells the mirrors of what it reads and writes the same (graphc.function.Function), which
    costs nothing while no cell has one (Cell.mirrored is 0)."""

    __slots__ = ("_array", "default_update", "role", "mirror")
    mirrored = 0  # how many cells have a mirror (class-wide: host functions skip the checks at 0)

    def __init__(self, array: np.ndarray, role: str = "weight"):
        self._array = array
        # weight (learned), statistics (running averages), optimizer (moments, step, lr), rng (a key)
        self.role = role
        # the value a training function assigns when its caller gives no update of its own
        # (running statistics, random keys), as PyTensor's shared-variable default_update
        self.default_update = None
        self.mirror = None

    @property
    def array(self) -> np.ndarray:
        """The host array, current (a mirror that is ahead of it copies itself back first)."""
        if self.mirror is not None:
            self.mirror.handed_out(self._array)
        return self._array

    def attach(self, mirror) -> None:
        """Give the cell a device backend's mirror (once; it keeps it)."""
        if self.mirror is None:
            Cell.mirrored += 1
        self.mirror = mirror


class Node:
    """One value in a graph: op applied to inputs with attrs; shape and dtype known when it is built."""

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "uid", "name", "loc", "data", "serial",
                 "origin", "__weakref__")
    # Make NumPy defer to Node's reflected operators (np.float32(2) * x -> x.__rmul__).
    __array_ufunc__ = None

    def __init__(self, op, inputs, attrs, shape, dtype, uid, name, loc, data):
        s = object.__setattr__
        s(self, "op", op)
        s(self, "inputs", inputs)
        s(self, "attrs", attrs)
        s(self, "shape", shape)
        s(self, "dtype", dtype)
        s(self, "uid", uid)
        s(self, "name", name)
        s(self, "loc", loc)
        s(self, "data", data)
        s(self, "serial", next(_serial))
        s(self, "origin", None)  # for backward nodes: the forward node whose gradient rule built it

    def __setattr__(self, key, value):
        if key == "value":
            return Node.value.fset(self, value)
        raise AttributeError(f"Node is immutable (tried to set {key!r})")

    __hash__ = object.__hash__

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def label(self) -> str:
        """A short name for messages and drawings: the user's name, or op#serial."""
        return self.name if self.name else f"{self.op.name}#{self.serial}"

    @property
    def is_leaf(self) -> bool:
        return not self.inputs

    @property
    def value(self) -> np.ndarray:
        """Current array of a parameter (live, updated in place by compiled functions) or of a constant."""
        if self.op.name == "parameter":
            return self.data.array
        if self.op.name == "constant":
            return self.data
        raise GraphError(f"{self.label} ({self.op.name}) has no value until a compiled function runs it",
                         self.loc)

    @value.setter
    def value(self, new) -> None:
        if self.op.name != "parameter":
            raise GraphError(f"only a parameter's value can be set, not {self.label} ({self.op.name})",
                             user_location())
        from .errors import DTypeError, ShapeError
        arr = np.asarray(new)
        if arr.shape != self.shape:
            raise ShapeError(f"parameter {self.label} has shape {self.shape}; cannot set a value of "
                             f"shape {arr.shape}", user_location())
        if not np.can_cast(arr.dtype, self.dtype, "same_kind"):
            raise DTypeError(f"parameter {self.label} is {self.dtype}; cannot set a value of dtype "
                             f"{arr.dtype}", user_location())
        np.copyto(self.data.array, arr, casting="same_kind")

    def __repr__(self) -> str:
        return f"<Node {self.label}: {self.op.name} {fmt_shape(self.shape)} {self.dtype}>"

    def __bool__(self):
        raise TypeError(f"the truth value of graph node {self.label} is not known until the graph runs; "
                        "use gc.where(...) or compare values after calling the compiled function")

    def __iter__(self):
        raise TypeError(f"graph node {self.label} is not iterable; index it (x[i]) instead")

    def __len__(self):
        if not self.shape:
            raise TypeError(f"len() of a 0-d node {self.label}")
        if self.shape[0] is None:
            raise TypeError(f"len() of {self.label}: its first dimension is known only at run time")
        return self.shape[0]


def make_node(op, inputs=(), attrs=None, *, uid=None, name=None, data=None, loc=None) -> Node:
    """Build (or find in the cache) the node op(inputs; attrs); shape/dtype errors name the user's line."""
    inputs = tuple(inputs)
    attrs = FrozenAttrs({k: _freeze(v) for k, v in attrs.items()}) if attrs else _EMPTY
    key = (op, inputs, tuple((k, _bits(v)) for k, v in sorted(attrs.items())) if attrs else (), uid)
    node = _CACHE.get(key)
    if node is not None:
        return node
    if loc is None:
        loc = user_location(2)
    if op.arity is not None and len(inputs) != op.arity:
        raise GraphError(f"{op.name} takes {op.arity} input{'s' * (op.arity != 1)}, got {len(inputs)}", loc)
    try:
        shape, dtype = op.infer(inputs, attrs)
    except GraphError as e:
        if e.loc is None:
            e = type(e)(f"{op.name}: {e.message}", loc)
            raise e from None
        raise
    if None not in shape and math.prod(shape) >= 2 ** 63:
        raise ShapeError(f"{op.name}: shape {fmt_shape(shape)} has {math.prod(shape)} elements, more than "
                         "an int64 counts", loc)
    node = Node(op, inputs, attrs, tuple(shape), np.dtype(dtype), uid, name, loc, data)
    _CACHE[key] = node
    return node


def new_uid() -> int:
    """A fresh id for leaves that must stay distinct (placeholders, parameters, random ops)."""
    return next(_serial)


def constant_key(value: np.ndarray) -> tuple:
    """Cache key of a constant's value: equal arrays (dtype, shape, bytes) give the same constant."""
    digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16).hexdigest()
    return (value.dtype.str, value.shape, digest)


def toposort(outputs) -> list[Node]:
    """Nodes reachable from outputs, inputs before users; iterative and deterministic (input order)."""
    order: list[Node] = []
    state: dict[Node, int] = {}  # 1 = on the stack, 2 = done
    for out in outputs:
        if out in state:
            continue
        stack = [(out, 0)]
        state[out] = 1
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i]
                if child not in state:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                stack.pop()
                state[node] = 2
                order.append(node)
    return order


def consumers(order) -> dict[Node, list[Node]]:
    """For each node in a topological order, the nodes that use it (in order, once per use)."""
    users: dict[Node, list[Node]] = {n: [] for n in order}
    for n in order:
        for i in n.inputs:
            users[i].append(n)
    return users


def format_graph(outputs, names: dict | None = None) -> str:
    """A text dump of the graph: one line per node with op, inputs, attrs, shape and dtype."""
    order = toposort(outputs if isinstance(outputs, (list, tuple)) else [outputs])
    ids = {n: f"%{k}" for k, n in enumerate(order)}
    lines = []
    for n in order:
        args = [ids[i] for i in n.inputs]
        if n.op.name == "constant" and n.data.size <= 8:
            args.append(np.array2string(n.data, separator=", "))
        hidden = ("shape", "dtype", "key") if n.is_leaf else ()
        args += [f"{k}={v}" for k, v in sorted(n.attrs.items()) if k not in hidden]
        extra = f"  # {n.name}" if n.name else ""
        if names and n in names:
            extra += f"  # {names[n]}"
        lines.append(f"{ids[n]} = {n.op.name}({', '.join(args)}) : {fmt_shape(n.shape)} {n.dtype}{extra}")
    return "\n".join(lines)


def by_label(params) -> dict:
    """Parameters by their labels (what checkpoints name them); two parameters with one label are a
    CheckpointError naming them."""
    from .errors import CheckpointError
    out: dict = {}
    for p in params:
        if p.label in out and out[p.label] is not p:
            raise CheckpointError(f"two parameters are named {p.label!r}; give them distinct names "
                                  "(gc.parameter(..., name=...)) to checkpoint them", user_location())
        out[p.label] = p
    return out


def substitute(roots, mapping: dict) -> list:
    """The roots rebuilt with the nodes in mapping replaced by their values (everything between
    cloned through the constructor cache, keeping each node's uid, name, data, line and origin)."""
    new = dict(mapping)
    for n in toposort([r for r in roots if r not in new]):
        if n in new:
            continue
        if n.is_leaf:
            new[n] = n
            continue
        ins = tuple(new[i] for i in n.inputs)
        if all(a is b for a, b in zip(ins, n.inputs)):
            new[n] = n
            continue
        m = make_node(n.op, ins, dict(n.attrs), uid=n.uid, name=n.name, data=n.data, loc=n.loc)
        if m.origin is None and n.origin is not None:
            object.__setattr__(m, "origin", n.origin)
        new[n] = m
    return [new[r] for r in roots]

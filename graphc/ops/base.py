"""The primitive base class, the op registry and the shape helpers every op's rule uses."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import ShapeError
from ..ir import fmt_shape  # noqa: F401  (the ops' shape rules format shapes with it)

REGISTRY: dict[str, type[Op]] = {}


class Op:
    """A primitive: a shape/dtype rule (infer) and its NumPy meaning (impl). Never instantiated.

    kind is one of leaf, elementwise, reduction, movement, matmul, random, control: passes,
    backends and drawings dispatch on it.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    arity: ClassVar[int | None] = None  # None: any number of inputs
    differentiable: ClassVar[bool] = True
    value_inputs: ClassVar[int | None] = None  # inputs read for their values; later ones lend a shape
    # What the compiler knows about the op: passes and backends read these traits, never its name.
    fusible: ClassVar[bool] = False         # computed per element inside a fused loop
    cheap: ClassVar[bool] = False           # cheap to recompute per element where a smaller, broadcast
                                            # value of it is read (the negated row max in x - max)
    grad_reads_output: ClassVar[bool] = False  # its gradient reads its own value (exp, tanh, sigmoid):
                                               # a reverse scan reads the value the forward saved
    loop_reduction: ClassVar[bool] = False  # a reduction the loop computing its input folds in
    row_reduction: ClassVar[bool] = False   # computed per row by a "rows" kernel before an epilogue
    view: ClassVar[bool] = False            # a view of its input's buffer: no kernel computes it
    index_read: ClassVar[bool] = False      # fusible only as a read of a kernel input at other indices
                                            # (a transpose, a slice): its input is never computed in
                                            # that loop; read_index says where, per node
    tuple_valued: ClassVar[bool] = False    # stands for several results (a scan), read by projections
    projection: ClassVar[bool] = False      # picks result attrs["index"] of its tuple-valued input
    composite_grad: ClassVar[bool] = False  # differentiated through composite(node), the same value in
                                            # primitives (by graphc.autodiff, which owns vjp)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "name" in cls.__dict__:
            if cls.name in REGISTRY:
                raise RuntimeError(f"op {cls.name!r} registered twice")
            REGISTRY[cls.name] = cls

    @classmethod
    def read_index(cls, node, out_index) -> list | None:
        """For an index read (index_read): the index into its input (an expression per input axis)
        of the output element at out_index (an expression per axis), or None where this node
        cannot be read so (it is then a kernel of its own)."""
        return None

    @classmethod
    def read_guard(cls, node, out_index) -> str | None:
        """For an index read: the condition under which the element at out_index is read from the
        input (elsewhere it is 0: an unslice's zeros around its slice), or None where it always is."""
        return None

    @classmethod
    def infer(cls, inputs, attrs) -> tuple[tuple, np.dtype]:
        """Shape and dtype of op(inputs; attrs); raises ShapeError/DTypeError on a mismatch."""
        raise NotImplementedError(f"{cls.name}: no shape rule")

    @classmethod
    def impl(cls, *xs: np.ndarray, **attrs) -> np.ndarray:
        """The op's meaning in NumPy: the reference every backend is tested against."""
        raise NotImplementedError(f"{cls.name}: no NumPy implementation")

    @classmethod
    def check_run_time(cls, node, in_shapes, out_shape) -> None:
        """Raise ShapeError when these run-time shapes break an assumption of the static graph
        (by default none: infer on the concrete shapes checks everything)."""

    @classmethod
    def grad(cls, node, g) -> tuple:
        """Cotangents of node's inputs given the cotangent g of node, as Nodes (None: zero).

        Elementwise rules may return a cotangent of the broadcast output shape: the driver
        (graphc/autodiff.py) sums it back to the input's shape and casts it to its dtype.
        """
        raise NotImplementedError(f"{cls.name}: no gradient rule")

    def __repr__(self):  # pragma: no cover - ops are classes, never instances
        return f"<op {self.name}>"


def broadcast_shapes(*shapes) -> tuple:
    """NumPy broadcasting of shapes whose dims may be None (known at run time; never assumed to be 1)."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(ndim):
        dims = [s[len(s) - ndim + k] for s in shapes if len(s) - ndim + k >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError("cannot broadcast shapes " + " and ".join(fmt_shape(s) for s in shapes))
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def check_run_time_broadcast(node, operands, out_shape) -> None:
    """graphc's broadcasting rule for dims known only at run time (PyTensor's): a None dim never
    broadcasts. The graph was built assuming it equals the dims it meets, and the kernels index it
    so; fed as 1 against a larger size it is an error, not a silent stretch. operands: (input node,
    static shape, run-time shape), right-aligned against out_shape."""
    for x, static, shape in operands:
        off = len(out_shape) - len(static)
        for q, (d, s) in enumerate(zip(static, shape)):
            want = out_shape[off + q]
            if d is None and s != want:
                raise ShapeError(
                    f"{node.op.name} ({node.label}): dim {q} of input {x.label} {fmt_shape(x.shape)} is "
                    f"known only at run time and was fed as {s}, but it meets size {want}: graphc never "
                    f"broadcasts a run-time dim (it is assumed equal to the dims it meets); declare "
                    f"that dim 1 to broadcast it, or feed {want}", node.loc)


def swap_last_two(ndim: int) -> tuple:
    """The perm of a transpose that swaps the last two of ndim axes (a batch of transposed matrices)."""
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


def normalize_axes(axis, ndim: int, shape=None) -> tuple[int, ...]:
    """axis=None|int|tuple -> sorted tuple of distinct non-negative axes, checked against ndim."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            where = f" of shape {fmt_shape(shape)}" if shape is not None else ""
            raise ShapeError(f"axis {a} is out of range for a {ndim}-d tensor{where}")
        a %= ndim if ndim else 1
        if a in out:
            raise ShapeError(f"axis {a} repeated in {axis}")
        out.append(a)
    return tuple(sorted(out))


def reduced_shape(shape, axes, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def reads(node) -> tuple:
    """The inputs whose values node reads (a trailing reference input only lends its run-time shape)."""
    k = node.op.value_inputs
    return node.inputs if k is None else node.inputs[:k]


def index_read(n) -> bool:
    """n is fused as a read of its input at other indices (Op.index_read, Op.read_index)."""
    return n.op.index_read and n.op.read_index(n, ("i",) * n.ndim) is not None

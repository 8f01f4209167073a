"""The IR-level builder: one function per primitive (leaves, elementwise math, reductions, shape
ops, matmul, log_softmax), with NumPy's broadcasting, promotion and weakly typed Python scalars.

Gradient rules, passes, autodiff and the front end all build nodes with it (the front end adds the
composites: activations, losses, layers...). It also gives Node its arithmetic operators, so a
gradient rule may write ``g * x``.
"""
from __future__ import annotations

import builtins
import math
import numbers

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError
from ..ir import Cell, Node, constant_key, fmt_shape, make_node, new_uid, user_location
from .base import REGISTRY, normalize_axes, swap_last_two

_op = REGISTRY.__getitem__

__all__ = [
    "placeholder", "parameter", "constant", "as_node", "random_uniform", "train_switch",
    "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "atan", "erf", "sigmoid", "softplus", "neg",
    "abs", "sign", "relu", "step", "logical_not", "add", "mul", "div", "pow", "maximum", "minimum",
    "less", "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_xor", "greater",
    "greater_equal", "sub", "square", "reciprocal", "cast", "where",
    "sum", "prod", "max", "min", "logsumexp", "argmax", "argmin", "size_of", "mean", "matmul",
    "reshape", "transpose", "broadcast_to", "zeros_like", "expand_dims", "squeeze", "concat", "stack",
    "log_softmax",
]


# ====================================================================== leaves and Python values


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


def pair(a, b) -> tuple[Node, Node]:
    if isinstance(a, Node):
        return a, as_node(b, like=a)
    if isinstance(b, Node):
        return as_node(a, like=b), b
    a = as_node(a)
    return a, as_node(b, like=a)


def checked_axes(x: Node, axis) -> tuple:
    try:
        return normalize_axes(axis, x.ndim, x.shape)
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


def checked_axes_for_rank(axis, ndim):
    try:
        return normalize_axes(axis, ndim)
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


# ====================================================================== random bits and the mode switch


def random_uniform(key, like, dtype=None) -> Node:
    """Uniform [0, 1) numbers of like's shape drawn from an int64 scalar key (counter-based: element
    i is a hash of (key, i), the same on every backend). dtype defaults to like's float dtype."""
    key, like = as_node(key), as_node(like)
    if dtype is None:
        dtype = like.dtype if like.dtype.kind == "f" else dt.float32
    return make_node(_op("random_uniform"), (key, like), {"dtype": dt.as_dtype(dtype)})


def train_switch(train, eval) -> Node:  # noqa: A002 - the mode's name
    """`train` in a function compiled with training=True, `eval` in one compiled for inference."""
    train, eval = pair(train, eval)
    if train is eval:
        return train
    return make_node(_op("train_switch"), (train, eval))


# ====================================================================== elementwise


def _unary(name):
    def f(x) -> Node:
        return make_node(_op(name), (as_node(x),))
    f.__name__ = name
    f.__doc__ = f"Elementwise {name}(x)."
    return f


exp = _unary("exp")
log = _unary("log")
log1p = _unary("log1p")
sqrt = _unary("sqrt")
sin = _unary("sin")
cos = _unary("cos")
tanh = _unary("tanh")
atan = _unary("atan")
erf = _unary("erf")
sigmoid = _unary("sigmoid")
softplus = _unary("softplus")
neg = _unary("neg")
abs = _unary("abs")  # noqa: A001 - the NumPy name
sign = _unary("sign")
relu = _unary("relu")
step = _unary("step")
step.__doc__ = "Heaviside step: 1 where x >= 0, else 0 (NaN stays NaN), in x's dtype."
logical_not = _unary("logical_not")


def _binary(name):
    def f(a, b) -> Node:
        return make_node(_op(name), pair(a, b))
    f.__name__ = name
    f.__doc__ = f"Elementwise {name}(a, b) with NumPy broadcasting and promotion."
    return f


add = _binary("add")
mul = _binary("mul")
div = _binary("div")
_pow = _binary("pow")


def pow(a, b) -> Node:  # noqa: A001 - the NumPy name
    """a ** b with NumPy's rules; an integer power's exponent must be >= 0 (checked when it is a
    constant, else at run time), as NumPy raises rather than giving 0."""
    a, b = pair(a, b)
    if dt.result_type(a.dtype, b.dtype).kind in "iu" and b.dtype.kind in "iu":
        if b.op.name == "constant":
            if (b.data < 0).any():
                raise DTypeError(f"pow: integers to negative integer powers are not allowed (exponent "
                                 f"{b.data.min()}); cast to float first", user_location())
        else:
            b = make_node(_op("check_index"), (b,), {"bound": int(np.iinfo(b.dtype).max), "wrap": False,
                                                     "what": "integer exponent"})
    return _pow(a, b)
maximum = _binary("maximum")
minimum = _binary("minimum")
less = _binary("less")
less_equal = _binary("less_equal")
equal = _binary("equal")
not_equal = _binary("not_equal")
logical_and = _binary("logical_and")
logical_or = _binary("logical_or")


def logical_xor(a, b) -> Node:
    """a != b for bool tensors (np.logical_xor)."""
    return not_equal(require_bool(a, "logical_xor"), require_bool(b, "logical_xor"))


def greater(a, b) -> Node:
    """a > b, built as b < a."""
    a, b = pair(a, b)
    return less(b, a)


def greater_equal(a, b) -> Node:
    """a >= b, built as b <= a."""
    a, b = pair(a, b)
    return less_equal(b, a)


def sub(a, b) -> Node:
    """a - b, built as a + (-b)."""
    a, b = pair(a, b)
    if a.dtype == dt.bool_ and b.dtype == dt.bool_:
        raise DTypeError("sub: subtracting bool tensors is not defined (use gc.logical_xor, or gc.cast to a "
                         "number first)",
                         user_location())
    return add(a, neg(b))


def square(x) -> Node:
    """x * x."""
    x = as_node(x)
    return mul(x, x)


def reciprocal(x) -> Node:
    """1 / x (true division: ints give float64)."""
    x = as_node(x)
    return div(as_node(1, like=x), x)


def cast(x, dtype) -> Node:
    """x converted to dtype (float to int truncates toward zero, as in NumPy)."""
    x = as_node(x)
    dtype = dt.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    return make_node(_op("cast"), (x,), {"dtype": dtype})


def where(cond, a, b) -> Node:
    """a where cond is true, else b; a non-bool cond means cond != 0."""
    cond = as_node(cond)
    if cond.dtype != dt.bool_:
        cond = not_equal(cond, 0)
    a, b = pair(a, b)
    return make_node(_op("where"), (cond, a, b))


# ====================================================================== reductions and matmul


def _reduce(name):
    def f(x, axis=None, keepdims: bool = False) -> Node:
        x = as_node(x)
        axes = checked_axes(x, axis)
        return make_node(_op(name), (x,), {"axes": axes, "keepdims": bool(keepdims)})
    f.__name__ = name
    f.__doc__ = f"{name} over axis (None: all, int or tuple), NumPy semantics."
    return f


sum = _reduce("sum")  # noqa: A001
prod = _reduce("prod")
max = _reduce("max")  # noqa: A001
min = _reduce("min")  # noqa: A001
logsumexp = _reduce("logsumexp")
logsumexp.__doc__ = "log(sum(exp(x))) over axis, stable for large inputs."


def _argreduce(name):
    def f(x, axis=None, keepdims: bool = False) -> Node:
        x = as_node(x)
        if axis is not None:
            (axis,) = checked_axes(x, axis)
        return make_node(_op(name), (x,), {"axis": axis, "keepdims": bool(keepdims)})
    f.__name__ = name
    f.__doc__ = f"Index of the {name[3:]} along one axis (None: of the flattened tensor), int64."
    return f


argmax = _argreduce("argmax")
argmin = _argreduce("argmin")


def size_of(x, axis=None, dtype="float32") -> Node:
    """Number of elements of x along axis, a constant when static, else read at run time."""
    x = as_node(x)
    axes = checked_axes(x, axis)
    dims = [x.shape[a] for a in axes]
    dtype = dt.as_dtype(dtype)
    if None not in dims:
        return constant(np.asarray(math.prod(dims), dtype=dtype))
    return make_node(_op("dimsize"), (x,), {"axes": axes, "dtype": dtype})


def mean(x, axis=None, keepdims: bool = False) -> Node:
    """Arithmetic mean over axis; ints average in float64, as in NumPy."""
    x = as_node(x)
    s = sum(x, axis, keepdims)
    return div(s, size_of(x, axis, dt.float_result(s.dtype)))


def matmul(a, b) -> Node:
    """a @ b with NumPy's rules: vectors, matrices, broadcast batches. An activation (..., K) times
    a matrix (K, N) is one product of its rows, (prod(...), K) @ (K, N), reshaped back: one GEMM
    forward, and its gradients are one GEMM each (not a product per batch and a sum)."""
    a, b = pair(a, b)
    common = dt.result_type(a.dtype, b.dtype)  # one dtype per product, as BLAS needs
    a, b = cast(a, common), cast(b, common)
    lead = a.shape[:-1]
    # (not a batch of transposed matrices, whose matrices are strided views BLAS reads as they
    # are; a batch transposed otherwise, as an RNN's time-major outputs made batch-first, is: its
    # rows are a copy, one pass over it, where a product per batch would make the weight's
    # gradient a product per batch and a sum)
    swapped = a.op.name == "transpose" and tuple(a.attrs["perm"]) == swap_last_two(a.ndim)
    if a.ndim > 2 and b.ndim == 2 and a.shape[-1] is not None and a.shape[-1] == b.shape[0] \
            and lead.count(None) + (b.shape[1] is None) <= 1 and not swapped:
        rows = make_node(_op("matmul"), (reshape(a, (-1, a.shape[-1])), b))
        return reshape(rows, tuple(-1 if d is None else d for d in lead) + (b.shape[1],))
    return make_node(_op("matmul"), (a, b))


def require_bool(x, op):
    x = as_node(x)
    if x.dtype != dt.bool_:
        raise DTypeError(f"'{op}' is logical here and needs bool tensors, got {x.dtype} "
                         "(bitwise integer ops are not supported)", user_location())
    return x


# ====================================================================== shape ops


def reshape(x, *shape) -> Node:
    """x with a new shape (one -1 or one None is inferred; other None dims keep x's run-time size)."""
    x = as_node(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(-1 if d is None else int(d) for d in shape)
    if shape == x.shape:
        return x
    return make_node(_op("reshape"), (x,), {"shape": shape})


def reshape_keep(x: Node, new_shape: tuple, src: tuple) -> Node:
    """Reshape to new_shape; a None entry i takes x's run-time size along axis src[i], or is
    inferred from the element count when src[i] is -1 (at most one such entry)."""
    if new_shape == x.shape:
        return x
    if builtins.sum(d is None for d in new_shape) <= 1:
        return make_node(_op("reshape"), (x,), {"shape": tuple(-1 if d is None else d for d in new_shape)})
    if builtins.sum(d is None and s < 0 for d, s in zip(new_shape, src)) > 1:
        raise ShapeError(f"reshape of {fmt_shape(x.shape)} to {fmt_shape(new_shape)}: more than one "
                         "run-time dimension would need inferring", user_location())
    shape = tuple(-1 if d is None and s < 0 else d for d, s in zip(new_shape, src))
    src = tuple(s if d is None else -1 for d, s in zip(shape, src))
    return make_node(_op("reshape"), (x,), {"shape": shape, "src": src})


def transpose(x, axes=None) -> Node:
    """Permute axes (reverse them when axes is None), as np.transpose."""
    x = as_node(x)
    if axes is None:
        perm = tuple(range(x.ndim))[::-1]
    else:
        perm = tuple(int(a) for a in axes)
        if sorted(a % builtins.max(x.ndim, 1) if -x.ndim <= a < x.ndim else a for a in perm) != list(range(x.ndim)):
            raise ShapeError(f"transpose: permutation {tuple(axes)} does not fit {fmt_shape(x.shape)} (it must "
                             f"order the axes 0..{x.ndim - 1}, each once)", user_location())
        perm = tuple(a % x.ndim for a in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return make_node(_op("transpose"), (x,), {"perm": perm})


def broadcast_to(x, shape, like: Node | None = None) -> Node:
    """x broadcast to shape; None dims of shape are read from `like` at run time."""
    x = as_node(x)
    shape = tuple(None if d is None else int(d) for d in shape)
    if shape == x.shape:
        return x
    inputs = (x, like) if like is not None and None in shape else (x,)
    return make_node(_op("broadcast_to"), inputs, {"shape": shape})


def zeros_like(x) -> Node:
    """Zeros of x's shape and dtype (run-time dims read from x)."""
    x = as_node(x)
    return broadcast_to(constant(np.zeros((), x.dtype)), x.shape, like=x)


def expand_dims(x, axis) -> Node:
    """x with size-1 axes inserted at the given positions of the result."""
    x = as_node(x)
    n = x.ndim + (1 if isinstance(axis, (int, np.integer)) else len(axis))
    axes = checked_axes_for_rank(axis, n)
    shape, src, k = [], [], 0
    for i in range(n):
        if i in axes:
            shape.append(1)
            src.append(-1)
        else:
            shape.append(x.shape[k])
            src.append(k)
            k += 1
    return reshape_keep(x, tuple(shape), tuple(src))


def squeeze(x, axis=None) -> Node:
    """x without size-1 axes (all of them, or the given ones, which must have size 1)."""
    x = as_node(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = checked_axes(x, axis)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ShapeError(f"squeeze: axis {bad[0]} of {fmt_shape(x.shape)} does not have size 1",
                             user_location())
    keep = [i for i in range(x.ndim) if i not in axes]
    return reshape_keep(x, tuple(x.shape[i] for i in keep), tuple(keep))


def concat(xs, axis: int = 0) -> Node:
    """Join tensors along an existing axis."""
    xs = [as_node(x) for x in xs]
    if not xs:
        raise ShapeError("concat needs at least one tensor", user_location())
    (axis,) = checked_axes(xs[0], axis)
    if len(xs) == 1:
        return xs[0]
    return make_node(_op("concat"), tuple(xs), {"axis": axis})


def stack(xs, axis: int = 0) -> Node:
    """Join tensors along a new axis."""
    xs = [as_node(x) for x in xs]
    if not xs:
        raise ShapeError("stack needs at least one tensor", user_location())
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise ShapeError("stack needs tensors of one shape, got " +
                         ", ".join(fmt_shape(x.shape) for x in xs), user_location())
    (axis,) = checked_axes_for_rank(axis, xs[0].ndim + 1)
    return concat([expand_dims(x, axis) for x in xs], axis)


def log_softmax(x, axis: int = -1) -> Node:
    """(x - max) - log(sum(exp(x - max))) along axis: exact for large logits (a primitive)."""
    x = as_node(x)
    x = x if x.dtype.kind == "f" else cast(x, dt.float_result(x.dtype))
    return make_node(_op("log_softmax"), (x,), {"axes": checked_axes(x, axis)})


# ====================================================================== Node's operators


def _install_operators() -> None:
    """Node's arithmetic, comparison and logical operators and its NumPy-style methods (the front
    end adds indexing and flatten)."""

    def rev(f):
        return lambda self, other: f(other, self)

    def logical(f):
        return lambda a, b: f(require_bool(a, "&|"), require_bool(b, "&|"))

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
    N.__and__, N.__rand__ = logical(logical_and), rev(logical(logical_and))
    N.__or__, N.__ror__ = logical(logical_or), rev(logical(logical_or))
    N.__xor__, N.__rxor__ = logical_xor, rev(logical_xor)
    N.__invert__ = lambda self: logical_not(require_bool(self, "~"))
    N.T = property(lambda self: transpose(self))
    N.reshape = reshape
    N.transpose = lambda self, *axes: transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    N.sum, N.mean, N.max, N.min, N.prod = sum, mean, max, min, prod
    N.argmax, N.argmin = argmax, argmin
    N.astype = cast
    N.squeeze = squeeze


_install_operators()

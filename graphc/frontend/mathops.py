"""Elementwise math, activations, reductions and matmul, with NumPy's broadcasting and promotion."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError
from ..ir import Node, make_node, user_location
from ..ops import REGISTRY as _OPS
from .shape import reshape
from .tensors import _axes, _pair, as_node, constant

_op = _OPS.__getitem__

__all__ = [
    "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "atan", "erf", "sigmoid", "softplus", "neg",
    "abs", "sign", "relu", "step", "logical_not", "add", "mul", "div", "pow", "maximum", "minimum",
    "less", "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_xor", "greater",
    "greater_equal", "sub", "square", "reciprocal", "cast", "where", "clip", "leaky_relu", "prelu",
    "elu", "gelu", "silu", "sum", "prod", "max", "min", "logsumexp", "argmax", "argmin", "size_of", "mean",
    "var", "std", "matmul",
]


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
        return make_node(_op(name), _pair(a, b))
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
    a, b = _pair(a, b)
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
    return not_equal(_require_bool(a, "logical_xor"), _require_bool(b, "logical_xor"))


def greater(a, b) -> Node:
    """a > b, built as b < a."""
    a, b = _pair(a, b)
    return less(b, a)


def greater_equal(a, b) -> Node:
    """a >= b, built as b <= a."""
    a, b = _pair(a, b)
    return less_equal(b, a)


def sub(a, b) -> Node:
    """a - b, built as a + (-b)."""
    a, b = _pair(a, b)
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
    a, b = _pair(a, b)
    return make_node(_op("where"), (cond, a, b))


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


# ====================================================================== reductions


def _reduce(name):
    def f(x, axis=None, keepdims: bool = False) -> Node:
        x = as_node(x)
        axes = _axes(x, axis)
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
            (axis,) = _axes(x, axis)
        return make_node(_op(name), (x,), {"axis": axis, "keepdims": bool(keepdims)})
    f.__name__ = name
    f.__doc__ = f"Index of the {name[3:]} along one axis (None: of the flattened tensor), int64."
    return f


argmax = _argreduce("argmax")
argmin = _argreduce("argmin")


def size_of(x, axis=None, dtype="float32") -> Node:
    """Number of elements of x along axis, a constant when static, else read at run time."""
    x = as_node(x)
    axes = _axes(x, axis)
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


def matmul(a, b) -> Node:
    """a @ b with NumPy's rules: vectors, matrices, broadcast batches. An activation (..., K) times
    a matrix (K, N) is one product of its rows, (prod(...), K) @ (K, N), reshaped back: one GEMM
    forward, and its gradients are one GEMM each (not a product per batch and a sum)."""
    a, b = _pair(a, b)
    common = dt.result_type(a.dtype, b.dtype)  # one dtype per product, as BLAS needs
    a, b = cast(a, common), cast(b, common)
    lead = a.shape[:-1]
    # (not a transposed batch: its matrices are strided views BLAS reads as they are, where the
    # flattened rows would be a copy)
    if a.ndim > 2 and b.ndim == 2 and a.shape[-1] is not None and a.shape[-1] == b.shape[0] \
            and lead.count(None) + (b.shape[1] is None) <= 1 and a.op.name != "transpose":
        rows = make_node(_op("matmul"), (reshape(a, (-1, a.shape[-1])), b))
        return reshape(rows, tuple(-1 if d is None else d for d in lead) + (b.shape[1],))
    return make_node(_op("matmul"), (a, b))


def _require_bool(x, op):
    x = as_node(x)
    if x.dtype != dt.bool_:
        raise DTypeError(f"'{op}' is logical here and needs bool tensors, got {x.dtype} "
                         "(bitwise integer ops are not supported)", user_location())
    return x

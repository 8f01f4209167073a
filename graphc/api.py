"""Front-end functions: leaves, elementwise math, reductions, shape ops, indexing and Node operators.

Composites (sub, mean, softmax, losses, ...) are built here from the primitives in graphc/ops.
"""
from __future__ import annotations

import builtins
import math
import numbers

import numpy as np

from . import dtypes as dt
from .errors import DTypeError, GraphIndexError, ShapeError
from .ir import Cell, Node, constant_key, make_node, new_uid, user_location
from .ops import REGISTRY as _OPS
from .ops.base import fmt_shape, normalize_axes

_op = _OPS.__getitem__

# ====================================================================== leaves


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


def zeros_like(x) -> Node:
    """Zeros of x's shape and dtype (run-time dims read from x)."""
    x = as_node(x)
    return broadcast_to(constant(np.zeros((), x.dtype)), x.shape, like=x)


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


def _pair(a, b) -> tuple[Node, Node]:
    if isinstance(a, Node):
        return a, as_node(b, like=a)
    if isinstance(b, Node):
        return as_node(a, like=b), b
    a = as_node(a)
    return a, as_node(b, like=a)


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


# ====================================================================== reductions


def _reduce(name):
    def f(x, axis=None, keepdims: bool = False) -> Node:
        x = as_node(x)
        axes = _axes(x, axis)
        return make_node(_op(name), (x,), {"axes": axes, "keepdims": bool(keepdims)})
    f.__name__ = name
    f.__doc__ = f"{name} over axis (None: all, int or tuple), NumPy semantics."
    return f


def _axes(x: Node, axis) -> tuple:
    try:
        return normalize_axes(axis, x.ndim, x.shape)
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


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


def _reshape_keep(x: Node, new_shape: tuple, src: tuple) -> Node:
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


def permute(x, *axes) -> Node:
    """transpose(x, axes), PyTorch's spelling."""
    return transpose(x, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)


def broadcast_to(x, shape, like: Node | None = None) -> Node:
    """x broadcast to shape; None dims of shape are read from `like` at run time."""
    x = as_node(x)
    shape = tuple(None if d is None else int(d) for d in shape)
    if shape == x.shape:
        return x
    inputs = (x, like) if like is not None and None in shape else (x,)
    return make_node(_op("broadcast_to"), inputs, {"shape": shape})


def random_uniform(key, like, dtype=None) -> Node:
    """Uniform [0, 1) numbers of like's shape drawn from an int64 scalar key (counter-based: element
    i is a hash of (key, i), the same on every backend). dtype defaults to like's float dtype."""
    key, like = as_node(key), as_node(like)
    if dtype is None:
        dtype = like.dtype if like.dtype.kind == "f" else dt.float32
    return make_node(_op("random_uniform"), (key, like), {"dtype": dt.as_dtype(dtype)})


def train_switch(train, eval) -> Node:  # noqa: A002 - the mode's name
    """`train` in a function compiled with training=True, `eval` in one compiled for inference."""
    train, eval = _pair(train, eval)
    if train is eval:
        return train
    return make_node(_op("train_switch"), (train, eval))


def expand_dims(x, axis) -> Node:
    """x with size-1 axes inserted at the given positions of the result."""
    x = as_node(x)
    n = x.ndim + (1 if isinstance(axis, (int, np.integer)) else len(axis))
    axes = _axes_for_rank(axis, n)
    shape, src, k = [], [], 0
    for i in range(n):
        if i in axes:
            shape.append(1)
            src.append(-1)
        else:
            shape.append(x.shape[k])
            src.append(k)
            k += 1
    return _reshape_keep(x, tuple(shape), tuple(src))


def _axes_for_rank(axis, ndim):
    try:
        return normalize_axes(axis, ndim)
    except ShapeError as e:
        raise ShapeError(e.message, user_location()) from None


def squeeze(x, axis=None) -> Node:
    """x without size-1 axes (all of them, or the given ones, which must have size 1)."""
    x = as_node(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = _axes(x, axis)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ShapeError(f"squeeze: axis {bad[0]} of {fmt_shape(x.shape)} does not have size 1",
                             user_location())
    keep = [i for i in range(x.ndim) if i not in axes]
    return _reshape_keep(x, tuple(x.shape[i] for i in keep), tuple(keep))


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Node:
    """Merge axes start_dim..end_dim into one (PyTorch's flatten)."""
    x = as_node(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _axes(x, (start_dim,))[0], _axes(x, (end_dim,))[0]
    merged = x.shape[s:e + 1]
    m = None if None in merged else math.prod(merged)
    shape = x.shape[:s] + (m,) + x.shape[e + 1:]
    src = tuple(range(s)) + (-1,) + tuple(range(e + 1, x.ndim))
    return _reshape_keep(x, shape, src)


def _two(v, what) -> tuple:
    t = tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))
    if len(t) != 2:
        raise ShapeError(f"{what} must be an int or a pair, got {v!r}", user_location())
    return t


def _patches(x, kernel, stride, padding, dilation, value, what) -> Node:
    x = as_node(x)
    k, s, p, d = (_two(kernel, f"{what}: kernel"), _two(stride, f"{what}: stride"),
                  _two(padding, f"{what}: padding"), _two(dilation, f"{what}: dilation"))
    if builtins.min(k + s + d) < 1 or builtins.min(p) < 0:
        raise ShapeError(f"{what}: kernel {k}, stride {s} and dilation {d} must be >= 1 and padding {p} >= 0",
                         user_location())
    if x.ndim != 4 or None in x.shape[1:]:
        raise ShapeError(f"{what} needs x of shape (N, C, H, W) with C, H, W known, got {fmt_shape(x.shape)}",
                         user_location())
    return make_node(_op("im2col"), (x,), {"kernel": k, "stride": s, "padding": p, "dilation": d,
                                          "value": value})


def _out_hw(x, kernel, stride, padding, dilation):
    from .ops.conv import out_size
    k, s, p, d = (_two(v, "") for v in (kernel, stride, padding, dilation))
    return out_size(x.shape[2], k[0], s[0], p[0], d[0]), out_size(x.shape[3], k[1], s[1], p[1], d[1])


def unfold(x, kernel, dilation=1, padding=0, stride=1) -> Node:
    """Sliding windows as columns, as torch.nn.functional.unfold: x (N, C, H, W) ->
    (N, C*kh*kw, OH*OW), zero padding. Its gradient is fold."""
    x = as_node(x)
    return _patches(x, kernel, stride, padding, dilation, 0.0 if x.dtype.kind == "f" else 0, "unfold")


def fold(cols, output_size, kernel, dilation=1, padding=0, stride=1) -> Node:
    """The adjoint of unfold, as torch.nn.functional.fold: columns (N, C*kh*kw, L) summed back onto
    an image (N, C, H, W) of output_size (H, W); overlapping windows add up."""
    cols = as_node(cols)
    k, s, p, d = (_two(kernel, "fold: kernel"), _two(stride, "fold: stride"), _two(padding, "fold: padding"),
                  _two(dilation, "fold: dilation"))
    h, w = _two(output_size, "fold: output_size")
    if cols.ndim != 3 or cols.shape[1] is None or cols.shape[1] % (k[0] * k[1]):
        raise ShapeError(f"fold: columns must be (N, C*{k[0]}*{k[1]}, L), got {fmt_shape(cols.shape)}",
                         user_location())
    c = cols.shape[1] // (k[0] * k[1])
    return make_node(_op("col2im"), (cols,), {"kernel": k, "stride": s, "padding": p, "dilation": d,
                                              "size": (c, h, w)})


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1) -> Node:
    """2-D cross-correlation in NCHW, as torch.nn.functional.conv2d: x (N, C, H, W), w (O, C, kh, kw),
    optional bias (O,); stride, padding (zeros), dilation: an int or a pair. Computed as im2col and
    one batched GEMM (O, C*kh*kw) @ (N, C*kh*kw, OH*OW); the gradients are a GEMM (weight) and a
    GEMM followed by col2im (input). A bias and an activation fuse into the kernel after the GEMM."""
    x, w = as_node(x), as_node(w)
    if w.ndim != 4 or None in w.shape:
        raise ShapeError(f"conv2d: the weight must be (out, in, kh, kw), got {fmt_shape(w.shape)}", user_location())
    o, c, kh, kw = w.shape
    if x.ndim == 4 and x.shape[1] is not None and x.shape[1] != c:
        raise ShapeError(f"conv2d: x has {x.shape[1]} channels {fmt_shape(x.shape)}, the weight expects {c} "
                         f"{fmt_shape(w.shape)}", user_location())
    cols = _patches(x, (kh, kw), stride, padding, dilation, 0.0 if x.dtype.kind == "f" else 0, "conv2d")
    oh, ow = _out_hw(x, (kh, kw), stride, padding, dilation)
    y = reshape(matmul(reshape(w, (o, c * kh * kw)), cols), (-1, o, oh, ow))
    if bias is not None:
        bias = as_node(bias)
        if bias.shape != (o,):
            raise ShapeError(f"conv2d: bias must be ({o},), got {fmt_shape(bias.shape)}", user_location())
        y = add(y, reshape(bias, (o, 1, 1)))
    return y


def _pool(x, kernel, stride, padding, how):
    x = as_node(x)
    stride = kernel if stride is None else stride
    if x.dtype.kind == "f":
        fill = -np.inf if how == "max" else 0.0
    else:
        fill = int(np.iinfo(x.dtype).min) if how == "max" else 0
    cols = _patches(x, kernel, stride, padding, 1, fill, f"{how}_pool2d")
    k = _two(kernel, "")
    c = x.shape[1]
    oh, ow = _out_hw(x, kernel, stride, padding, 1)
    win = reshape(cols, (-1, c, k[0] * k[1], oh * ow))
    red = max(win, axis=2) if how == "max" else mean(win, axis=2)
    return reshape(red, (-1, c, oh, ow))


def max_pool2d(x, kernel, stride=None, padding=0) -> Node:
    """Max over each kernel window of x (N, C, H, W) (stride defaults to the kernel, padding counts
    as -inf), as torch.nn.functional.max_pool2d; its gradient goes to the window's maximum."""
    return _pool(x, kernel, stride, padding, "max")


def avg_pool2d(x, kernel, stride=None, padding=0) -> Node:
    """Mean over each kernel window of x (N, C, H, W), padding counted as zeros (torch's default
    count_include_pad=True)."""
    return _pool(x, kernel, stride, padding, "avg")


def concat(xs, axis: int = 0) -> Node:
    """Join tensors along an existing axis."""
    xs = [as_node(x) for x in xs]
    if not xs:
        raise ShapeError("concat needs at least one tensor", user_location())
    (axis,) = _axes(xs[0], axis)
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
    (axis,) = _axes_for_rank(axis, xs[0].ndim + 1)
    return concat([expand_dims(x, axis) for x in xs], axis)


def pad(x, pad_width, value=0) -> Node:
    """Constant padding, np.pad's pad_width forms: n, (before, after), or one pair per axis."""
    x = as_node(x)
    try:
        pw = np.asarray(pad_width)
        if pw.dtype.kind not in "iu" and pw.size:
            raise ValueError(f"pad widths must be integers, got {pw.dtype}")
        pw = np.broadcast_to(pw.astype(np.int64), (x.ndim, 2))
    except ValueError as e:
        raise ShapeError(f"pad: pad_width {pad_width!r} does not fit a {x.ndim}-d tensor {fmt_shape(x.shape)}: "
                         "give n, (before, after) or one (before, after) pair per axis"
                         + (f" ({e})" if "integers" in str(e) else ""), user_location()) from None
    pw = tuple((int(a), int(b)) for a, b in pw)
    if all(a == 0 and b == 0 for a, b in pw):
        return x
    return make_node(_op("pad"), (x,), {"pad_width": pw, "value": float(value) if x.dtype.kind == "f"
                                         else int(value)})


def take(x, indices, axis=None) -> Node:
    """np.take: gather entries of x along axis (flattened when None) at integer indices."""
    x = as_node(x)
    if axis is None:
        x, axis = reshape(x, -1), 0
    (axis,) = _axes(x, axis)
    idx = _index_node(indices, x.shape[axis])
    return make_node(_op("take"), (x, idx), {"axis": axis})


def embedding(ids, table) -> Node:
    """table[ids]: one row of table (num_embeddings, dim) per integer id, shape ids.shape + (dim,).
    Ids outside [-num, num) raise (GraphIndexError); negative ids count from the end, as NumPy.
    The gradient with respect to table adds each row's gradient into its id's row (scatter-add),
    so repeated ids accumulate."""
    table = as_node(table)
    if table.ndim != 2:
        raise ShapeError(f"embedding: the table must be 2-D (num_embeddings, dim), got shape "
                         f"{fmt_shape(table.shape)}", user_location())
    return take(table, ids, axis=0)


def _index_node(indices, dim) -> Node:
    """Integer indices as a node; constant ones are range-checked now when dim is known."""
    if isinstance(indices, Node):
        if indices.dtype == dt.bool_:
            raise GraphIndexError("boolean masks give data-dependent shapes; use gc.where instead",
                                  user_location())
        if indices.dtype.kind not in "iu":
            raise DTypeError(f"indices must be integers, got {indices.dtype}", user_location())
        return indices
    arr = np.asarray(indices)
    if arr.dtype.kind == "b":
        raise GraphIndexError("boolean masks give data-dependent shapes; use gc.where instead",
                              user_location())
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise GraphIndexError(f"indices must be integers, got {arr.dtype}", user_location())
    if dim is not None and arr.size and (arr.min() < -dim or arr.max() >= dim):
        bad = arr[(arr < -dim) | (arr >= dim)].flat[0]
        raise GraphIndexError(f"index {bad} is out of range for an axis of size {dim}", user_location())
    return constant(arr.astype(np.int64))


def one_hot(labels, num_classes: int, dtype="float32") -> Node:
    """labels[..., None] == arange(num_classes), as dtype (labels outside the range give zeros)."""
    labels = as_node(labels)
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"one_hot needs integer labels, got {labels.dtype}", user_location())
    classes = constant(np.arange(int(num_classes), dtype=labels.dtype))
    return cast(equal(expand_dims(labels, -1), classes), dtype)


def matmul(a, b) -> Node:
    """a @ b with NumPy's rules: vectors, matrices, broadcast batches."""
    a, b = _pair(a, b)
    common = dt.result_type(a.dtype, b.dtype)  # one dtype per product, as BLAS needs
    return make_node(_op("matmul"), (cast(a, common), cast(b, common)))


# ====================================================================== indexing


def getitem(x: Node, key) -> Node:
    """x[key] with ints, slices, None, Ellipsis and integer arrays (NumPy's rules for all of them)."""
    x = as_node(x)
    key = key if isinstance(key, tuple) else (key,)
    key = tuple(np.asarray(k) if isinstance(k, list) else k for k in key)
    if builtins.sum(k is Ellipsis for k in key) > 1:
        raise GraphIndexError("an index can only have one ellipsis (...)", user_location())
    n_real = builtins.sum(k is not None and k is not Ellipsis for k in key)
    if n_real > x.ndim:
        raise GraphIndexError(f"too many indices ({n_real}) for a tensor of shape {fmt_shape(x.shape)}",
                              user_location())
    if Ellipsis in [k if k is Ellipsis else None for k in key]:
        i = [k is Ellipsis for k in key].index(True)
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    else:
        key = key + (slice(None),) * (x.ndim - n_real)

    def is_adv(k):
        return isinstance(k, (Node, np.ndarray)) and not (isinstance(k, np.ndarray) and k.ndim == 0
                                                          and k.dtype.kind in "iu")

    any_adv = builtins.any(is_adv(k) for k in key)
    # items: one per key entry, each ("new",) | ("int", i) | ("slice", s) | ("adv", node)
    items, axis = [], 0
    for k in key:
        if k is None:
            items.append(("new",))
            continue
        d = x.shape[axis]
        if isinstance(k, slice):
            items.append(("slice", k))
        elif is_adv(k) or (any_adv and isinstance(k, (int, np.integer, np.ndarray))):
            items.append(("adv", _index_node(k, d)))
        elif isinstance(k, (int, np.integer, np.ndarray)):
            i = int(k)
            if d is not None and not -d <= i < d:
                raise GraphIndexError(f"index {i} is out of range for axis {axis} of shape "
                                      f"{fmt_shape(x.shape)}", user_location())
            items.append(("int", i))
        else:
            raise GraphIndexError(f"unsupported index {k!r} (use ints, slices, None, ..., or integer "
                                  "arrays)", user_location())
        axis += 1

    # 1) basic slicing of every real axis (ints on static dims become length-1 slices)
    index, axis = [], 0
    for it in items:
        if it[0] == "new":
            continue
        d = x.shape[axis]
        if it[0] == "slice":
            s = it[1]
            index.append((s.start, s.stop, s.step))
        elif it[0] == "int" and d is not None:
            i = it[1] % d
            index.append((i, i + 1, 1))
        else:
            index.append((None, None, None))
        axis += 1
    index = tuple(tuple(None if v is None else int(v) for v in t) for t in index)
    if builtins.any(t != (None, None, None) for t in index):
        x = make_node(_op("slice"), (x,), {"index": index})

    # 2) ints on run-time dims: take a 0-d index (checked at run time), axis disappears
    real = [it for it in items if it[0] != "new"]
    axis = 0
    dropped = set()
    for pos, it in enumerate(real):
        if it[0] == "int" and x.shape[pos] is None:
            x = make_node(_op("take"), (x, constant(np.asarray(it[1], np.int64))), {"axis": axis})
            dropped.add(pos)
        elif pos not in dropped:
            axis += 1
    # x's axes now: the real axes minus `dropped`
    live = [pos for pos in range(len(real)) if pos not in dropped]

    # 3) advanced indices
    adv_pos = [pos for pos, it in enumerate(real) if it[0] == "adv"]
    if adv_pos:
        x, bshape = _advanced(x, [live.index(p) for p in adv_pos], [real[p][1] for p in adv_pos])
        adjacent = adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1)) and \
            _no_new_between(items, adv_pos)
        rest = [p for p in live if p not in adv_pos]
        # x's axes now: bshape then `rest`
        if adjacent:
            before = [p for p in rest if p < adv_pos[0]]
            nb = len(bshape)
            perm = list(range(nb, nb + len(before))) + list(range(nb)) + \
                list(range(nb + len(before), nb + len(rest)))
            x = transpose(x, perm)
    # 4) drop int axes (static ints sliced to length 1) and insert new axes, in item order
    shape, src = [], []
    axis = 0
    if adv_pos and not adjacent:
        shape, src = list(x.shape[:len(bshape)]), list(range(len(bshape)))
        axis = len(bshape)
    pos = 0
    for it in items:
        if it[0] == "new":
            shape.append(1)
            src.append(-1)
            continue
        if it[0] == "adv":
            if adjacent and pos == adv_pos[0]:
                shape.extend(x.shape[axis:axis + len(bshape)])
                src.extend(range(axis, axis + len(bshape)))
                axis += len(bshape)
        elif pos in dropped:
            pass
        elif it[0] == "int":
            axis += 1
        else:
            shape.append(x.shape[axis])
            src.append(axis)
            axis += 1
        pos += 1
    return _reshape_keep(x, tuple(shape), tuple(src))


def _no_new_between(items, adv_pos) -> bool:
    """True when no None (new axis) sits between the first and last advanced index."""
    pos, seen, new_inside = 0, 0, False
    for it in items:
        if it[0] == "new":
            if 0 < seen < len(adv_pos):
                new_inside = True
            continue
        if pos in adv_pos:
            seen += 1
        pos += 1
    return not new_inside


def _advanced(x: Node, axes: list, idxs: list) -> tuple[Node, tuple]:
    """Gather x at broadcast integer index tensors on `axes`; result axes: broadcast shape, then the
    remaining axes of x in order."""
    from .ops.base import broadcast_shapes
    try:
        bshape = broadcast_shapes(*(i.shape for i in idxs))
    except ShapeError as e:
        raise GraphIndexError("index arrays do not broadcast: " + e.message, user_location()) from None
    if len(axes) == 1:
        (a,) = axes
        out = make_node(_op("take"), (x, idxs[0]), {"axis": a})
        nb = len(idxs[0].shape)
        perm = list(range(a, a + nb)) + list(range(a)) + list(range(a + nb, out.ndim))
        return transpose(out, perm), bshape
    # several index arrays: move their axes to the front, merge them, gather with a flat index
    rest = [a for a in range(x.ndim) if a not in axes]
    x = transpose(x, axes + rest)
    flat = None
    for k, i in enumerate(idxs):
        size = size_of(x, k, "int64")
        d = x.shape[k]
        # in range, as NumPy checks: once merged, a wrong index would land in another row
        i = check_index(cast(i, "int64"), size if d is None else d, wrap=True)
        i = where(less(i, 0), add(i, size), i)  # NumPy's negative indices
        flat = i if flat is None else add(mul(flat, size), i)
    merged = [x.shape[k] for k in range(len(axes))]
    m = None if None in merged else math.prod(merged)
    x = _reshape_keep(x, (m,) + x.shape[len(axes):], (-1,) + tuple(range(len(axes), x.ndim)))
    return make_node(_op("take"), (x, flat), {"axis": 0}), bshape


# ====================================================================== nn functions


def log_softmax(x, axis: int = -1) -> Node:
    """(x - max) - log(sum(exp(x - max))) along axis: exact for large logits (a primitive)."""
    x = as_node(x)
    x = x if x.dtype.kind == "f" else cast(x, dt.float_result(x.dtype))
    return make_node(_op("log_softmax"), (x,), {"axes": _axes(x, axis)})


def softmax(x, axis: int = -1) -> Node:
    """exp(log_softmax(x)): stable for large logits."""
    return exp(log_softmax(x, axis))


def _reduce_loss(loss: Node, reduction: str, fn: str) -> Node:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def check_index(indices, bound, wrap: bool = False) -> Node:
    """indices unchanged, with a run-time check that each is in [0, bound) ([-bound, bound) with
    wrap); bound an int, or a 0-d integer node (a size known only at run time)."""
    if isinstance(bound, Node):
        return make_node(_op("check_index"), (as_node(indices), bound), {"bound": -1, "wrap": bool(wrap)})
    return make_node(_op("check_index"), (as_node(indices),), {"bound": int(bound), "wrap": bool(wrap)})


def cross_entropy(logits, labels, reduction: str = "mean", axis: int = -1) -> Node:
    """Softmax cross-entropy: integer class labels (checked in range) or probability targets."""
    logits, labels = as_node(logits), as_node(labels)
    (axis,) = _axes(logits, axis)
    logp = log_softmax(logits, axis)
    n_classes = logits.shape[axis]
    if labels.dtype.kind in "iu":
        expect = logits.shape[:axis] + logits.shape[axis + 1:]
        if labels.ndim != len(expect):
            raise ShapeError(f"cross_entropy: integer labels of shape {fmt_shape(labels.shape)} do not "
                             f"fit logits {fmt_shape(logits.shape)} (expected {fmt_shape(expect)})",
                             user_location())
        if n_classes is None:
            raise ShapeError("cross_entropy: the class axis of the logits must have a known size",
                             user_location())
        oh = one_hot(check_index(labels, n_classes), n_classes, logits.dtype)
        target = oh if axis == logits.ndim - 1 else transpose(oh, _move_last_to(axis, logits.ndim))
    else:
        target = labels
    loss = neg(sum(mul(target, logp), axis))
    return _reduce_loss(loss, reduction, "cross_entropy")


def _move_last_to(axis, ndim):
    perm = list(range(ndim - 1))
    perm.insert(axis, ndim - 1)
    return perm


def _clamped_log(q: Node) -> Node:
    """max(log(q), -100) whose gradient is finite where q is 0: log reads 1 there (the double where),
    so no 0 * inf. A graph the stabilize pass leaves alone, so its value does not depend on
    optimize (log(1 - sigmoid(z)) would become -softplus(z) and skip the clamp)."""
    ok = greater(q, float(np.exp(np.float64(-100)).astype(q.dtype)) if q.dtype.kind == "f" else 0)
    return where(ok, log(where(ok, q, 1)), -100.0)


def binary_cross_entropy(probs, targets, reduction: str = "mean") -> Node:
    """-(t log p + (1-t) log(1-p)) with each log clamped at -100, as in PyTorch."""
    p, t = _pair(probs, targets)
    loss = neg(add(mul(t, _clamped_log(p)), mul(sub(1, t), _clamped_log(sub(1, p)))))
    return _reduce_loss(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(logits, targets, reduction: str = "mean") -> Node:
    """softplus(z) - t z: binary cross-entropy of sigmoid(z), stable for any logit."""
    z, t = _pair(logits, targets)
    loss = sub(softplus(z), mul(t, z))
    return _reduce_loss(loss, reduction, "binary_cross_entropy_with_logits")


def mse(pred, target, reduction: str = "mean") -> Node:
    """Squared error (pred - target)^2, reduced."""
    d = sub(*_pair(pred, target))
    return _reduce_loss(mul(d, d), reduction, "mse")


def l1_loss(pred, target, reduction: str = "mean") -> Node:
    """Absolute error |pred - target|, reduced."""
    return _reduce_loss(abs(sub(*_pair(pred, target))), reduction, "l1_loss")


def hinge(scores, targets, margin: float = 1.0, reduction: str = "mean") -> Node:
    """max(0, margin - t * s) for targets t in {-1, +1}."""
    s, t = _pair(scores, targets)
    return _reduce_loss(relu(sub(margin, mul(t, s))), reduction, "hinge")


# ====================================================================== Node operators and methods


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


def _require_bool(x, op):
    x = as_node(x)
    if x.dtype != dt.bool_:
        raise DTypeError(f"'{op}' is logical here and needs bool tensors, got {x.dtype} "
                         "(bitwise integer ops are not supported)", user_location())
    return x


def _logical(f):
    def g(a, b):
        return f(_require_bool(a, "&|"), _require_bool(b, "&|"))
    return g


_install_operators()

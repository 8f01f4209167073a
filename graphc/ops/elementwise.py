"""Elementwise primitives: NumPy broadcasting over any number of inputs."""
from __future__ import annotations

import numpy as np
from scipy import special

from ..dtypes import bool_, float_result, result_type
from ..errors import DTypeError
from . import build
from .base import Op, broadcast_shapes, check_run_time_broadcast, reads


class Elementwise(Op):
    """Applied per element with NumPy broadcasting.

    template: the scalar expression code generators emit, over arguments {0}, {1}, ... already
    converted to compute_dtype, with {T} the result type's constructor (typed constants).
    """

    kind = "elementwise"
    fusible = True
    template = ""

    @classmethod
    def compute_dtype(cls, node):
        """The dtype arguments are converted to before the template applies: one for all, a tuple
        with one per argument, or None to take them as they are."""
        return node.dtype

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return result_type(*dtypes)

    @classmethod
    def infer(cls, inputs, attrs):
        return broadcast_shapes(*(x.shape for x in inputs)), cls.out_dtype([x.dtype for x in inputs], attrs)

    @classmethod
    def check_run_time(cls, node, in_shapes, out_shape):
        k = len(reads(node))
        check_run_time_broadcast(node, [(x, x.shape, s) for x, s in zip(node.inputs[:k], in_shapes)], out_shape)


# ---------------------------------------------------------------- unary, floating-point result
class FloatUnary(Elementwise):
    """f(x) for real functions: float inputs keep their dtype, ints and bools compute in float64."""

    arity = 1
    fn = None

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return float_result(dtypes[0])

    @classmethod
    def impl(cls, x, **attrs):
        return cls.fn(x.astype(float_result(x.dtype), copy=False))


class Exp(FloatUnary):
    name = "exp"
    grad_reads_output = True
    template = 'math.exp({0})'
    fn = staticmethod(np.exp)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g * node,)


class Log(FloatUnary):
    name = "log"
    template = 'math.log({0})'
    fn = staticmethod(np.log)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g / x,)


class Log1p(FloatUnary):
    name = "log1p"
    template = 'math.log1p({0})'
    fn = staticmethod(np.log1p)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g / (x + 1),)


class Sqrt(FloatUnary):
    name = "sqrt"
    template = 'math.sqrt({0})'
    fn = staticmethod(np.sqrt)

    @classmethod
    def grad(cls, node, g):
        return (g / (node * 2),)


class Sin(FloatUnary):
    name = "sin"
    template = 'math.sin({0})'
    fn = staticmethod(np.sin)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g * build.cos(x),)


class Cos(FloatUnary):
    name = "cos"
    template = 'math.cos({0})'
    fn = staticmethod(np.cos)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (-(g * build.sin(x)),)


class Tanh(FloatUnary):
    name = "tanh"
    grad_reads_output = True
    template = 'math.tanh({0})'
    fn = staticmethod(np.tanh)

    @classmethod
    def grad(cls, node, g):
        return (g * (1 - node * node),)


class Atan(FloatUnary):
    name = "atan"
    template = 'math.atan({0})'
    fn = staticmethod(np.arctan)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g / (x * x + 1),)


class Erf(FloatUnary):
    name = "erf"
    template = 'math.erf({0})'
    fn = staticmethod(special.erf)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g * (build.exp(-(x * x)) * float(2 / np.sqrt(np.pi))),)


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact and overflow-free
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


class Sigmoid(FloatUnary):
    name = "sigmoid"
    grad_reads_output = True
    template = '(({T}(1) / ({T}(1) + math.exp(-{0}))) if {0} >= {T}(0) else (math.exp({0}) / ({T}(1) + math.exp({0}))))'
    fn = staticmethod(_sigmoid)

    @classmethod
    def grad(cls, node, g):
        return (g * (node * (1 - node)),)


class Softplus(FloatUnary):
    name = "softplus"
    template = '(({0} if {0} > {T}(0) else {T}(0)) + math.log1p(math.exp(-abs({0}))))'
    fn = staticmethod(_softplus)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g * build.sigmoid(x),)


# ---------------------------------------------------------------- unary, same dtype
class SameUnary(Elementwise):
    """f(x) with x's dtype; `numeric` ops refuse bool, as NumPy does for neg and sign."""

    arity = 1
    numeric = True
    fn = None

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        if cls.numeric and dtypes[0] == bool_:
            raise DTypeError(f"{cls.name} is not defined for bool tensors; cast to a number first")
        return dtypes[0]

    @classmethod
    def impl(cls, x, **attrs):
        return cls.fn(x)


class Neg(SameUnary):
    name = "neg"
    cheap = True
    template = '(-{0})'
    fn = staticmethod(np.negative)

    @classmethod
    def grad(cls, node, g):
        return (-g,)


class Abs(SameUnary):
    name = "abs"
    cheap = True
    template = 'abs({0})'
    numeric = False
    fn = staticmethod(np.abs)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (g * build.sign(x),)  # abs'(0) = sign(0) = 0


class Sign(SameUnary):
    name = "sign"
    cheap = True
    template = '({T}(1) if {0} > {T}(0) else ({T}(-1) if {0} < {T}(0) else {0}))'
    differentiable = False  # piecewise constant: zero gradient
    fn = staticmethod(np.sign)


class Relu(SameUnary):
    name = "relu"
    cheap = True
    template = '({0} if not ({0} <= {T}(0)) else {T}(0))'
    fn = staticmethod(lambda x: np.maximum(x, x.dtype.type(0)))

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        return (build.where(x > 0, g, 0),)  # relu'(0) = 0


def _step(x):
    # Heaviside with step(0) = 1, as in the course's step-function network; NaN stays NaN
    if x.dtype.kind == "f":
        return np.heaviside(x, x.dtype.type(1))
    return (x >= 0).astype(x.dtype)


class Step(SameUnary):
    cheap = True
    differentiable = False  # piecewise constant or boolean: zero gradient
    name = "step"
    template = '({T}(1) if {0} >= {T}(0) else ({T}(0) if {0} < {T}(0) else {0}))'
    fn = staticmethod(_step)


class Cast(Elementwise):
    name = "cast"
    cheap = True
    arity = 1

    @classmethod
    def compute_dtype(cls, node):
        return None

    @classmethod
    def render(cls, node, args, T):
        """float/int/bool -> T: truncation toward zero to ints, != 0 to bool (as NumPy's astype)."""
        return f"({args[0]} != 0)" if node.dtype == bool_ else f"{T}({args[0]})"

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return attrs["dtype"]

    @classmethod
    def impl(cls, x, *, dtype):
        return x.astype(dtype)

    @classmethod
    def grad(cls, node, g):
        x, = node.inputs
        if x.dtype.kind != "f" or node.dtype.kind != "f":
            return (None,)  # casts to or from ints and bools carry no gradient
        return (g,)


# ---------------------------------------------------------------- binary arithmetic
class Binary(Elementwise):
    arity = 2
    fn = None

    @classmethod
    def impl(cls, a, b, **attrs):
        return cls.fn(a, b)


class Add(Binary):
    name = "add"
    cheap = True
    template = '({0} + {1})'
    fn = staticmethod(np.add)

    @classmethod
    def grad(cls, node, g):
        return (g, g)


class Mul(Binary):
    name = "mul"
    cheap = True
    template = '({0} * {1})'
    fn = staticmethod(np.multiply)

    @classmethod
    def grad(cls, node, g):
        a, b = node.inputs
        return (g * b, g * a)


class Div(Binary):
    """True division: ints divide to float64, as in NumPy."""

    name = "div"
    template = '({0} / {1})'

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return float_result(result_type(*dtypes))

    @classmethod
    def impl(cls, a, b):
        dt = float_result(result_type(a.dtype, b.dtype))
        return np.true_divide(a.astype(dt, copy=False), b.astype(dt, copy=False))

    @classmethod
    def grad(cls, node, g):
        a, b = node.inputs
        return (g / b, -(g * node / b))


class Pow(Binary):
    name = "pow"
    template = '({0} ** {1})'
    fn = staticmethod(np.power)

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        dt = result_type(*dtypes)
        if dt == bool_:
            raise DTypeError("pow is not defined for two bool tensors")
        return dt

    @classmethod
    def grad(cls, node, g):
        a, b = node.inputs
        # as in PyTorch: d/da is 0 where b == 0; d/db is 0 where a == 0 and b >= 0
        da = build.where(b == 0, 0, g * b * build.pow(a, b - 1))
        db = build.where(build.logical_and(a == 0, b >= 0), 0, g * node * build.log(a))
        return (da, db)


class Maximum(Binary):
    name = "maximum"
    cheap = True
    template = '({0} if ({0} >= {1} or {0} != {0}) else {1})'
    fn = staticmethod(np.maximum)

    @classmethod
    def grad(cls, node, g):
        a, b = node.inputs
        first = a >= b  # a tie sends the gradient to the first argument
        return (build.where(first, g, 0), build.where(first, 0, g))


class Minimum(Binary):
    name = "minimum"
    cheap = True
    template = '({0} if ({0} <= {1} or {0} != {0}) else {1})'
    fn = staticmethod(np.minimum)

    @classmethod
    def grad(cls, node, g):
        a, b = node.inputs
        first = a <= b  # a tie sends the gradient to the first argument
        return (build.where(first, g, 0), build.where(first, 0, g))


# ---------------------------------------------------------------- comparisons and logic
class Compare(Binary):
    differentiable = False  # piecewise constant or boolean: zero gradient

    @classmethod
    def compute_dtype(cls, node):
        return result_type(*(i.dtype for i in node.inputs))

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return bool_


class Less(Compare):
    name = "less"
    cheap = True
    template = '({0} < {1})'
    fn = staticmethod(np.less)


class LessEqual(Compare):
    name = "less_equal"
    cheap = True
    template = '({0} <= {1})'
    fn = staticmethod(np.less_equal)


class Equal(Compare):
    name = "equal"
    cheap = True
    template = '({0} == {1})'
    fn = staticmethod(np.equal)


class NotEqual(Compare):
    name = "not_equal"
    cheap = True
    template = '({0} != {1})'
    fn = staticmethod(np.not_equal)


class LogicalAnd(Compare):
    name = "logical_and"
    cheap = True
    template = '(({0} != 0) and ({1} != 0))'

    @classmethod
    def compute_dtype(cls, node):
        return None
    fn = staticmethod(np.logical_and)


class LogicalOr(Compare):
    name = "logical_or"
    cheap = True
    template = '(({0} != 0) or ({1} != 0))'

    @classmethod
    def compute_dtype(cls, node):
        return None
    fn = staticmethod(np.logical_or)


class LogicalNot(Elementwise):
    cheap = True
    differentiable = False  # piecewise constant or boolean: zero gradient
    name = "logical_not"
    template = '({0} == 0)'

    @classmethod
    def compute_dtype(cls, node):
        return None
    arity = 1

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return bool_

    @classmethod
    def impl(cls, x):
        return np.logical_not(x)


class Where(Elementwise):
    """where(cond, a, b): cond is bool; the result has a's and b's promoted dtype."""

    name = "where"
    cheap = True
    template = '({1} if {0} else {2})'

    @classmethod
    def compute_dtype(cls, node):
        return (None, node.dtype, node.dtype)  # the condition stays bool
    arity = 3

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        if dtypes[0] != bool_:
            raise DTypeError(f"where's condition must be bool, got {dtypes[0]}")
        return result_type(dtypes[1], dtypes[2])

    @classmethod
    def impl(cls, c, a, b):
        return np.where(c, a, b)

    @classmethod
    def grad(cls, node, g):
        c, a, b = node.inputs
        return (None, build.where(c, g, 0), build.where(c, 0, g))


class CheckIndex(Elementwise):
    """Integer indices unchanged, raising at run time if one is outside [0, bound), or outside
    [-bound, bound) with wrap (NumPy's negative indices). bound is the attr, or a second input (a
    0-d integer known only at run time: the size of an axis) when the attr is -1."""

    differentiable = False  # integer indices

    name = "check_index"
    template = '{0}'

    @classmethod
    def compute_dtype(cls, node):
        return None

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        if any(d.kind not in "iu" for d in dtypes):
            raise DTypeError(f"check_index needs integer indices and bound, got {', '.join(map(str, dtypes))}")
        return dtypes[0]

    @classmethod
    def infer(cls, inputs, attrs):
        if len(inputs) != (2 if attrs["bound"] < 0 else 1) or (len(inputs) == 2 and inputs[1].ndim):
            raise DTypeError("check_index takes indices and, when its bound is -1, a 0-d bound")
        return super().infer(inputs, attrs)

    @classmethod
    def condition(cls, node, index: str, bound: str) -> str:
        """The code that is true when index is out of range."""
        low = f"-{bound}" if node.attrs.get("wrap") else "0"
        return f"{index} < {low} or {index} >= {bound}"

    @classmethod
    def describe(cls, node) -> str:
        """What went wrong, for messages: the allowed range (of an index, or of what attr names)."""
        b = node.attrs["bound"]
        n = "n" if b < 0 else str(b)
        text = f"[-{n}, {n})" if node.attrs.get("wrap") else f"[0, {n})"
        return f"{node.attrs.get('what', 'index')} out of range {text}" + \
            (" (n: the axis's size at run time)" if b < 0 else "")

    @classmethod
    def impl(cls, x, n=None, *, bound, wrap=False, what="index"):
        b = int(n) if bound < 0 else bound
        bad = (x < (-b if wrap else 0)) | (x >= b)
        if bad.any():
            lo = -b if wrap else 0
            raise IndexError(f"{what} {x[bad].flat[0]} is out of range [{lo}, {b})")
        return x

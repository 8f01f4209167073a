"""Elementwise primitives: NumPy broadcasting over any number of inputs."""
from __future__ import annotations

import numpy as np
from scipy import special

from ..dtypes import bool_, float_result, result_type
from ..errors import DTypeError
from .base import Op, broadcast_shapes


class Elementwise(Op):
    kind = "elementwise"

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return result_type(*dtypes)

    @classmethod
    def infer(cls, inputs, attrs):
        return broadcast_shapes(*(x.shape for x in inputs)), cls.out_dtype([x.dtype for x in inputs], attrs)


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
    fn = staticmethod(np.exp)


class Log(FloatUnary):
    name = "log"
    fn = staticmethod(np.log)


class Log1p(FloatUnary):
    name = "log1p"
    fn = staticmethod(np.log1p)


class Sqrt(FloatUnary):
    name = "sqrt"
    fn = staticmethod(np.sqrt)


class Sin(FloatUnary):
    name = "sin"
    fn = staticmethod(np.sin)


class Cos(FloatUnary):
    name = "cos"
    fn = staticmethod(np.cos)


class Tanh(FloatUnary):
    name = "tanh"
    fn = staticmethod(np.tanh)


class Erf(FloatUnary):
    name = "erf"
    fn = staticmethod(special.erf)


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact and overflow-free
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


class Sigmoid(FloatUnary):
    name = "sigmoid"
    fn = staticmethod(_sigmoid)


class Softplus(FloatUnary):
    name = "softplus"
    fn = staticmethod(_softplus)


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
    fn = staticmethod(np.negative)


class Abs(SameUnary):
    name = "abs"
    numeric = False
    fn = staticmethod(np.abs)


class Sign(SameUnary):
    name = "sign"
    fn = staticmethod(np.sign)


class Relu(SameUnary):
    name = "relu"
    fn = staticmethod(lambda x: np.maximum(x, x.dtype.type(0)))


def _step(x):
    # Heaviside with step(0) = 1, as in the course's step-function network; NaN stays NaN
    if x.dtype.kind == "f":
        return np.heaviside(x, x.dtype.type(1))
    return (x >= 0).astype(x.dtype)


class Step(SameUnary):
    name = "step"
    fn = staticmethod(_step)


class Cast(Elementwise):
    name = "cast"
    arity = 1

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return attrs["dtype"]

    @classmethod
    def impl(cls, x, *, dtype):
        return x.astype(dtype)


# ---------------------------------------------------------------- binary arithmetic
class Binary(Elementwise):
    arity = 2
    fn = None

    @classmethod
    def impl(cls, a, b, **attrs):
        return cls.fn(a, b)


class Add(Binary):
    name = "add"
    fn = staticmethod(np.add)


class Mul(Binary):
    name = "mul"
    fn = staticmethod(np.multiply)


class Div(Binary):
    """True division: ints divide to float64, as in NumPy."""

    name = "div"

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return float_result(result_type(*dtypes))

    @classmethod
    def impl(cls, a, b):
        dt = float_result(result_type(a.dtype, b.dtype))
        return np.true_divide(a.astype(dt, copy=False), b.astype(dt, copy=False))


class Pow(Binary):
    name = "pow"
    fn = staticmethod(np.power)

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        dt = result_type(*dtypes)
        if dt == bool_:
            raise DTypeError("pow is not defined for two bool tensors")
        return dt


class Maximum(Binary):
    name = "maximum"
    fn = staticmethod(np.maximum)


class Minimum(Binary):
    name = "minimum"
    fn = staticmethod(np.minimum)


# ---------------------------------------------------------------- comparisons and logic
class Compare(Binary):
    @classmethod
    def out_dtype(cls, dtypes, attrs):
        return bool_


class Less(Compare):
    name = "less"
    fn = staticmethod(np.less)


class LessEqual(Compare):
    name = "less_equal"
    fn = staticmethod(np.less_equal)


class Equal(Compare):
    name = "equal"
    fn = staticmethod(np.equal)


class NotEqual(Compare):
    name = "not_equal"
    fn = staticmethod(np.not_equal)


class LogicalAnd(Compare):
    name = "logical_and"
    fn = staticmethod(np.logical_and)


class LogicalOr(Compare):
    name = "logical_or"
    fn = staticmethod(np.logical_or)


class LogicalNot(Elementwise):
    name = "logical_not"
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
    arity = 3

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        if dtypes[0] != bool_:
            raise DTypeError(f"where's condition must be bool, got {dtypes[0]}")
        return result_type(dtypes[1], dtypes[2])

    @classmethod
    def impl(cls, c, a, b):
        return np.where(c, a, b)


class CheckIndex(Elementwise):
    """Integer indices unchanged, raising at run time if one is outside [0, bound)."""

    name = "check_index"
    arity = 1

    @classmethod
    def out_dtype(cls, dtypes, attrs):
        if dtypes[0].kind not in "iu":
            raise DTypeError(f"check_index needs integer indices, got {dtypes[0]}")
        return dtypes[0]

    @classmethod
    def impl(cls, x, *, bound):
        bad = (x < 0) | (x >= bound)
        if bad.any():
            raise IndexError(f"index {x[bad].flat[0]} is out of range [0, {bound})")
        return x

"""Initializers: NumPy arrays for gc.parameter, seeded, with fans for matrices and conv kernels.

Every initializer takes (shape, ..., seed=None, dtype="float32"); seed=None draws the next seed of
graphc's sequence (gc.seed). Shapes follow graphc's layout: a dense weight is (fan_in, fan_out)
because layers compute x @ W; a conv kernel is (out_channels, in_channels, *kernel_size), fan_in =
in_channels * kernel area.
"""
from __future__ import annotations

import math

import numpy as np

from . import dtypes as dt
from .errors import ShapeError
from .ir import user_location
from .rng import generator

__all__ = ["fans", "zeros", "ones", "constant", "normal", "uniform", "xavier_uniform", "xavier_normal",
           "he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "kaiming_uniform",
           "kaiming_normal"]


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape: vectors (n, n); matrices (rows, cols);
    conv kernels (in * area, out * area)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        raise ShapeError("a scalar has no fan-in or fan-out", user_location())
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    area = math.prod(shape[2:])
    return shape[1] * area, shape[0] * area


def _shape(shape) -> tuple:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def zeros(shape, dtype="float32", seed=None) -> np.ndarray:
    """All zeros."""
    return np.zeros(_shape(shape), dt.as_dtype(dtype))


def ones(shape, dtype="float32", seed=None) -> np.ndarray:
    """All ones."""
    return np.ones(_shape(shape), dt.as_dtype(dtype))


def constant(shape, value: float, dtype="float32", seed=None) -> np.ndarray:
    """All `value`."""
    return np.full(_shape(shape), value, dt.as_dtype(dtype))


def normal(shape, std: float = 1.0, mean: float = 0.0, seed=None, dtype="float32") -> np.ndarray:
    """Normal(mean, std^2) samples."""
    return generator(seed).normal(mean, std, _shape(shape)).astype(dt.as_dtype(dtype))


def uniform(shape, low: float = -1.0, high: float = 1.0, seed=None, dtype="float32") -> np.ndarray:
    """Uniform [low, high) samples."""
    return generator(seed).uniform(low, high, _shape(shape)).astype(dt.as_dtype(dtype))


def xavier_uniform(shape, gain: float = 1.0, seed=None, dtype="float32") -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)); variance 2/(in+out)."""
    fi, fo = fans(_shape(shape))
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform(shape, -a, a, seed, dtype)


def xavier_normal(shape, gain: float = 1.0, seed=None, dtype="float32") -> np.ndarray:
    """Glorot normal: N(0, gain^2 * 2 / (fan_in + fan_out))."""
    fi, fo = fans(_shape(shape))
    return normal(shape, gain * math.sqrt(2.0 / (fi + fo)), 0.0, seed, dtype)


def he_uniform(shape, gain: float = math.sqrt(2.0), seed=None, dtype="float32") -> np.ndarray:
    """He et al. (2015) for ReLU: U(-a, a), a = gain * sqrt(3 / fan_in); variance 2 / fan_in."""
    fi, _ = fans(_shape(shape))
    a = gain * math.sqrt(3.0 / fi)
    return uniform(shape, -a, a, seed, dtype)


def he_normal(shape, gain: float = math.sqrt(2.0), seed=None, dtype="float32") -> np.ndarray:
    """He normal for ReLU: N(0, gain^2 / fan_in) = N(0, 2 / fan_in)."""
    fi, _ = fans(_shape(shape))
    return normal(shape, gain / math.sqrt(fi), 0.0, seed, dtype)


# the names PyTorch and Keras use
glorot_uniform, glorot_normal = xavier_uniform, xavier_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal

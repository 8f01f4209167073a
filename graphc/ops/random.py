"""Random numbers inside the graph: counter-based, so every element is a pure function of (key, index).

Like JAX's threefry or Philox in cuRAND, a kernel draws element i as hash(key, i): no generator
state moves between threads, the numbers are the same on every backend and in every fusion, and
a training step advances the key (a parameter) to get fresh numbers on the next call.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError
from .base import Op

# splitmix64/murmur3 constants: golden-ratio increments, then the fmix64 finalizer
KEY_MUL = 0xD1B54A32D192ED03
IDX_MUL = 0x9E3779B97F4A7C15
FMIX1 = 0xFF51AFD7ED558CCD
FMIX2 = 0xC4CEB9FE1A85EC53
MASK64 = (1 << 64) - 1


def mix64(key, index):
    """The 64 random bits of element `index` under `key` (uint64 arrays, wrapping arithmetic)."""
    u = np.uint64
    with np.errstate(over="ignore"):
        z = np.asarray(key).astype(u) * u(KEY_MUL) + (np.asarray(index).astype(u) + u(1)) * u(IDX_MUL)
        z = (z ^ (z >> u(33))) * u(FMIX1)
        z = (z ^ (z >> u(33))) * u(FMIX2)
        return z ^ (z >> u(33))


# key * KEY_MUL + (i + 1) * IDX_MUL is the only place key and index meet, and KEY_MUL is odd
# (invertible mod 2**64): element i under key + o * SHIFT is element i + o under key
SHIFT = (IDX_MUL * pow(KEY_MUL, -1, 1 << 64)) & MASK64


def shifted_key(key, offset: int) -> np.int64:
    """The key under which element i is what element i + offset is under `key` (mod 2**64): a
    data-parallel rank draws its shard's part of the whole batch's numbers (gc.Trainer)."""
    return np.uint64((int(key) + int(offset) * SHIFT) & MASK64).view(np.int64)


def bits_to_unit(bits, dtype) -> np.ndarray:
    """Uniform [0, 1) floats from random bits: the top 24 (float32) or 53 (float64) bits."""
    if np.dtype(dtype) == np.float32:
        return (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


class RandomUniform(Op):
    """random_uniform(key, like; dtype): uniform [0, 1) numbers of like's shape, drawn from an int64 key."""

    name = "random_uniform"
    kind = "random"
    fusible = True  # element i is hash(key, i): computed inside a loop
    arity = 2
    value_inputs = 1  # `like` only lends its (run-time) shape
    differentiable = False

    @classmethod
    def infer(cls, inputs, attrs):
        key, like = inputs
        if key.shape != () or key.dtype != np.int64:
            raise DTypeError(f"random key must be an int64 scalar, got {key.dtype} {key.shape}")
        dtype = np.dtype(attrs["dtype"])
        if dtype.kind != "f":
            raise DTypeError(f"random_uniform makes floats, not {dtype}")
        return like.shape, dtype

    @classmethod
    def impl(cls, key, like, *, dtype):
        shape = np.shape(like)
        bits = mix64(key, np.arange(int(np.prod(shape)), dtype=np.uint64))
        return bits_to_unit(bits, dtype).reshape(shape)

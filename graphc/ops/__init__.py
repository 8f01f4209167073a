"""Primitives: one class each, holding the shape/dtype rule and the NumPy meaning."""
from . import control, conv, elementwise, leaves, linalg, mode, movement, random, reduce  # noqa: F401  (registers every op)
from .base import REGISTRY, Op, broadcast_shapes, fmt_shape, normalize_axes

__all__ = ["REGISTRY", "Op", "broadcast_shapes", "fmt_shape", "normalize_axes"]

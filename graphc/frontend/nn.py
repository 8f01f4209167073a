"""Neural-net functions built from the primitives: softmax and log_softmax, layer and RMS
normalization, scaled dot-product attention."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError
from ..ir import Node, make_node, user_location
from ..ops import REGISTRY as _OPS
from ..ops.base import fmt_shape, swap_last_two
from ..ops.build import (
    add,
    as_node,
    checked_axes,
    constant,
    exp,
    log_softmax,
    logical_and,
    matmul,
    mul,
    transpose,
    where,
)
from .indexing import triangle_mask

_op = _OPS.__getitem__

__all__ = ["softmax", "layer_norm", "rms_norm", "scaled_dot_product_attention", "attention_weights"]


def softmax(x, axis: int = -1) -> Node:
    """exp(log_softmax(x)): stable for large logits."""
    return exp(log_softmax(x, axis))


def _trailing(x: Node, axis: int, what: str) -> tuple:
    if x.dtype.kind != "f":
        raise DTypeError(f"{what} needs a float tensor, got {x.dtype}", user_location())
    (first,) = checked_axes(x, axis)
    return tuple(range(first, x.ndim))


def _affine(y: Node, weight, bias, norm_shape: tuple, what: str) -> Node:
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and as_node(p).shape != norm_shape:
            raise ShapeError(f"{what}: {name} must have the normalised shape {fmt_shape(norm_shape)}, got "
                             f"{fmt_shape(as_node(p).shape)}", user_location())
    if weight is not None:
        y = mul(y, weight)
    return y if bias is None else add(y, bias)


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5, axis: int = -1) -> Node:
    """(x - mean) / sqrt(var + eps) over the axes from `axis` to the last (ONNX LayerNormalization;
    torch.nn.functional.layer_norm with normalized_shape = x.shape[axis:]), then * weight + bias,
    each of that shape (None: 1 and 0). The variance is the biased one, of the deviations from
    the mean (two passes over each row, so a large mean costs no precision). A primitive
    (normalize): on numba one row kernel, the weight and bias fused into it."""
    x = as_node(x)
    axes = _trailing(x, axis, "layer_norm")
    y = make_node(_op("normalize"), (x,), {"axes": axes, "eps": float(eps), "center": True})
    return _affine(y, weight, bias, x.shape[axes[0]:], "layer_norm")


def rms_norm(x, weight=None, eps: float = 1e-6, axis: int = -1) -> Node:
    """x / sqrt(mean(x**2) + eps) over the axes from `axis` to the last, then * weight (of that
    shape), as torch.nn.functional.rms_norm."""
    x = as_node(x)
    axes = _trailing(x, axis, "rms_norm")
    y = make_node(_op("normalize"), (x,), {"axes": axes, "eps": float(eps), "center": False})
    return _affine(y, weight, None, x.shape[axes[0]:], "rms_norm")


def _check_qkv(q, k, v=None) -> tuple:
    q, k = as_node(q), as_node(k)
    v = None if v is None else as_node(v)
    for name, t in (("q", q), ("k", k), ("v", v)) if v is not None else (("q", q), ("k", k)):
        if t.ndim < 2:
            raise ShapeError(f"scaled_dot_product_attention: {name} must be (..., seq, dim), got "
                             f"{fmt_shape(t.shape)}", user_location())
        if t.dtype.kind != "f":
            raise DTypeError(f"scaled_dot_product_attention: {name} must be float, got {t.dtype}", user_location())
    e = q.shape[-1]
    if e is None or (k.shape[-1] is not None and k.shape[-1] != e):
        raise ShapeError(f"scaled_dot_product_attention: q {fmt_shape(q.shape)} and k {fmt_shape(k.shape)} "
                         "need one known feature size E", user_location())
    if v is not None and k.shape[-2] is not None and v.shape[-2] is not None and k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: k {fmt_shape(k.shape)} and v {fmt_shape(v.shape)} "
                         "need one sequence length S", user_location())
    return (q, k) if v is None else (q, k, v)


def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False, scale=None) -> Node:
    """softmax(q @ k^T * scale + mask) @ v, as torch.nn.functional.scaled_dot_product_attention:
    q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev), batch dims broadcast; scale
    defaults to 1/sqrt(E). A bool mask (broadcast to (..., L, S)) is True where a query may attend;
    a float mask is added to the scores; causal keeps key j <= query i (torch's top-left aligned
    lower triangle), together with a mask if both are given. A row that may attend nowhere is NaN,
    as in torch."""
    q, k, v = _check_qkv(q, k, v)
    return matmul(attention_weights(q, k, mask, causal, scale), v)


def attention_weights(q, k, mask=None, causal: bool = False, scale=None) -> Node:
    """softmax(q @ k^T * scale + mask) over the keys, (..., L, S): the weights
    scaled_dot_product_attention applies to v (arguments as there)."""
    q, k = _check_qkv(q, k)
    e = q.shape[-1]
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    scores = mul(matmul(q, transpose(k, swap_last_two(k.ndim))), scale)
    keep = None
    if causal:
        L, S = q.shape[-2], k.shape[-2]
        if L is None or S is None:
            raise ShapeError(f"scaled_dot_product_attention: causal needs known lengths, got q "
                             f"{fmt_shape(q.shape)} and k {fmt_shape(k.shape)}", user_location())
        keep = triangle_mask(L, S)
    if mask is not None:
        mask = as_node(mask)
        if mask.dtype == dt.bool_:
            keep = mask if keep is None else logical_and(keep, mask)
        elif mask.dtype.kind == "f":
            scores = add(scores, mask)
        else:
            raise DTypeError(f"scaled_dot_product_attention: the mask must be bool or float, got {mask.dtype}",
                             user_location())
    if keep is not None:
        scores = where(keep, scores, constant(np.asarray(-np.inf, scores.dtype)))
    return softmax(scores, -1)

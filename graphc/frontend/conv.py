"""Convolution and pooling in NCHW, as im2col and GEMM: unfold, fold, conv2d, max/avg pooling."""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import ShapeError
from ..ir import Node, make_node, user_location
from ..ops import REGISTRY as _OPS
from ..ops.base import fmt_shape
from ..ops.build import add, as_node, matmul, mean, mul, reshape, sum, transpose
from ..ops.conv import out_size

_op = _OPS.__getitem__

__all__ = ["unfold", "fold", "conv2d", "max_pool2d", "avg_pool2d"]


def _two(v, what) -> tuple:
    t = tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v))
    if len(t) != 2:
        raise ShapeError(f"{what} must be an int or a pair, got {v!r}", user_location())
    return t


def _window_attrs(x, kernel, stride, padding, dilation, value, what) -> dict:
    k, s, p, d = (_two(kernel, f"{what}: kernel"), _two(stride, f"{what}: stride"),
                  _two(padding, f"{what}: padding"), _two(dilation, f"{what}: dilation"))
    if builtins.min(k + s + d) < 1 or builtins.min(p) < 0:
        raise ShapeError(f"{what}: kernel {k}, stride {s} and dilation {d} must be >= 1 and padding {p} >= 0",
                         user_location())
    if x.ndim != 4 or None in x.shape[1:]:
        raise ShapeError(f"{what} needs x of shape (N, C, H, W) with C, H, W known, got {fmt_shape(x.shape)}",
                         user_location())
    return {"kernel": k, "stride": s, "padding": p, "dilation": d, "value": value}


def _patches(x, kernel, stride, padding, dilation, value, what, layout="nkl") -> Node:
    x = as_node(x)
    attrs = _window_attrs(x, kernel, stride, padding, dilation, value, what)
    return make_node(_op("im2col"), (x,), attrs if layout == "nkl" else {**attrs, "layout": layout})


def _out_hw(x, kernel, stride, padding, dilation):

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


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Node:
    """2-D cross-correlation in NCHW, as torch.nn.functional.conv2d: x (N, C, H, W), w (O, C/groups,
    kh, kw), optional bias (O,); stride, padding (zeros), dilation: an int or a pair; groups: the
    channels split into that many groups, each convolved with its O/groups filters. Computed as
    im2col with the images side by side and one GEMM (O, C*kh*kw) @ (C*kh*kw, N*OH*OW), per group
    with groups > 1; a depthwise convolution (one input channel per group, one filter each) is a
    product and a sum over each window instead. The gradients are a GEMM (weight) and a GEMM
    followed by col2im (input). A bias and an activation fuse into the kernel after the GEMM."""
    x, w = as_node(x), as_node(w)
    if w.ndim != 4 or None in w.shape:
        raise ShapeError(f"conv2d: the weight must be (out, in/groups, kh, kw), got {fmt_shape(w.shape)}",
                         user_location())
    o, cg, kh, kw = w.shape
    g = groups
    if not isinstance(g, (int, np.integer)) or isinstance(g, bool) or g < 1 or o % g:
        raise ShapeError(f"conv2d: groups must be a whole number >= 1 dividing the {o} output channels, got "
                         f"{groups!r}", user_location())
    g = int(g)
    c = cg * g
    if x.ndim == 4 and x.shape[1] is not None and x.shape[1] != c:
        raise ShapeError(f"conv2d: x has {x.shape[1]} channels {fmt_shape(x.shape)}, the weight {fmt_shape(w.shape)}"
                         f" with groups={g} expects {c}", user_location())
    # the images' columns side by side, (C*kh*kw, N*OH*OW): one GEMM for the whole batch, and for
    # the weight's gradient another, over N*OH*OW (not one small product per image and a sum)
    cols = _patches(x, (kh, kw), stride, padding, dilation, 0.0 if x.dtype.kind == "f" else 0, "conv2d", "knl")
    oh, ow = _out_hw(x, (kh, kw), stride, padding, dilation)
    k = cg * kh * kw
    if g == 1:
        y = matmul(reshape(w, (o, k)), cols)
    elif cg == 1 and o == g:  # depthwise: channel i's window dotted with filter i
        y = sum(mul(reshape(cols, (g, k, -1)), reshape(w, (g, k, 1))), axis=1)
    else:  # (g, O/g, k) @ (g, k, N*L): one GEMM per group
        y = matmul(reshape(w, (g, o // g, k)), reshape(cols, (g, k, -1)))
    # (O, N*L) -> (N, O, OH, OW): the transpose is read inside the kernel after it (bias, activation)
    y = transpose(reshape(y, (o, -1, oh, ow)), (1, 0, 2, 3))
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
    if how == "max":  # one kernel, and one for its gradient
        return make_node(_op("max_pool2d"), (x,), _window_attrs(x, kernel, stride, padding, 1, fill, "max_pool2d"))
    cols = _patches(x, kernel, stride, padding, 1, fill, f"{how}_pool2d")
    k = _two(kernel, "")
    c = x.shape[1]
    oh, ow = _out_hw(x, kernel, stride, padding, 1)
    win = reshape(cols, (-1, c, k[0] * k[1], oh * ow))
    return reshape(mean(win, axis=2), (-1, c, oh, ow))


def max_pool2d(x, kernel, stride=None, padding=0) -> Node:
    """Max over each kernel window of x (N, C, H, W) (stride defaults to the kernel, padding counts
    as -inf), as torch.nn.functional.max_pool2d; its gradient goes to the window's maximum."""
    return _pool(x, kernel, stride, padding, "max")


def avg_pool2d(x, kernel, stride=None, padding=0) -> Node:
    """Mean over each kernel window of x (N, C, H, W), padding counted as zeros (torch's default
    count_include_pad=True)."""
    return _pool(x, kernel, stride, padding, "avg")

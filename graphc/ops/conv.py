"""Patches of images: im2col and its adjoint col2im, the two primitives convolution and pooling are
built from (graphc/api.py: conv2d, max_pool2d, avg_pool2d).

im2col(x) for x (N, C, H, W) is cols (N, C*kh*kw, OH*OW) with
    cols[n, (c*kh + i)*kw + j, oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
(`value` where that falls in the padding): torch.nn.functional.unfold's layout, so a weight
(O, C, kh, kw) reshaped to (O, C*kh*kw) multiplies it as one batched GEMM. col2im is its adjoint:
it adds every column entry back onto the pixel it came from (padding dropped), so each is the
other's gradient. Both are gathers per output element, which parallelise without atomics.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import make_node
from .base import Op, fmt_shape


def out_size(size, k, s, p, d) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _check(x, attrs, what):
    if x.ndim != 4 or any(d is None for d in x.shape[1:]):
        raise ShapeError(f"{what} needs (N, C, H, W) with C, H, W known when the graph is built, got "
                         f"{fmt_shape(x.shape)}")


def _geometry(attrs):
    return attrs["kernel"], attrs["stride"], attrs["padding"], attrs["dilation"]


class Im2Col(Op):
    """Image patches as columns (N, C*kh*kw, OH*OW); attrs kernel, stride, padding, dilation
    (pairs) and value (the padding's fill)."""

    name = "im2col"
    kind = "movement"
    arity = 1

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        _check(x, attrs, "im2col")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _geometry(attrs)
        n, c, h, w = x.shape
        oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"a {kh}x{kw} window (dilation {dh}x{dw}, padding {ph}x{pw}) does not fit an "
                             f"image of {h}x{w}")
        return (n, c * kh * kw, oh * ow), x.dtype

    @classmethod
    def impl(cls, x, *, kernel, stride, padding, dilation, value):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        n, c, h, w = x.shape
        oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)
        cols = np.empty((n, c, kh, kw, oh, ow), x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
        return cols.reshape(n, c * kh * kw, oh * ow)

    @classmethod
    def grad(cls, node, g):
        x = node.inputs[0]
        attrs = {k: node.attrs[k] for k in ("kernel", "stride", "padding", "dilation")}
        return (make_node(Col2Im, (g,), {**attrs, "size": x.shape[1:]}),)


class Col2Im(Op):
    """The adjoint of im2col: columns (N, C*kh*kw, OH*OW) summed back onto an image (N, C, H, W)
    of attrs size (C, H, W); entries that came from the padding are dropped."""

    name = "col2im"
    kind = "movement"
    arity = 1

    @classmethod
    def infer(cls, inputs, attrs):
        (g,) = inputs
        c, h, w = attrs["size"]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _geometry(attrs)
        want = (c * kh * kw, out_size(h, kh, sh, ph, dh) * out_size(w, kw, sw, pw, dw))
        if g.ndim != 3 or tuple(g.shape[1:]) != want:
            raise ShapeError(f"col2im to (N, {c}, {h}, {w}) needs columns (N, {want[0]}, {want[1]}), got "
                             f"{fmt_shape(g.shape)}")
        return (g.shape[0], c, h, w), g.dtype

    @classmethod
    def impl(cls, g, *, kernel, stride, padding, dilation, size):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        c, h, w = size
        n = g.shape[0]
        oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
        cols = g.reshape(n, c, kh, kw, oh, ow)
        xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), g.dtype)
        for i in range(kh):
            for j in range(kw):
                xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[:, :, i, j]
        return xp[:, :, ph:ph + h, pw:pw + w].copy()

    @classmethod
    def grad(cls, node, g):
        attrs = {k: node.attrs[k] for k in ("kernel", "stride", "padding", "dilation")}
        return (make_node(Im2Col, (g,), {**attrs, "value": 0.0 if g.dtype.kind == "f" else 0}),)

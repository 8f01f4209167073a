"""Patches of images: im2col and its adjoint col2im, the two primitives convolution and average
pooling are built from (graphc/frontend/conv.py: conv2d, avg_pool2d), and max pooling with its
gradient, one kernel each.

im2col(x) for x (N, C, H, W) is cols (N, C*kh*kw, OH*OW) with
    cols[n, (c*kh + i)*kw + j, oh*OW + ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]
(`value` where that falls in the padding): torch.nn.functional.unfold's layout (attr layout "nkl",
the default). Layout "knl" puts the images side by side instead, cols (C*kh*kw, N*OH*OW) with
    cols[(c*kh + i)*kw + j, n*OH*OW + oh*OW + ow] = the same,
so a weight (O, C, kh, kw) reshaped to (O, C*kh*kw) multiplies it as one GEMM over the whole
batch (conv2d's layout: one large product, and its weight gradient another). col2im is its adjoint:
it adds every column entry back onto the pixel it came from (padding dropped), so each is the
other's gradient. Both are gathers per output element, which parallelise without atomics.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import make_node
from . import build
from .base import Op, fmt_shape


def out_size(size, k, s, p, d) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _check(x, attrs, what):
    if x.ndim != 4 or any(d is None for d in x.shape[1:]):
        raise ShapeError(f"{what} needs (N, C, H, W) with C, H, W known when the graph is built, got "
                         f"{fmt_shape(x.shape)}")


def _geometry(attrs):
    return attrs["kernel"], attrs["stride"], attrs["padding"], attrs["dilation"]


def _layout(attrs) -> str:
    lay = attrs.get("layout", "nkl")
    if lay not in ("nkl", "knl"):
        raise ShapeError(f"im2col/col2im layout must be 'nkl' or 'knl', got {lay!r}")
    return lay


def _layout_attr(node) -> tuple:  # noqa: N802 (a tuple of attribute names, as a constant reads)
    """("layout",) when the node has one: its adjoint gets the same."""
    return ("layout",) if "layout" in node.attrs else ()


def _batch_last(cols: np.ndarray) -> np.ndarray:
    """(N, K, L) columns as (K, N*L)."""
    n, k, l_ = cols.shape
    return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(k, n * l_)


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
        if _layout(attrs) == "knl":
            return (c * kh * kw, None if n is None else n * oh * ow), x.dtype
        return (n, c * kh * kw, oh * ow), x.dtype

    @classmethod
    def impl(cls, x, *, kernel, stride, padding, dilation, value, layout="nkl"):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        n, c, h, w = x.shape
        oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)
        cols = np.empty((n, c, kh, kw, oh, ow), x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
        cols = cols.reshape(n, c * kh * kw, oh * ow)
        return _batch_last(cols) if layout == "knl" else cols

    @classmethod
    def grad(cls, node, g):
        x = node.inputs[0]
        attrs = {k: node.attrs[k] for k in ("kernel", "stride", "padding", "dilation") + _layout_attr(node)}
        return (make_node(Col2Im, (g,), {**attrs, "size": x.shape[1:]}),)


class Col2Im(Op):
    """The adjoint of im2col: columns (N, C*kh*kw, OH*OW), or (C*kh*kw, N*OH*OW) with layout "knl",
    summed back onto an image (N, C, H, W) of attrs size (C, H, W); entries that came from the
    padding are dropped."""

    name = "col2im"
    kind = "movement"
    arity = 1

    @classmethod
    def infer(cls, inputs, attrs):
        (g,) = inputs
        c, h, w = attrs["size"]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _geometry(attrs)
        want = (c * kh * kw, out_size(h, kh, sh, ph, dh) * out_size(w, kw, sw, pw, dw))
        if _layout(attrs) == "knl":
            if g.ndim != 2 or g.shape[0] != want[0] or (g.shape[1] is not None and g.shape[1] % want[1]):
                raise ShapeError(f"col2im to (N, {c}, {h}, {w}) needs columns ({want[0]}, N*{want[1]}), got "
                                 f"{fmt_shape(g.shape)}")
            return (None if g.shape[1] is None else g.shape[1] // want[1], c, h, w), g.dtype
        if g.ndim != 3 or tuple(g.shape[1:]) != want:
            raise ShapeError(f"col2im to (N, {c}, {h}, {w}) needs columns (N, {want[0]}, {want[1]}), got "
                             f"{fmt_shape(g.shape)}")
        return (g.shape[0], c, h, w), g.dtype

    @classmethod
    def impl(cls, g, *, kernel, stride, padding, dilation, size, layout="nkl"):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        c, h, w = size
        oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
        if layout == "knl":  # (K, N*L) -> (N, K, L)
            g = g.reshape(g.shape[0], -1, oh * ow).transpose(1, 0, 2)
        n = g.shape[0]
        cols = g.reshape(n, c, kh, kw, oh, ow)
        xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), g.dtype)
        for i in range(kh):
            for j in range(kw):
                xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[:, :, i, j]
        return xp[:, :, ph:ph + h, pw:pw + w].copy()

    @classmethod
    def grad(cls, node, g):
        attrs = {k: node.attrs[k] for k in ("kernel", "stride", "padding", "dilation") + _layout_attr(node)}
        return (make_node(Im2Col, (g,), {**attrs, "value": 0.0 if g.dtype.kind == "f" else 0}),)


def _pool_geometry(x, attrs):
    (kh, kw), (sh, sw), (ph, pw), _ = _geometry(attrs)
    n, c, h, w = x.shape
    return n, c, out_size(h, kh, sh, ph, 1), out_size(w, kw, sw, pw, 1)


def _windows(x, attrs):
    """x's windows (N, C, kh*kw, OH*OW), the padding filled with attrs value."""
    (kh, kw), _, _, _ = _geometry(attrs)
    _, _, oh, ow = _pool_geometry(x, attrs)
    cols = Im2Col.impl(x, **{k: attrs[k] for k in ("kernel", "stride", "padding", "dilation", "value")})
    return cols.reshape(x.shape[0], x.shape[1], kh * kw, oh * ow)


class MaxPool2d(Op):
    """The maximum of each kernel window of x (N, C, H, W) -> (N, C, OH, OW): im2col's attrs
    (kernel, stride, padding, dilation (1, 1), value: the padding's fill, -inf or the integer
    minimum), one kernel reading x once (no columns written). A NaN in a window makes it NaN, as
    np.max. Its gradient is max_pool2d_grad."""

    name = "max_pool2d"
    kind = "reduction"
    arity = 1

    @classmethod
    def infer(cls, inputs, attrs):
        (x,) = inputs
        _check(x, attrs, "max_pool2d")
        Im2Col.infer(inputs, attrs)  # the window fits
        return _pool_geometry(x, attrs), x.dtype

    @classmethod
    def impl(cls, x, **attrs):
        n, c, oh, ow = _pool_geometry(x, attrs)
        return _windows(x, attrs).max(axis=2).reshape(n, c, oh, ow)

    @classmethod
    def grad(cls, node, g):
        return (make_node(MaxPool2dGrad, (node.inputs[0], node, g), dict(node.attrs)),)


class MaxPool2dGrad(Op):
    """max_pool2d's gradient: (x, y = max_pool2d(x), g) -> dx of x's shape. Each window's cotangent
    is split evenly among its entries equal to its maximum (a padded entry counts, its share is
    dropped); a window whose maximum is NaN gives NaN to all its entries. One kernel, per image
    plane window by window: no columns, no count array, no col2im. Its derivative is that of
    composite(), the same formula in primitives."""

    name = "max_pool2d_grad"
    kind = "movement"
    arity = 3
    composite_grad = True

    @classmethod
    def infer(cls, inputs, attrs):
        x, y, g = inputs
        if x.dtype.kind != "f" or g.dtype != x.dtype or y.shape != g.shape or y.dtype != x.dtype:
            raise ShapeError(f"max_pool2d_grad needs float x, y and g of one dtype, y and g of one shape; got "
                             f"{fmt_shape(x.shape)} {x.dtype}, {fmt_shape(y.shape)} {y.dtype}, "
                             f"{fmt_shape(g.shape)} {g.dtype}")
        return x.shape, x.dtype

    @classmethod
    def impl(cls, x, y, g, **attrs):
        n, c = x.shape[:2]
        win = _windows(x, attrs)
        hit = (win == y.reshape(n, c, 1, win.shape[3])).astype(x.dtype)
        with np.errstate(invalid="ignore"):  # 0 / 0 where a window's maximum is NaN, as the composite
            share = g.reshape(n, c, 1, win.shape[3]) * hit / hit.sum(axis=2, keepdims=True)
        keep = {k: attrs[k] for k in ("kernel", "stride", "padding", "dilation")}
        return Col2Im.impl(share.reshape(n, c * win.shape[2], win.shape[3]), **keep, size=x.shape[1:])

    @classmethod
    def composite(cls, node):
        """The same value built from primitives: im2col, equal, cast, sum, mul, div, col2im."""
        x, y, g = node.inputs
        (kh, kw), _, _, _ = _geometry(node.attrs)
        c = x.shape[1]
        win = build.reshape(make_node(Im2Col, (x,), {k: node.attrs[k] for k in
                                                     ("kernel", "stride", "padding", "dilation", "value")}),
                            (-1, c, kh * kw, y.shape[2] * y.shape[3]))
        flat = (-1, c, 1, y.shape[2] * y.shape[3])
        hit = build.cast(build.equal(win, build.reshape(y, flat)), x.dtype)
        share = build.div(build.mul(build.reshape(g, flat), hit), build.sum(hit, 2, keepdims=True))
        keep = {k: node.attrs[k] for k in ("kernel", "stride", "padding", "dilation")}
        return make_node(Col2Im, (build.reshape(share, (-1, c * kh * kw, flat[3])),), {**keep, "size": x.shape[1:]})

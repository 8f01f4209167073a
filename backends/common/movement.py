"""The render rules of the primitives whose kernels move or scan data — transpose, slice, unslice,
take, scatter_add, pad, concat, dimsize, im2col, col2im, argmax/argmin, max_pool2d and its
gradient — written once against a Target's hooks.

A backend differs in the hooks alone: how it iterates over a shape (CPU loops, split over threads,
or one GPU thread per element), what an index out of range does (raise, or set the error word),
and how a scatter adds into its output (+=, or an atomic add where threads race)."""
from __future__ import annotations

import math

from graphc.ops.conv import out_size

from .source import KernelSource, axis_slice, col2im_body, extent, im2col_body, literal, np_type, slice_params


class Target:
    """The hooks a backend gives the shared rules. Loop variables are i0, i1, ... (one per axis)."""

    name = ""

    def kernel(self, kern) -> KernelSource:
        """An empty kernel source for this backend."""
        raise NotImplementedError

    def loops(self, k, extents, body, tag: str = "") -> None:
        """body once per element of extents (plain loops, or a GPU launch named by tag)."""
        raise NotImplementedError

    def over(self, k, dims, node, body, *, split: bool = False, parallel: bool = True) -> None:
        """body once per element of node's shape. split: the kernel's only loops, which a CPU may cut
        over its threads; parallel=False: iterations may write one element twice (no threads)."""
        raise NotImplementedError

    def over_space(self, k, shape, extents, body, *, split: bool = False, work: int = 1) -> None:
        """body once per element of an iteration space of this shape (None: a run-time dim) whose
        loop bounds are extents (loop variables i0.. as in over); work: elements of work each
        iteration does (a CPU splits the loops over its threads only when there is enough)."""
        raise NotImplementedError

    def fill(self, k, dims, node, out, value) -> None:
        """out (node's shape) set to value everywhere."""
        raise NotImplementedError

    def check_index(self, k, var, n, pos, body) -> None:
        """Append NumPy's index rule for var on an axis of size n (negative counts from the end;
        outside [-n, n) fails with the kernel's position pos)."""
        raise NotImplementedError

    def add_into(self, out, idx, value) -> str:
        """The statement adding value into out[idx] (idx: one expression per axis)."""
        raise NotImplementedError


def _ivars(n):
    return [f"i{q}" for q in range(n)]


def transpose(t: Target, kern, dims):
    node = kern.nodes[0]
    k = t.kernel(kern)
    x = k.array(node.inputs[0], "a0")
    o = k.array(node, "o0")
    perm = node.attrs["perm"]
    inv = [0] * len(perm)
    for q, p in enumerate(perm):
        inv[p] = q
    src = k.index([f"i{inv[a]}" for a in range(len(perm))], len(perm))
    t.over(k, dims, node, [f"{o}[{k.index(_ivars(node.ndim), node.ndim)}] = {x}[{src}]"], split=True)
    return k


def slice_(t: Target, kern, dims):
    node = kern.nodes[0]
    k = t.kernel(kern)
    x = k.array(node.inputs[0], "a0")
    o = k.array(node, "o0")
    ps = [slice_params(k, dims, node, q) for q in range(node.ndim)]
    src = k.index([f"{st} + i{q} * {sp}" for q, (st, sp) in enumerate(ps)], node.ndim)
    t.over(k, dims, node, [f"{o}[{k.index(_ivars(node.ndim), node.ndim)}] = {x}[{src}]"], split=True)
    return k


def unslice(t: Target, kern, dims):
    """Zeros of the input's shape, then the gradient written at the sliced positions."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    gn = node.inputs[0]
    g = k.array(gn, "a0")
    o = k.array(node, "o0")
    t.fill(k, dims, node, o, literal(0, node.dtype))
    ps = [axis_slice(k, dims, node, q, s) for q, s in enumerate(node.attrs["index"])]
    dst = k.index([f"{st} + i{q} * {sp}" for q, (st, sp) in enumerate(ps)], node.ndim)
    t.over(k, dims, gn, [f"{o}[{dst}] = {g}[{k.index(_ivars(gn.ndim), gn.ndim)}]"], parallel=False)
    return k


def take(t: Target, kern, dims):
    node = kern.nodes[0]
    k = t.kernel(kern)
    xn, idn = node.inputs
    x, idx = k.array(xn, "a0"), k.array(idn, "a1")
    o = k.array(node, "o0")
    axis = node.attrs["axis"]
    n = extent(k, dims, xn, axis, xn.shape[axis], "size")
    iv = _ivars(node.ndim)
    body = [f"ix = np.int64({idx}[{k.index(iv[axis:axis + idn.ndim], idn.ndim)}])"]
    t.check_index(k, "ix", n, 0, body)
    src = iv[:axis] + ["ix"] + iv[axis + idn.ndim:]
    body.append(f"{o}[{k.index(iv, node.ndim)}] = {x}[{k.index(src, xn.ndim)}]")
    t.over(k, dims, node, body, parallel=False)
    return k


def scatter_add(t: Target, kern, dims):
    """Zeros, then each gradient element added into its index's row (indices may repeat)."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    gn, idn = node.inputs[:2]
    g, idx = k.array(gn, "a0"), k.array(idn, "a1")
    o = k.array(node, "o0")
    axis = node.attrs["axis"]
    t.fill(k, dims, node, o, literal(0, node.dtype))
    n = extent(k, dims, node, axis, node.shape[axis], "size")
    iv = _ivars(gn.ndim)
    body = [f"ix = np.int64({idx}[{k.index(iv[axis:axis + idn.ndim], idn.ndim)}])"]
    t.check_index(k, "ix", n, 0, body)
    body.append(t.add_into(o, iv[:axis] + ["ix"] + iv[axis + idn.ndim:], f"{g}[{k.index(iv, gn.ndim)}]"))
    t.over(k, dims, gn, body, parallel=False)
    return k


def pad(t: Target, kern, dims):
    node = kern.nodes[0]
    k = t.kernel(kern)
    xn = node.inputs[0]
    x = k.array(xn, "a0")
    o = k.array(node, "o0")
    t.fill(k, dims, node, o, literal(node.attrs["value"], node.dtype))
    dst = k.index([f"i{q} + {lo}" for q, (lo, _) in enumerate(node.attrs["pad_width"])], node.ndim)
    t.over(k, dims, xn, [f"{o}[{dst}] = {x}[{k.index(_ivars(xn.ndim), xn.ndim)}]"])
    return k


def concat(t: Target, kern, dims):
    """Each input's block of the output in turn (one loop nest, or one launch, per input)."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    o = k.array(node, "o0")
    axis = node.attrs["axis"]
    T = np_type(node.dtype)
    off = "0"
    for q, xn in enumerate(node.inputs):
        x = k.array(xn, f"a{q}")
        iv = _ivars(xn.ndim)
        ext = [extent(k, dims, xn, j, d, f"c{q}_{j}") for j, d in enumerate(xn.shape)]
        dst = k.index([f"{v} + {off}" if j == axis else v for j, v in enumerate(iv)], node.ndim)
        t.loops(k, ext, [f"{o}[{dst}] = {T}({x}[{k.index(iv, xn.ndim)}])"], f"_{q}")
        off = f"{off} + {ext[axis]}" if off != "0" else ext[axis]
    return k


def dimsize(t: Target, kern, dims):
    """The run-time size of axes (their product), as a 0-d tensor."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    o = k.array(node, "o0")
    xn, axes = node.inputs[0], node.attrs["axes"]
    n = k.int_arg("size", dims.add(lambda s, x=xn, a=axes: math.prod(s[x][q] for q in a)))
    t.loops(k, [], [f"{o}[{k.ZERO_D}] = {np_type(node.dtype)}({n})"])
    return k


def argreduce(t: Target, kern, dims):
    """argmax/argmin: per output entry a scan along the axis (NumPy: the first extreme wins, and
    the first NaN wins over everything); axis None: one scan over every element in C order."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    xn = node.inputs[0]
    x = k.array(xn, "a0")
    o = k.array(node, "o0")
    axis, keep = node.attrs["axis"], node.attrs["keepdims"]
    better = ">" if node.op.name == "argmax" else "<"
    step = [f"if (v {better} best and best == best) or (v != v and best == best):", "    best = v", "    pos = q"]
    ext = {q: extent(k, dims, xn, q, d, f"n{q}") for q, d in enumerate(xn.shape)}
    if axis is None:  # a counter through nested loops
        iv = [f"s{q}" for q in range(xn.ndim)]
        body = [f"best = {x}[{k.index(['0'] * xn.ndim, xn.ndim)}]", "pos = 0", "q = 0"]
        pad = ""
        for q in range(xn.ndim):
            body.append(f"{pad}for s{q} in range({ext[q]}):")
            pad += "    "
        body += [f"{pad}v = {x}[{k.index(iv, xn.ndim)}]"] + [pad + s for s in step] + [f"{pad}q += 1"]
        body.append(f"{o}[{k.index(['0'] * node.ndim, node.ndim)}] = pos")
        t.loops(k, [], body)
        return k
    outer = [q for q in range(xn.ndim) if q != axis]
    src = [("q" if q == axis else f"i{outer.index(q)}") for q in range(xn.ndim)]
    src0 = ["0" if q == axis else s for q, s in zip(range(xn.ndim), src)]
    dst = [("0" if q == axis else f"i{outer.index(q)}") for q in range(xn.ndim)] if keep else \
        [f"i{j}" for j in range(len(outer))]
    body = [f"best = {x}[{k.index(src0, xn.ndim)}]", "pos = 0", f"for q in range(1, {ext[axis]}):",
            f"    v = {x}[{k.index(src, xn.ndim)}]"] + ["    " + s for s in step] + \
        [f"{o}[{k.index(dst, node.ndim)}] = pos"]
    t.loops(k, [ext[q] for q in outer], body)
    return k


def im2col(t: Target, kern, dims):
    node = kern.nodes[0]
    k = t.kernel(kern)
    xn = node.inputs[0]
    x = k.array(xn, "a0")
    o = k.array(node, "o0")
    # over (image, channel, window row, window column, output row, output column): no division
    # per element, and the innermost loop writes consecutive elements
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (node.attrs[a] for a in ("kernel", "stride", "padding", "dilation"))
    n, c, h, w = xn.shape
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    space = (n, c, kh, kw, oh, ow)
    extents = [extent(k, dims, xn, 0, n, "n0")] + [str(d) for d in space[1:]]
    t.over_space(k, space, extents, im2col_body(node, o, x), split=True)
    return k


def col2im(t: Target, kern, dims):
    node = kern.nodes[0]
    k = t.kernel(kern)
    g = k.array(node.inputs[0], "a0")
    o = k.array(node, "o0")
    t.over(k, dims, node, col2im_body(node, o, g), split=True)
    return k


def _window_loops(node, body, *, at="i2", at_w="i3") -> list[str]:
    """Loops over the kernel window of output pixel (at, at_w): p, q the offsets, h, w the input
    pixel; body runs where that is inside the image (no test without padding)."""
    (kh, kw), (sh, sw), (ph, pw), _ = (node.attrs[a] for a in ("kernel", "stride", "padding", "dilation"))
    _, _, H, W = node.inputs[0].shape
    lines = [f"for p in range({kh}):", f"    h = {at} * {sh} - {ph} + p"]
    pad = "    "
    if ph:
        lines.append(f"    if h >= 0 and h < {H}:")
        pad += "    "
    lines += [f"{pad}for q in range({kw}):", f"{pad}    w = {at_w} * {sw} - {pw} + q"]
    pad += "    "
    if pw:
        lines.append(f"{pad}if w >= 0 and w < {W}:")
        pad += "    "
    return lines + [pad + b for b in body]


def max_pool2d(t: Target, kern, dims):
    """Per output pixel, the maximum over its window read from x (padding: the fill; a NaN wins)."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    x = k.array(node.inputs[0], "a0")
    o = k.array(node, "o0")
    best = ["v = " + f"{x}[i0, i1, h, w]", "if v > best or v != v:", "    best = v"]
    body = [f"best = {literal(node.attrs['value'], node.dtype)}"] + _window_loops(node, best) + \
        [f"{o}[i0, i1, i2, i3] = best"]
    t.over(k, dims, node, body, split=True)
    return k


def max_pool2d_grad(t: Target, kern, dims):
    """Per image plane (windows of two planes never meet, so planes run in parallel), zeros, then
    window by window: its cotangent over its number of maxima added onto each maximum. Exactly
    max_pool2d_grad's composite g * hit / count, NaN and inf included: a NaN maximum (no entry
    equals it) makes NaN of the whole window, an inf cotangent NaN of its other entries (inf * 0)."""
    node = kern.nodes[0]
    k = t.kernel(kern)
    xn, yn, _ = node.inputs
    x, y, g = k.array(xn, "a0"), k.array(yn, "a1"), k.array(node.inputs[2], "a2")
    o = k.array(node, "o0")
    n, c, H, W = xn.shape
    OH, OW = yn.shape[2], yn.shape[3]
    T = np_type(node.dtype)
    fill = literal(node.attrs["value"], node.dtype)
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["stride"]
    # the window's number of maxima: its entries equal to m, a padded one (the fill) included
    inner = [f"v = {x}[i0, i1, h, w]", "if v == m:", "    k_ += 1"]
    count = ["k_ = 0"] + _window_loops(node, inner, at="a", at_w="b")
    if any(node.attrs["padding"]):
        count = ["k_ = 0", "inside = 0"] + _window_loops(node, inner + ["inside += 1"], at="a", at_w="b") + \
            [f"if {fill} == m:", f"    k_ += {kh * kw} - inside"]
    # windows side by side (stride = kernel, no padding: LeNet's): each pixel in at most one, so
    # it is written, not added to, and only the pixels no window holds are zeroed first
    tiled = (sh, sw) == (kh, kw) and not any(node.attrs["padding"])
    put = "=" if tiled else "+="
    add = [f"{o}[i0, i1, h, w] {put} share if {x}[i0, i1, h, w] == m else rest"]
    nan = [f"{o}[i0, i1, h, w] {put} m"]
    zero = f"{o}[i0, i1, h, w] = {T}(0)"
    if not tiled:
        zeros = [f"for h in range({H}):", f"    for w in range({W}):", f"        {zero}"]
    else:  # the bottom rows and right columns past the last window
        zeros = [f"for h in range({OH * kh}, {H}):", f"    for w in range({W}):", f"        {zero}",
                 f"for h in range({OH * kh}):", f"    for w in range({OW * kw}, {W}):", f"        {zero}"]
    per_window = ["if m != m:"] + ["    " + ln for ln in _window_loops(node, nan, at="a", at_w="b")] + \
        ["else:"] + ["    " + ln for ln in count] + \
        [f"    gv = {g}[i0, i1, a, b]", f"    share = gv / {T}(k_)", "    rest = gv * 0"] + \
        ["    " + ln for ln in _window_loops(node, add, at="a", at_w="b")]
    body = zeros + [f"for a in range({OH}):", f"    for b in range({OW}):", f"        m = {y}[i0, i1, a, b]"] + \
        ["        " + ln for ln in per_window]
    extents = [extent(k, dims, xn, 0, n, "n0"), str(c)]
    t.over_space(k, (n, c), extents, body, split=True, work=H * W)
    return k


RULES = {"transpose": transpose, "slice": slice_, "unslice": unslice, "take": take, "scatter_add": scatter_add,
         "pad": pad, "concat": concat, "dimsize": dimsize, "im2col": im2col, "col2im": col2im,
         "argmax": argreduce, "argmin": argreduce, "max_pool2d": max_pool2d, "max_pool2d_grad": max_pool2d_grad}


def rules(target_for) -> dict:
    """The shared rules as a backend's RENDER entries: target_for(*backend_args) gives the Target
    (cuda's depends on its launch configuration), and each entry is called (kern, dims, *args)."""
    return {kind: (lambda kern, dims, *args, rule=rule: rule(target_for(*args), kern, dims))
            for kind, rule in RULES.items()}

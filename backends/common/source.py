"""What every code-generating backend's renderer shares: typed literals, index text, the run-time
ints a kernel takes (Dims), a kernel's source as structured data (KernelSource), loop bounds, slice
bounds and the im2col/col2im element bodies."""
from __future__ import annotations

import math

import numpy as np

from graphc.schedule import Kernel

STATIC_MAX = 16  # loop extents from this size on are kernel arguments, not literals


def np_type(dtype) -> str:
    return "np.bool_" if np.dtype(dtype) == np.bool_ else f"np.{np.dtype(dtype).name}"


def literal(value, dtype) -> str:
    """A typed constant: float32 stays float32 in the generated code."""
    dtype = np.dtype(dtype)
    v = np.asarray(value).reshape(()).item()
    if dtype == np.bool_:
        return "True" if v else "False"
    if dtype.kind == "f":
        if math.isnan(v):
            text = "np.nan"
        elif math.isinf(v):
            text = "np.inf" if v > 0 else "-np.inf"
        else:
            text = repr(float(v))
        return f"{np_type(dtype)}({text})"
    return f"{np_type(dtype)}({int(v)})"


def convert(expr: str, have, want) -> str:
    if want is None or np.dtype(have) == np.dtype(want):
        return expr
    if np.dtype(want) == np.bool_:
        return f"({expr} != 0)"
    return f"{np_type(want)}({expr})"


def row_element(node, expr: str, row: str, col: str) -> str:
    """The element a row primitive computes its row from, given x's element expr at query index
    `row` (second-last axis) and key index `col` (last): for causal_log_softmax the scaled score, or
    -inf above its diagonal (the mask from the indices, no array read); for the others expr itself."""
    if node.op.name != "causal_log_softmax":
        return expr
    T = np_type(node.dtype)
    scaled = expr if node.attrs["scale"] == 1.0 else f"{expr} * {literal(node.attrs['scale'], node.dtype)}"
    diag = int(node.attrs["diag"])
    bound = row if diag == 0 else f"{row} + {diag}" if diag > 0 else f"{row} - {-diag}"
    return f"({scaled} if {col} <= {bound} else {T}(-np.inf))"


def function_blocks(source: str) -> dict[str, str]:
    """The top-level functions of a generated module by name, each with its decorators (what
    Executable.kernel_source shows of a kernel)."""
    out, pending, current, name = {}, [], None, None
    for line in source.splitlines():
        if line.startswith("@"):
            if current is not None:
                out[name], current = "\n".join(current).rstrip() + "\n", None
            pending.append(line)
        elif line.startswith("def "):
            if current is not None:
                out[name] = "\n".join(current).rstrip() + "\n"
            name = line[4:line.index("(")]
            current, pending = pending + [line], []
        elif current is not None and (line.startswith((" ", "\t")) or not line.strip()):
            current.append(line)
        elif current is not None:  # module-level code after the function
            out[name], current = "\n".join(current).rstrip() + "\n", None
    if current is not None:
        out[name] = "\n".join(current).rstrip() + "\n"
    return out


class DimRef(str):
    """An int the driver reads from its `dims` array: the text `dims[k]` that the generated code
    holds, and the slot k, for whoever needs its value (profile) without parsing the text."""

    slot: int

    def __new__(cls, slot: int):
        ref = super().__new__(cls, f"dims[{slot}]")
        ref.slot = slot
        return ref


def int_value(expr, dims) -> int:
    """The value of a kernel's int argument (a DimRef or a literal's text) for these run-time dims."""
    return int(dims[expr.slot]) if isinstance(expr, DimRef) else int(expr)


class Dims:
    """The run-time ints the driver reads from `dims`: each a function of the concrete shapes."""

    def __init__(self):
        self.specs = []

    def add(self, fn) -> DimRef:
        self.specs.append(fn)
        return DimRef(len(self.specs) - 1)


class KernelSource:
    """One kernel's function: its source, the driver-level values it takes, its int arguments."""

    ZERO_D = "()"  # the subscript of a 0-d array's element (a backend may hold 0-d values otherwise)

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.arrays = []      # nodes passed as arrays (inputs then outputs)
        self.ints = []        # driver expressions for the int64 arguments
        self.lines = []
        self.parallel = False
        self.split = None     # when parallel: the outer loop's extent, cut into pieces [lo, hi)
        self.size = None      # when split over a run-time dim: the extents whose product decides
        self.arg_names = []
        self.fallible = False  # may fail at run time (an index check): set where the failing code is
        self.helpers = set()  # vmath functions the kernel calls (their source goes into the module)
        self.fastmath = None  # fastmath flags other than the module's OPTS

    def array(self, node, name) -> str:
        """The argument holding node: a new one named name, or, for an output the kernel writes into
        an input's array (Kernel.writes_into), that input's own."""
        into = self.kernel.writes_into.get(node)
        for m, a in zip(self.arrays, self.arg_names):
            if into is not None and m is into:
                return a
        self.arrays.append(node)
        self.arg_names.append(name)
        return name

    def int_arg(self, name, driver_expr) -> str:
        self.ints.append((name, driver_expr))
        return name

    def index(self, names, nd: int) -> str:
        """The subscript of an element of an nd-dim array at these index expressions."""
        return self.ZERO_D if nd == 0 else ", ".join(names)


def extent(k: KernelSource, dims: Dims, ref, axis, static, name, static_max: int = STATIC_MAX):
    """A loop bound: a literal when small and known at compile time, else an int argument (from
    dims when known only at run time). A size of STATIC_MAX or more is an argument even when known:
    a literal buys such a loop nothing, and kernels that differ only in their sizes (Adam's update
    of each weight matrix, each layer's bias-add-relu, each layer's products) are then one function,
    compiled once (render_module defines each distinct kernel text once)."""
    if static is not None:
        return str(static) if static < static_max else k.int_arg(name, str(static))
    return k.int_arg(name, dims.add(lambda s, ref=ref, a=axis: s[ref][a]))


def shape_exprs(k, dims, node, prefix):
    return [extent(k, dims, node, q, d, f"{prefix}{q}") for q, d in enumerate(node.shape)]


def axis_slice(k, dims, x, q, t):
    """start and step of slice t on x's axis q: literals when the dim is static."""
    d = x.shape[q]
    if d is not None:
        start, _, step = slice(*t).indices(d)
        return str(start), str(step)
    st = k.int_arg(f"s{q}", dims.add(lambda s, x=x, q=q, t=t: slice(*t).indices(s[x][q])[0]))
    sp = k.int_arg(f"p{q}", dims.add(lambda s, x=x, q=q, t=t: slice(*t).indices(s[x][q])[2]))
    return st, sp


def slice_params(k: KernelSource, dims: Dims, node, q):
    """start and step on axis q of a slice node: a piece of a concat starts where the sizes of the
    pieces before it add up to at run time (Slice.bounds)."""
    piece = node.attrs.get("piece")
    if piece is None or q != piece[0]:
        return axis_slice(k, dims, node.inputs[0], q, node.attrs["index"][q])
    if all(r.shape[q] is not None for r in node.inputs[1:piece[1] + 1]):
        return str(sum(r.shape[q] for r in node.inputs[1:piece[1] + 1])), "1"
    return k.int_arg(f"s{q}", dims.add(lambda s, n=node, q=q: n.op.bounds(n, s, q)[0])), "1"


def _columns(node, ch: str, image: str, pos: str) -> str:
    """The subscript of im2col's column entry (row ch of image `image`, window position pos) in
    the node's layout: [image, ch, pos] ("nkl") or [ch, image*OH*OW + pos] ("knl")."""
    from graphc.ops.conv import out_size
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (node.attrs[a] for a in ("kernel", "stride", "padding", "dilation"))
    H, W = (node.inputs[0].shape[2:] if node.op.name == "im2col" else node.attrs["size"][1:])
    L = out_size(H, kh, sh, ph, dh) * out_size(W, kw, sw, pw, dw)
    return f"[{ch}, {image} * {L} + {pos}]" if node.attrs.get("layout", "nkl") == "knl" else f"[{image}, {ch}, {pos}]"


def im2col_body(node, o, x) -> list[str]:
    """Per element (i0 image, i1 channel c, i2 window row p, i3 window column q, i4 output row, i5
    output column) of im2col's iteration space: the column entry [i0, (c*kh + p)*kw + q, oh*OW +
    ow] (layout "nkl"; "knl": [(c*kh + p)*kw + q, i0*OH*OW + oh*OW + ow]), a gather
    (graphc/ops/conv.py). Shared by the CPU and CUDA renderers."""
    from graphc.ops.conv import out_size
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (node.attrs[a] for a in ("kernel", "stride", "padding", "dilation"))
    _, _, H, W = node.inputs[0].shape
    OW = out_size(W, kw, sw, pw, dw)
    dst = o + _columns(node, f"(i1 * {kh} + i2) * {kw} + i3", "i0", f"i4 * {OW} + i5")
    if ph == pw == 0:  # every window inside the image (out_size)
        return [f"{dst} = {x}[i0, i1, i4 * {sh} + i2 * {dh}, i5 * {sw} + i3 * {dw}]"]
    return [f"h = i4 * {sh} - {ph} + i2 * {dh}", f"w = i5 * {sw} - {pw} + i3 * {dw}",
            f"if h >= 0 and h < {H} and w >= 0 and w < {W}:", f"    {dst} = {x}[i0, i1, h, w]",
            "else:", f"    {dst} = {literal(node.attrs['value'], node.dtype)}"]


def col2im_body(node, o, g) -> list[str]:
    """Per output pixel (i0, i1 = c, i2 = h, i3 = w) of col2im: the sum of the column entries that
    came from it, gathered (no two threads write one pixel)."""
    from graphc.ops.conv import out_size
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (node.attrs[a] for a in ("kernel", "stride", "padding", "dilation"))
    _, H, W = node.attrs["size"]
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    T = np_type(node.dtype)
    src = g + _columns(node, f"(i1 * {kh} + p) * {kw} + q", "i0", f"(t // {sh}) * {OW} + u // {sw}")
    return [f"acc = {T}(0)", f"for p in range({kh}):", f"    t = i2 + {ph} - p * {dh}",
            f"    if t >= 0 and t % {sh} == 0 and t // {sh} < {OH}:", f"        for q in range({kw}):",
            f"            u = i3 + {pw} - q * {dw}",
            f"            if u >= 0 and u % {sw} == 0 and u // {sw} < {OW}:",
            f"                acc += {src}",
            f"{o}[i0, i1, i2, i3] = acc"]

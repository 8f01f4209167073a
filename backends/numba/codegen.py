"""Render a schedule as one readable Python module: one @njit per kernel and one @njit driver.

Kernels take C-contiguous arrays (inputs, then outputs) and int64 extents: sizes known only at run
time, and sizes of STATIC_MAX or more (smaller ones known at compile time are literals), so
kernels alike but for their sizes are one function. The driver takes the arrays from outside
(feeds, parameters, constants, returned outputs), one flat workspace arena per dtype, `sizes` (the
run-time sizes and arena offsets the plan computes) and `addresses` (the kernels' native entry
points), and calls the kernels in order: `kcall`, or `pcall` for a large loop kernel, which runs it
on every thread over pieces [lo, hi) of its outer loop. For a loop kernel over a run-time dim, pcall
is told per call from the actual size whether to use the threads or run it over [0, extent) itself.
"""
from __future__ import annotations

import math
import os

import numpy as np

from graphc.errors import CompileError
from graphc.ops import random as rnd
from graphc.ops.base import index_read, reads, swap_last_two
from graphc.passes.fuse import row_split
from graphc.schedule import Kernel, fresh_outputs

from ..common import movement
from ..common.source import (
    STATIC_MAX,
    Dims,
    KernelSource,
    convert,
    extent,
    literal,
    np_type,
    row_element,
    shape_exprs,
)
from . import vmath

# elements per kernel before its outer loop runs on every thread (GRAPHC_PARALLEL_MIN to experiment)
PARALLEL_MIN = int(os.environ.get("GRAPHC_PARALLEL_MIN", 1 << 15))
# a row sum may be reassociated, so LLVM vectorizes it (only row reductions ask for it)
REASSOC = ("contract", "reassoc")
RUNTIME_GUESS = 256       # assumed size of a None dim for prange kernels (split ones decide per call)
SMALL_MATMUL = 4096       # multiply-adds below which a matmul is a loop nest, not a BLAS call
# a product with at most DOT_OUT outputs over an inner axis of at least DOT_K (a small
# convolution's weight gradient: (16, N*OH*OW) @ (N*OH*OW, 25)) is dot products over chunks of
# DOT_CHUNK of the inner axis, on every thread: OpenBLAS runs such shapes on one thread at ~30
# GFLOP/s ((16, 36864) @ (36864, 25): 0.8-1.0 ms, the dot products 0.27-0.33 ms on 2 cores)
DOT_OUT, DOT_K, DOT_CHUNK = 1024, 4096, 1024
# OpenBLAS runs a product of at most this many multiply-adds on the calling thread (SMP_THRESHOLD_MIN
# x GEMM_MULTITHREAD_THRESHOLD in its interface/gemm.c), so a batch of such products (attention's
# per-head (64, 32) @ (32, 64)) called one after another keeps one core busy: its batch is cut
# among the threads instead (128 of them: 0.54-0.72 ms in a row, 0.39-0.50 ms on 2 cores)
BLAS_ONE_THREAD = 1 << 18

NB_TYPE = {"float32": "T.float32", "float64": "T.float64", "int32": "T.int32", "int64": "T.int64",
           "bool": "T.boolean"}


def arr_type(dtype, ndim: int, layout: str = "C") -> str:
    return f'T.Array({NB_TYPE[np.dtype(dtype).name]}, {ndim}, "{layout}")'


def _loops(lines, vars_, extents, body, parallel_first=False, depth=1):
    """Nested for-loops (the first a prange when asked) around body lines."""
    pad = "    " * depth
    for j, (v, e) in enumerate(zip(vars_, extents)):
        rng = "nb.prange" if parallel_first and j == 0 else "range"
        lines.append(f"{pad}{'    ' * j}for {v} in {rng}({e}):")
    inner = pad + "    " * len(vars_)
    lines.extend(inner + b for b in body)


def _split_loops(k, vars_, extents, body):
    """The kernel's one loop nest, its outer loop over [lo, hi) when k.parallel: the driver runs
    the kernel on every thread at once over pieces of [0, extent) (intrinsics.pcall). For kernels
    whose only statements outside the nest read scalars: each piece runs them all."""
    if not k.parallel:
        _loops(k.lines, vars_, extents, body)
        return
    k.split = extents[0]
    pad = "    "
    # nonneg: the index starts at lo, and LLVM must know it is >= 0 to vectorize the accesses
    k.lines += [f"{pad}for {vars_[0]}_ in range(lo, hi):", f"{pad}    {vars_[0]} = nonneg({vars_[0]}_)"]
    for j, (v, e) in enumerate(zip(vars_[1:], extents[1:])):
        k.lines.append(f"{pad}{'    ' * (j + 1)}for {v} in range({e}):")
    k.lines.extend(pad + "    " * len(vars_) + b for b in body)


def _parallel_ok(shape, k=None, extents=None, work: int = 1) -> bool:
    """Whether a kernel over shape runs its outer loop on every thread. Given the kernel (k) and
    its loops' extents, a shape with a run-time dim is decided per call: the kernel is split, and
    the driver runs it on every thread only when the product of the extents (k.size) reaches
    PARALLEL_MIN, else on its own thread over the whole range. Without them (prange kernels) a
    run-time dim counts as RUNTIME_GUESS. work: elements of work per iteration (a whole image
    plane), counted toward PARALLEL_MIN."""
    if len(shape) and k is not None and None in shape:
        k.size = list(extents) + ([str(work)] if work > 1 else [])
        return True
    size = work
    for d in shape:
        size *= RUNTIME_GUESS if d is None else d
    return size >= PARALLEL_MIN and len(shape) > 0


REDUCE_INIT = {"sum": 0, "prod": 1}


def _identity(op, dtype) -> str:
    dtype = np.dtype(dtype)
    if op in REDUCE_INIT:
        return literal(REDUCE_INIT[op], dtype)
    big = op == "min"
    if dtype == np.bool_:
        return "True" if big else "False"
    if dtype.kind == "f":
        return f"{np_type(dtype)}({'np.inf' if big else '-np.inf'})"
    info = np.iinfo(dtype)
    return literal(info.max if big else info.min, dtype)


def _combine(op, acc, v, dtype=None) -> str:
    """acc combined with v by the reduction op; given the dtype, a float sum into a local
    accumulator adds with radd (reassociable: the loop vectorizes)."""
    if op == "sum" and dtype is not None and np.dtype(dtype).kind == "f":
        return f"radd({acc}, {v})"
    return {"sum": f"{acc} + {v}", "prod": f"{acc} * {v}",
            "max": f"({acc} if ({acc} >= {v} or {acc} != {acc}) else {v})",
            "min": f"({acc} if ({acc} <= {v} or {acc} != {acc}) else {v})"}[op]


class LoopParts:
    """A loop kernel's body, independent of how a backend iterates: loop variables, extents,
    per-element lines, output writes and the folded reduction (red, its value v, output ro[ridx])."""

    __slots__ = ("ivars", "extents", "body", "writes", "red", "v", "ro", "ridx", "checks", "out_arrays")


def index_error(kern, m, what) -> str:
    """The statement a CPU kernel runs on an index out of range; what: the message's text (the
    executable explains it)."""
    return f'raise IndexError("graphc:{kern.index}:{kern.position(m)}: {what}")'


def loop_parts(kern: Kernel, dims: Dims, k: KernelSource, vector_math: bool = True, fail=index_error,
               prefix: str = "", scalars=None, extents=None) -> LoopParts:
    """Everything of a fused elementwise kernel (optionally folding one reduction) but its loops.

    vector_math: float32 transcendentals from vmath (CPU); fail(kern, node, what): the statement
    run when check_index finds an index out of range. For a part of a bigger kernel: prefix for its
    names, scalars {input node: local variable} read instead of arrays, extents its loop bounds."""
    shape = kern.shape
    r = len(shape)
    ivars = [f"i{j}" for j in range(r)]
    ref = next(m for m in kern.nodes if m.op.loop_reduction).inputs[0] if kern.reduce is not None \
        else kern.nodes[-1]
    if extents is None:
        extents = [extent(k, dims, ref, j, d, f"n{j}") for j, d in enumerate(shape)]
    names = dict(scalars or {})
    loads = []
    # inputs only index reads (transposes) read are loaded by them, at their own indices
    plain = {i for m in kern.nodes if not index_read(m) for i in reads(m)}
    for j, e in enumerate(kern.inputs):
        if e in names or e not in plain:
            continue
        if e.op.name == "constant" and e.data.size == 1:
            names[e] = literal(e.data, e.dtype)
            continue
        a = k.array(e, f"{prefix}a{j}")
        off = r - e.ndim
        idx = ["0" if d == 1 else ivars[off + q] for q, d in enumerate(e.shape)]
        x = names[e] = f"{prefix}x{j}"
        if all(i == "0" for i in idx):  # one value for every element: read once, before the loops
            k.lines.append(f"    {x} = {a}[{k.index(idx, e.ndim)}]")     # (and parfors cannot type a[()])
        else:
            loads.append(f"{x} = {a}[{k.index(idx, e.ndim)}]")
    body = list(loads)
    red = None
    checks = False
    for m in kern.nodes:
        if m.op.loop_reduction:
            red = m
            continue
        if index_read(m):  # a transpose, slice or unslice of a kernel input: it read at other indices
            e = m.inputs[0]
            a = next((n_ for x_, n_ in zip(k.arrays, k.arg_names) if x_ is e), None) or \
                k.array(e, f"{prefix}a{next(j for j, x_ in enumerate(kern.inputs) if x_ is e)}")
            off = r - m.ndim
            at = ivars[off:off + m.ndim]
            src, guard = m.op.read_index(m, at), m.op.read_guard(m, at)
            var = f"{prefix}v{len(names)}"
            read = f"{a}[{k.index(src, e.ndim)}]"
            body.append(f"{var} = {read} if {guard} else {np_type(m.dtype)}(0)" if guard else f"{var} = {read}")
            names[m] = var
            continue
        if m.op.kind == "random":  # element i of the node's shape (the loop's shape) is hash(key, i)
            flat = ivars[0] if r else "0"
            for j in range(1, r):
                flat = f"({flat}) * {extents[j]} + {ivars[j]}"
            var = f"{prefix}v{len(names)}"
            body.append(f"{var} = uniform_{m.dtype.name}({names[m.inputs[0]]}, {flat})")
            names[m] = var
            continue
        want = m.op.compute_dtype(m)
        wants = want if isinstance(want, tuple) else (want,) * len(reads(m))
        args = [convert(names[i], i.dtype, w) for i, w in zip(reads(m), wants)]
        T = np_type(m.dtype)
        fast = vmath.FUNCTIONS.get(m.op.name) if vector_math and m.dtype == np.float32 and len(wants) == 1 and \
            np.dtype(wants[0]) == np.float32 else None
        if fast:  # vectorizable float32 math instead of a libm call (vmath.py)
            k.helpers.add(fast)
            expr = f"{fast}({args[0]})"
        else:
            expr = m.op.render(m, args, T) if hasattr(m.op, "render") else m.op.template.format(*args, T=T)
        var = f"{prefix}v{len(names)}"
        if m.op.name == "check_index":
            checks = k.fallible = True
            bound = args[1] if len(args) > 1 else str(m.attrs["bound"])
            body.append(f"{var} = {T}({args[0]})")
            body.append(f"if {m.op.condition(m, var, bound)}:")
            body.append("    " + fail(kern, m, m.op.describe(m)))
            body.append(f"    {var} = {T}(0)")  # where fail only records the error (cuda): a safe value
            names[m] = var
            continue
        body.append(f"{var} = {convert(expr, m.dtype, m.dtype) if m.dtype == np.bool_ else f'{T}({expr})'}")
        names[m] = var
    outs = [m for m in kern.outputs if m is not red]
    writes, out_arrays = [], []
    for j, m in enumerate(outs):
        o = k.array(m, f"{prefix}o{j}")
        out_arrays.append(o)
        writes.append(f"{o}[{k.index(ivars, r)}] = {names[m]}")
    p = LoopParts()
    p.ivars, p.extents, p.body, p.writes, p.red, p.checks = ivars, extents, body, writes, red, checks
    p.out_arrays = out_arrays
    p.v = p.ro = p.ridx = None
    if red is not None:
        axes, keep = kern.reduce, red.attrs["keepdims"]
        p.ro = k.array(red, f"{prefix}o{len(outs)}")
        p.v = convert(names[red.inputs[0]], red.inputs[0].dtype, red.dtype)
        p.ridx = k.index(["0" if j in axes else ivars[j] for j in range(r)] if keep
                       else [ivars[j] for j in range(r) if j not in axes], red.ndim)
    return p


def render_loop(kern: Kernel, dims: Dims) -> KernelSource:
    """A fused elementwise kernel over the iteration shape, optionally folding one reduction."""
    k = KernelSource(kern)
    shape = kern.shape
    r = len(shape)
    p = loop_parts(kern, dims, k)
    ivars, extents, body, writes, red, checks = p.ivars, p.extents, p.body, p.writes, p.red, p.checks
    lines = k.lines
    if red is None:
        k.parallel = _parallel_ok(shape, k, extents) and not checks
        if r == 0:
            lines.extend("    " + b for b in body + writes)
        else:
            _split_loops(k, ivars, extents, body + writes)
        return k
    # the folded reduction
    axes = kern.reduce
    op, keep = red.op.name, red.attrs["keepdims"]
    ro, v, ridx = p.ro, p.v, p.ridx
    trailing = tuple(axes) == tuple(range(r - len(axes), r))
    if trailing:
        outer = [j for j in range(r) if j not in axes]
        inner = list(axes)
        k.parallel = bool(outer) and _parallel_ok(shape, k, extents) and not checks
        acc_lines = []
        _loops(acc_lines, [ivars[j] for j in inner], [extents[j] for j in inner],
               body + writes + [f"acc = {_combine(op, 'acc', v, red.dtype)}"], depth=1)
        block = [f"acc = {_identity(op, red.dtype)}"] + [ln[4:] for ln in acc_lines] + [f"{ro}[{ridx}] = acc"]
        if outer:
            _split_loops(k, [ivars[j] for j in outer], [extents[j] for j in outer], block)
        else:
            lines.extend("    " + b for b in block)
        return k
    # reduced axes not all trailing. The reduced axes after the last kept one accumulate in a local
    # (no store into the output inside the innermost loop, which LLVM cannot vectorize: conv's
    # ReLU-backward-and-bias-gradient over (0, 2, 3) ran at 1 GFLOP/s), added to the output once per
    # run of them; with axis 0 reduced, the first kept axis becomes the outer loop, on every thread
    # (each thread then writes outputs of its own). Else, as for a Linear's bias gradient (axis 0 of
    # (N, D)), the innermost kept axis runs along a row of the output, which vectorizes as it is.
    out_vars = [f"j{q}" for q in range(red.ndim)]
    out_ext = []
    for q in range(red.ndim):
        src_axis = q if keep else [j for j in range(r) if j not in axes][q]
        out_ext.append("1" if keep and src_axis in axes else extents[src_axis])
    init = []
    _loops(init, out_vars, out_ext, [f"{ro}[{k.index(out_vars, red.ndim)}] = {_identity(op, red.dtype)}"])
    lines.extend(init if red.ndim else [f"    {ro}[{k.ZERO_D}] = {_identity(op, red.dtype)}"])
    tail = r
    while tail > 0 and tail - 1 in axes:
        tail -= 1
    order = list(range(tail))
    kept = [j for j in order if j not in axes]
    if 0 in axes and kept and tail < r:
        order.remove(kept[0])
        order.insert(0, kept[0])
    k.parallel = r > 0 and order[:1] != [] and order[0] not in axes and _parallel_ok(shape) and not checks
    step = body + writes
    if tail < r:  # the reduced suffix into a local, then once into the output
        inner = []
        _loops(inner, ivars[tail:], extents[tail:], step + [f"acc = {_combine(op, 'acc', v, red.dtype)}"], depth=0)
        add = _combine(op, f"{ro}[{ridx}]", "acc")
        step = [f"acc = {_identity(op, red.dtype)}"] + inner + [f"{ro}[{ridx}] = {add}"]
    else:
        step = step + [f"{ro}[{ridx}] = {_combine(op, f'{ro}[{ridx}]', v)}"]
    if order:
        _loops(lines, [ivars[j] for j in order], [extents[j] for j in order], step, k.parallel)
    else:
        lines.extend("    " + b for b in step)
    return k


# ---------------------------------------------------------------- kernels of one primitive
def _out_loops(k, dims, node, body, parallel=True, split=False):
    """Loops over node's shape (vars i0..), parallel on the outer one when large: split over
    threads (pcall) when they are the kernel's only loops (split), else a prange."""
    return _space_loops(k, node.shape, shape_exprs(k, dims, node, "n"), body, parallel, split)


def _space_loops(k, shape, ext, body, parallel=True, split=False, work=1):
    """Loops (vars i0..) over an iteration space of this shape (None: a run-time dim) and these loop
    bounds, as _out_loops (work: as _parallel_ok's)."""
    ivars = [f"i{q}" for q in range(len(shape))]
    k.parallel = k.parallel or (parallel and _parallel_ok(shape, *((k, ext) if split else (None, None)), work))
    if not shape:
        k.lines.extend("    " + b for b in body)
    elif split:
        _split_loops(k, ivars, ext, body)
    else:
        _loops(k.lines, ivars, ext, body, parallel and _parallel_ok(shape))
    return ivars


def _fill(k, dims, node, out, value, name="f"):
    ivars = [f"{name}{q}" for q in range(node.ndim)]
    ext = shape_exprs(k, dims, node, f"m{name}")
    if node.ndim == 0:
        k.lines.append(f"    {out}[{k.ZERO_D}] = {value}")
    else:
        _loops(k.lines, ivars, ext, [f"{out}[{k.index(ivars, node.ndim)}] = {value}"])


def _norm_index(k, var, n, kern, pos, body):
    """NumPy's index rules: negative counts from the end, outside [-n, n) raises."""
    k.fallible = True
    body.append(f"if {var} < 0:")
    body.append(f"    {var} += {n}")
    body.append(f"if {var} < 0 or {var} >= {n}:")
    body.append(f'    raise IndexError("graphc:{kern.index}:{pos}: index out of range")')


def render_matmul(kern, dims):
    node = kern.nodes[0]
    k = KernelSource(kern)
    a, b = node.inputs
    A, B = k.array(a, "a0"), k.array(b, "a1")
    O = k.array(node, "o0")
    sa = (1,) + a.shape if a.ndim == 1 else a.shape
    sb = b.shape + (1,) if b.ndim == 1 else b.shape
    batch = tuple(node.shape[:len(node.shape) - (a.ndim > 1) - (b.ndim > 1)])
    nb_ = len(batch)
    sizes = [sa[-2] if a.ndim > 1 else 1, sa[-1], sb[-1] if b.ndim > 1 else 1]
    # only a small product known at compile time (a loop nest, no BLAS) keeps literal sizes: the
    # rest take every size as an argument, so a network's products share a few kernels
    big = 0 if None in sizes or math.prod(sizes) > SMALL_MATMUL else STATIC_MAX
    bext = [extent(k, dims, node, q, d, f"n{q}", big) for q, d in enumerate(batch)]
    n_ = extent(k, dims, a, a.ndim - 2, sa[-2], "rows", big) if a.ndim > 1 else "1"
    kk = extent(k, dims, a, a.ndim - 1, sa[-1], "inner", big)
    m_ = extent(k, dims, b, b.ndim - 1, sb[-1], "cols", big) if b.ndim > 1 else "1"

    def padded(s):
        # the operand's batch dims right-aligned to the output's, 1 where it broadcasts
        own = s[:-2]
        pad = nb_ - len(own)
        dims_ = []
        for q in range(nb_):
            if q < pad:
                dims_.append("1")
            else:
                d = own[q - pad]
                dims_.append("1" if d == 1 else bext[q])
        return dims_

    da, db = padded(sa), padded(sb)
    L = k.lines
    if nb_ or a.ndim != 2 or b.ndim != 2:  # a plain 2-D product takes its arrays as they are
        # an operand with all the batch dims is as it stands (and may be a strided view, which
        # numba does not reshape); the others get theirs, of size 1
        if a.ndim != nb_ + 2:
            L.append(f"    A = {A}.reshape(({', '.join(da + [n_, kk])},))")
            A = "A"
        if b.ndim != nb_ + 2:
            L.append(f"    B = {B}.reshape(({', '.join(db + [kk, m_])},))")
            B = "B"
        L.append(f"    O = {O}.reshape(({', '.join(bext + [n_, m_])},))")
        O = "O"
    jv = [f"j{q}" for q in range(nb_)]
    ia = [("0" if d == "1" else j) for d, j in zip(da, jv)]
    ib = [("0" if d == "1" else j) for d, j in zip(db, jv)]
    sub_a = f"{A}[{', '.join(ia)}]" if nb_ else A
    sub_b = f"{B}[{', '.join(ib)}]" if nb_ else B
    sub_o = f"{O}[{', '.join(jv)}]" if nb_ else O
    T = np_type(node.dtype)
    loops = [f"x = {sub_a}", f"y = {sub_b}", f"z = {sub_o}",
             f"for r in range({n_}):", f"    for c in range({m_}):", f"        s = {T}(0)",
             f"        for q in range({kk}):", f"            s += {T}(x[r, q]) * {T}(y[q, c])",
             "        z[r, c] = s"]
    if node.dtype.kind != "f":  # NumPy's integer matmul; BLAS has none
        body = loops
    else:
        blas = [f"gemm({sub_a}, {sub_b}, {sub_o})"]
        if sa[-1] is None:  # a product over an empty inner axis is zeros (gemm does nothing then)
            blas = [f"if {kk} == 0:", f"    z = {sub_o}", f"    for r in range({n_}):",
                    f"        for c in range({m_}):", "            z[r, c] = 0", "else:", "    " + blas[0]]
        rows, inner, cols = sizes
        if not nb_ and rows is not None and cols is not None and rows < cols and rows * cols <= 1 << 16 \
                and (inner is None or inner >= 8 * cols):
            # a small, wide output over a long inner axis (a convolution's weight gradient over
            # N*OH*OW): OpenBLAS computes the transposed product 1.4-1.6x faster at such shapes
            # ((32, 16384) @ (16384, 144): 2.4 against 1.7 ms), into a scratch read back transposed
            wide = [f"t = np.empty(({m_}, {n_}), np.{node.dtype.name})", f"gemm({B}.T, {A}.T, t)",
                    f"for r in range({n_}):", f"    for c in range({m_}):", f"        {O}[r, c] = t[c, r]"]
            blas = wide if inner is not None else \
                [f"if {kk} >= {8 * cols}:"] + ["    " + ln for ln in wide] + ["else:"] + ["    " + ln for ln in blas]
        # (A's rows and B's columns contiguous: B a transposed view, as G @ cols.T)
        if not nb_ and rows is not None and cols is not None and rows * cols <= DOT_OUT \
                and (inner is None or inner >= DOT_K) and b.op.name == "transpose" and a.op.name != "transpose":
            k.parallel = True
            k.fastmath = REASSOC
            dot = _dot_chunks(A, B, O, n_, kk, m_, rows, cols, node.dtype)
            blas = dot if inner is not None else \
                [f"if {kk} >= {DOT_K}:"] + ["    " + ln for ln in dot] + ["else:"] + ["    " + ln for ln in blas]
        if None not in sizes and math.prod(sizes) > SMALL_MATMUL:
            body = blas
        elif None not in sizes:  # a few hundred multiply-adds: a call into BLAS costs more
            body = loops
        else:  # decided per call
            body = [f"if {n_} * {kk} * {m_} <= {SMALL_MATMUL}:"] + ["    " + ln for ln in loops] + \
                ["else:"] + ["    " + ln for ln in blas]
    if nb_ and node.dtype.kind == "f" and None not in sizes and SMALL_MATMUL < math.prod(sizes) <= BLAS_ONE_THREAD \
            and batch[0] != 1:
        # each product on one thread inside BLAS: the batch's outer axis among the threads
        k.parallel = _parallel_ok(batch, k, bext, math.prod(sizes))
        _split_loops(k, jv, bext, body)
    elif nb_:
        _loops(L, jv, bext, body)
    else:
        L.extend("    " + ln for ln in body)
    return k


def _dot_chunks(A, B, O, n_, kk, m_, rows, cols, dtype) -> list[str]:
    """O = A @ B as rows x cols dot products of A's rows and B's columns, per chunk of DOT_CHUNK of
    the inner axis (a prange over the chunks), two rows by two columns at a time (each element
    read serves two products), the chunks' partial products then summed."""
    T = np_type(dtype)
    lines = [f"bt = {B}.T", f"nc = ({kk} + {DOT_CHUNK - 1}) // {DOT_CHUNK}",
             f"part = np.zeros((nc, {rows}, {cols}), np.{np.dtype(dtype).name})",
             "for ch in nb.prange(nc):", f"    k0 = ch * {DOT_CHUNK}", f"    k1 = min({kk}, k0 + {DOT_CHUNK})",
             "    w = k1 - k0"]

    def block(ri, ci):  # the products of rows ri and columns ci over the chunk
        sums = [(a, b, f"s{a}{b}") for a in range(len(ri)) for b in range(len(ci))]
        return [f"x{a} = {A}[{r}, k0:k1]" for a, r in enumerate(ri)] + \
            [f"y{b} = bt[{c}, k0:k1]" for b, c in enumerate(ci)] + [f"{s} = {T}(0)" for _, _, s in sums] + \
            ["for q in range(w):"] + [f"    {s} += x{a}[q] * y{b}[q]" for a, b, s in sums] + \
            [f"part[ch, {ri[a]}, {ci[b]}] = {s}" for a, b, s in sums]

    body = [f"for r in range(0, {rows - 1}, 2):", f"    for c in range(0, {cols - 1}, 2):"] + \
        ["        " + ln for ln in block(["r", "r + 1"], ["c", "c + 1"])]
    if cols % 2:
        body += ["    " + ln for ln in block(["r", "r + 1"], [str(cols - 1)])]
    if rows % 2:
        body += [f"for c in range({cols}):"] + ["    " + ln for ln in block([str(rows - 1)], ["c"])]
    lines += ["    " + ln for ln in body]
    return lines + [f"for r in range({rows}):", f"    for c in range({cols}):", f"        s = {T}(0)",
                    "        for ch in range(nc):", "            s += part[ch, r, c]", f"        {O}[r, c] = s"]


def _lse_lines(k, node, v, inner_vars, inner_ext, softmax=None, log_softmax=False) -> list[str]:
    """Lines giving `lse`, node's logsumexp of one row (element v over the inner loops): the max
    by llvm.maxnum (vectorized, NaN ignored), then, when that max is finite, the sum of exp(x - max)
    (vectorized: vmath's exp, a reassociated sum), where a NaN in the row makes the sum NaN; a row
    whose max is +-inf is that unless it holds a NaN. softmax (o, idx): also write exp(x - max) to
    o[idx] in the sum's pass and scale the row by 1/sum in a third pass, while it is in cache.
    log_softmax: give m and `ls` = log(sum) instead, each element being (x - m) - ls; a row whose
    max is not finite gets m = NaN (all NaN, as the formula gives)."""
    T = np_type(node.dtype)
    ex = "exp_f32" if node.dtype == np.float32 else "math.exp"
    if ex == "exp_f32":
        k.helpers.add("exp_f32")
    k.fastmath = REASSOC
    pass1, pass2, scan, scale = [], [], [], []
    _loops(pass1, inner_vars, inner_ext, [f"m = fmax(m, {v})"], depth=0)
    sums = [f"s += {ex}({v} - m)"] if softmax is None else \
        [f"e = {T}({ex}({v} - m))", f"{softmax[0]}[{softmax[1]}] = e", "s += e"]
    _loops(pass2, inner_vars, inner_ext, sums, depth=1)
    _loops(scan, inner_vars, inner_ext, [f"if {v} != {v}:", f"    lse = {v}"], depth=1)
    if softmax is not None:
        _loops(scale, inner_vars, inner_ext, [f"{softmax[0]}[{softmax[1]}] *= r"], depth=1)
        scale = [f"    r = {T}(1) / s"] + scale
    if log_softmax:
        return ([f"m = {T}(-np.inf)"] + pass1 +
                [f"if abs(m) < {T}(np.inf):", f"    s = {T}(0)"] + pass2 + [f"    ls = {T}(math.log(s))"] + scale +
                ["else:", f"    m = {T}(np.nan)", f"    ls = {T}(0)"])
    return ([f"m = {T}(-np.inf)"] + pass1 +
            [f"if abs(m) < {T}(np.inf):", f"    s = {T}(0)"] + pass2 + [f"    lse = m + {T}(math.log(s))"] + scale +
            ["else:", "    lse = m"] + scan)


def render_logsumexp(kern, dims):
    """Per output entry two passes over the reduced axes (_lse_lines)."""
    node = kern.nodes[0]
    k = KernelSource(kern)
    xn = node.inputs[0]
    x = k.array(xn, "a0")
    o = k.array(node, "o0")
    axes, keep = node.attrs["axes"], node.attrs["keepdims"]
    outer = [q for q in range(xn.ndim) if q not in axes]
    ext = {q: extent(k, dims, xn, q, d, f"n{q}") for q, d in enumerate(xn.shape)}
    iv = [f"i{q}" for q in range(xn.ndim)]
    v = convert(f"{x}[{k.index(iv, xn.ndim)}]", xn.dtype, node.dtype)
    dst = k.index(["0" if q in axes else iv[q] for q in range(xn.ndim)] if keep else [iv[q] for q in outer],
                node.ndim)
    block = _lse_lines(k, node, v, [iv[q] for q in axes], [ext[q] for q in axes]) + [f"{o}[{dst}] = lse"]
    k.parallel = bool(outer) and _parallel_ok(xn.shape, k, [ext[q] for q in range(xn.ndim)])
    _per_row(k, [iv[q] for q in outer], [ext[q] for q in outer], block)
    return k


def _row_map(kern, dims, stats, value, n_in: int = 1):
    """A row primitive of x's shape on its own: per row (the outer axes) the lines stats(k, node, v,
    inner vars, inner extents, *others) give, then each element's value(v, *others); v is x's
    element, others those of the node's further inputs (of x's shape)."""
    node = kern.nodes[0]
    k = KernelSource(kern)
    xn = node.inputs[0]
    o = k.array(node, "o0")
    axes = node.attrs["axes"]
    outer = [q for q in range(xn.ndim) if q not in axes]
    ext = {q: extent(k, dims, xn, q, d, f"n{q}") for q, d in enumerate(xn.shape)}
    iv = [f"i{q}" for q in range(xn.ndim)]
    at = k.index(iv, xn.ndim)
    v, *others = [f"{k.array(node.inputs[j], f'a{j}')}[{at}]" for j in range(n_in)]
    if xn.ndim >= 2:
        v = row_element(node, v, iv[-2], iv[-1])
    block = stats(k, node, v, [iv[q] for q in axes], [ext[q] for q in axes], *others)
    _loops(block, [iv[q] for q in axes], [ext[q] for q in axes], [f"{o}[{at}] = {value(v, *others)}"],
           depth=0)
    k.parallel = bool(outer) and _parallel_ok(xn.shape, k, [ext[q] for q in range(xn.ndim)])
    _per_row(k, [iv[q] for q in outer], [ext[q] for q in outer], block)
    return k


def render_log_softmax(kern, dims):
    """Per row the max and the sum of exp(x - max) (_lse_lines), then each element's
    (x - max) - log(sum)."""
    return _row_map(kern, dims, lambda k, node, v, iv, ie: _lse_lines(k, node, v, iv, ie, log_softmax=True),
                    lambda v: f"({v} - m) - ls")


def _norm_lines(k, node, v, inner_vars, inner_ext) -> list[str]:
    """Lines giving `m` (the row's mean, 0 when not centred) and `rs` = 1 / sqrt(var + eps) for
    normalize's row of element v: a pass for the sum, a pass for the squared deviations (both
    vectorized, reassociated sums)."""
    T = np_type(node.dtype)
    k.fastmath = REASSOC
    n = " * ".join(f"({e})" for e in inner_ext) or "1"
    lines = [f"cnt = {T}({n})"]
    if node.attrs["center"]:
        lines.append(f"s = {T}(0)")
        _loops(lines, inner_vars, inner_ext, [f"s += {v}"], depth=0)
        lines.append("m = s / cnt")
    else:
        lines.append(f"m = {T}(0)")
    lines.append(f"q = {T}(0)")
    _loops(lines, inner_vars, inner_ext, [f"d = {v} - m", "q += d * d"], depth=0)
    return lines + [f"rs = {T}(1) / {T}(math.sqrt(q / cnt + {literal(node.attrs['eps'], node.dtype)}))"]


def render_normalize(kern, dims):
    """Per row the mean and the variance (_norm_lines), then each element's (x - mean) * rs."""
    return _row_map(kern, dims, _norm_lines, lambda v: f"({v} - m) * rs")


def render_normalize_grad(kern, dims):
    """Per row x's mean and rs (_norm_lines), then the sums of g and of g * y, y = (x - mean) rs,
    then each element's rs (g - mean(g) - y mean(g y))."""
    def stats(k, node, v, iv, ie, gv):
        T = np_type(node.dtype)
        lines = _norm_lines(k, node, v, iv, ie) + [f"sg = {T}(0)", f"sgy = {T}(0)"]
        _loops(lines, iv, ie, [f"gg = {gv}", "sg += gg", f"sgy += gg * (({v}) - m) * rs"], depth=0)
        return lines + [("mg = sg / cnt" if node.attrs["center"] else f"mg = {T}(0)"), "mgy = sgy / cnt"]
    return _row_map(kern, dims, stats, lambda v, gv: f"rs * (({gv}) - mg - (({v}) - m) * rs * mgy)", n_in=2)


def _per_row(k, outer_vars, outer_ext, block):
    """block once per row: in loops over the outer axes (split over threads when k.parallel)."""
    if outer_vars:
        _split_loops(k, outer_vars, outer_ext, block)
    else:
        k.lines.extend("    " + b for b in block)


LOG_SOFTMAX = ("log_softmax", "causal_log_softmax")  # one value per element: (x - max) - log(sum)


def _softmax_epilogue(red, epi, outputs):
    """Whether the epilogue is exactly exp(x - logsumexp(x)) (or exp(log_softmax(x))) with only the
    exp leaving the kernel."""
    if red.op.name in LOG_SOFTMAX:
        return len(epi) == 1 and epi[0].op.name == "exp" and epi[0].inputs[0] is red and len(outputs) == 1 \
            and outputs[0] is epi[0]
    if len(epi) != 3 or [m.op.name for m in epi] != ["neg", "add", "exp"] or len(outputs) != 1 \
            or outputs[0] is not epi[2]:
        return False
    neg, add, ex = epi
    return (neg.inputs[0] is red and ex.inputs[0] is add and {id(i) for i in add.inputs} ==
            {id(red.inputs[0]), id(neg)} and red.inputs[0].dtype == red.dtype == ex.dtype)


def render_rows(kern, dims):
    """A row reduction (logsumexp over trailing axes) and the elementwise work reading it, per row:
    the reduction's passes, then the epilogue over the same row (still in L1/L2). Softmax,
    exp(x - logsumexp(x)), stores exp(x - max) in the sum's pass and scales it by 1/sum."""
    red, epi = row_split(kern.nodes)
    k = KernelSource(kern)
    xn = red.inputs[0]
    shape = kern.shape
    r = len(shape)
    axes = tuple(red.attrs["axes"])
    outer = [q for q in range(r) if q not in axes]
    extents = [extent(k, dims, xn, q, d, f"n{q}") for q, d in enumerate(shape)]
    iv = [f"i{q}" for q in range(r)]
    x = k.array(xn, "a0")
    v = convert(f"{x}[{k.index(iv, r)}]", xn.dtype, red.dtype)
    if r >= 2:
        v = row_element(red, v, iv[-2], iv[-1])
    ro = k.array(red, "o0") if any(o is red for o in kern.outputs) else None
    epi_outs = [m for m in kern.outputs if m is not red]
    inside = set(epi)
    sub_ins = tuple(dict.fromkeys(i for m in epi for i in reads(m) if i not in inside))
    sub = Kernel(kern.index, "loop", tuple(epi), sub_ins, tuple(epi_outs), shape)
    # log_softmax and normalize: one value per element of the row; logsumexp: one per row
    norm = red.op.name == "normalize"
    lsm = red.op.name in LOG_SOFTMAX or norm
    value = f"((({v}) - m) * rs)" if norm else f"((({v}) - m) - ls)" if lsm else "lse"
    p = loop_parts(sub, dims, k, fail=lambda _s, m, what: index_error(kern, m, what), prefix="e",
                   scalars={red: value}, extents=extents)
    inner_v, inner_e = [iv[q] for q in axes], [extents[q] for q in axes]
    epilogue = []
    own = [f"{ro}[{k.index(iv, r)}] = {value}"] if lsm and ro is not None else []
    _loops(epilogue, inner_v, inner_e, own + p.body + p.writes, depth=0)
    dst = k.index(["0" if q in axes else iv[q] for q in range(r)], r)
    write = [f"{ro}[{dst}] = lse"] if ro is not None and not lsm else []
    if norm:
        block = _norm_lines(k, red, v, inner_v, inner_e) + epilogue
    elif _softmax_epilogue(red, epi, epi_outs) and not own:
        lines = _lse_lines(k, red, v, inner_v, inner_e, softmax=(p.out_arrays[0], k.index(iv, r)), log_softmax=lsm)
        block = lines + ["    " + ln for ln in epilogue] + write  # the else branch: a +-inf max
    else:
        block = _lse_lines(k, red, v, inner_v, inner_e, log_softmax=lsm) + write + epilogue
    k.parallel = bool(outer) and _parallel_ok(shape, k, extents) and not p.checks
    _per_row(k, [iv[q] for q in outer], [extents[q] for q in outer], block)
    return k


class CpuTarget(movement.Target):
    """The CPU's hooks for the shared render rules: loops (split over the threads where they are the
    kernel's only loops), an IndexError, a plain +=."""

    name = "numba"

    def kernel(self, kern):
        return KernelSource(kern)

    def loops(self, k, extents, body, tag=""):
        _loops(k.lines, [f"i{q}" for q in range(len(extents))], extents, body)

    def over(self, k, dims, node, body, *, split=False, parallel=True):
        _out_loops(k, dims, node, body, parallel=parallel, split=split)

    def over_space(self, k, shape, extents, body, *, split=False, work=1):
        _space_loops(k, shape, extents, body, split=split, work=work)

    def fill(self, k, dims, node, out, value):
        _fill(k, dims, node, out, value)

    def check_index(self, k, var, n, pos, body):
        _norm_index(k, var, n, k.kernel, pos, body)

    def add_into(self, out, idx, value):
        return f"{out}[{', '.join(idx)}] += {value}"


CPU = CpuTarget()

RENDER = {
    "loop": render_loop, "matmul": render_matmul,
    "logsumexp": render_logsumexp, "log_softmax": render_log_softmax,
    "causal_log_softmax": render_log_softmax, "normalize": render_normalize,
    "normalize_grad": render_normalize_grad, "rows": render_rows,
    **movement.rules(lambda: CPU),
}


# ---------------------------------------------------------------- the module
HEADER = '''"""graphc generated module: {n_kernels} kernels and a driver for one compiled graph.

Each kernel is one @njit function; `driver` runs them all in order, so a call is one native call.
"""
import math

import numba as nb
import numpy as np
from numba import types as T

from graphc.backends.numba.intrinsics import (arena_view, fmax, gemm, ints, kcall, kernel, nonneg, pcall,
                                              permuted, radd, reshaped, transposed)

OPTS = dict(cache=True, error_model="numpy", fastmath={{"contract"}}, nogil=True)  # contract: a*b+c may be one FMA


@nb.njit(**OPTS)
def copy_into(dst, src):
    d = dst.reshape(dst.size)
    s = src.reshape(src.size)
    for i in range(d.size):
        d[i] = s[i]


@nb.njit(**OPTS)
def all_finite(a):
    f = a.reshape(a.size)
    for i in range(f.size):
        if not np.isfinite(f[i]):
            return False
    return True
'''


# emitted only into modules whose kernels draw random numbers (dropout)
RANDOM_HELPERS = '''

@nb.njit(inline="always", **OPTS)
def mix64(key, i):
    # graphc/ops/random.py: counter-based random bits, element i under key
    z = np.uint64(key) * np.uint64({key_mul}) + (np.uint64(i) + np.uint64(1)) * np.uint64({idx_mul})
    z = (z ^ (z >> np.uint64(33))) * np.uint64({fmix1})
    z = (z ^ (z >> np.uint64(33))) * np.uint64({fmix2})
    return z ^ (z >> np.uint64(33))


@nb.njit(inline="always", **OPTS)
def uniform_float32(key, i):
    return np.float32(mix64(key, i) >> np.uint64(40)) * np.float32(2.0 ** -24)


@nb.njit(inline="always", **OPTS)
def uniform_float64(key, i):
    return np.float64(mix64(key, i) >> np.uint64(11)) * 2.0 ** -53
'''


class DriverNames:
    """The driver's names, the same for every backend: arrays it takes (v<k>, in the order of
    `args`) and views it makes (w<k>); `views` maps a view to (its source node, target shape).
    TRANSPOSE and RESHAPE: how the backend's driver writes a view."""

    TRANSPOSE = "{src}.T"
    PERMUTE = "{src}.transpose({perm})"
    RESHAPE = "{src}.reshape({shape})"

    def __init__(self, inputs):
        self.names: dict = {}
        self.args: list = []
        self.views: dict = {}
        for p in inputs:
            self(p)

    def __call__(self, node) -> str:
        """node's name, taking it as a driver argument the first time it is asked for."""
        if node not in self.names:
            self.names[node] = f"v{len(self.names)}"
            self.args.append(node)
        return self.names[node]

    def view(self, node, dims, zero_d: str = "") -> str:
        """The driver line making view `node` of its input: `.T` for a transposed view (read by
        matmuls as a strided array), else a reshape; zero_d: the shape a 0-d target gets there."""
        src = self(node.inputs[0])
        name = self.names[node] = f"w{len(self.names)}"
        if node.op.name == "transpose":
            self.views[node] = (node.inputs[0], None)
            perm = tuple(node.attrs["perm"])
            if perm == swap_last_two(node.ndim):
                return f"    {name} = {self.TRANSPOSE.format(src=src)}"
            return f"    {name} = {self.PERMUTE.format(src=src, perm=', '.join(map(str, perm)))}"
        target = driver_shape(node, dims)
        self.views[node] = (node.inputs[0], target)
        return f"    {name} = {self.RESHAPE.format(src=src, shape=tuple_text(target or ([zero_d] if zero_d else [])))}"


class NumbaNames(DriverNames):
    """The numba driver's views: arrays with no reference count (intrinsics/views.py)."""

    TRANSPOSE = "transposed({src})"
    PERMUTE = "permuted({src}, {perm})"
    RESHAPE = "reshaped({src}, {shape})"


def driver_shape(node, dims) -> list[str]:
    """node's shape as driver expressions: literals, and dims[k] for sizes known at run time."""
    return [str(d) if d is not None else dims.add(lambda s, n=node, q=q: s[n][q]) for q, d in enumerate(node.shape)]


def tuple_text(items) -> str:
    """A tuple literal of these expressions: (), (a,), (a, b)."""
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


def driver_tail(program, views, name_of, copy, snapshot, inplace=()):
    """The end of a driver, the same for every backend: outputs no kernel wrote (a parameter, a
    feed, a view) are copied out first, then the parameter updates are copied in, a value that lives
    in a parameter being overwritten snapshotted before. name_of(node): its name in the driver;
    copy(dst, src) -> a line; snapshot(name, src) -> lines; inplace: update values a kernel wrote
    into their parameter already. Returns (copied outputs, lines)."""
    def storage(n):
        while n in views:
            n = views[n][0]
        return n

    copies = list(dict.fromkeys(o for o in program.outputs if o.is_leaf or o in views))
    for o in program.outputs:
        name_of(o)
    lines = [copy(f"r{j}", name_of(o)) for j, o in enumerate(copies)]
    updated = {p for p, _ in program.updates}
    snaps = {}
    for p, u in program.updates:
        s = storage(u)
        if s is not p and s in updated:
            snaps[u] = f"t{len(snaps)}"
            lines += snapshot(snaps[u], name_of(u))
    for p, u in program.updates:
        if storage(u) is p or u in inplace:
            continue
        src = snaps.get(u) or name_of(u)
        lines.append(copy(name_of(p), src))
    return copies, lines


class Module:
    """The rendered module and what the executable needs to call it."""

    def __init__(self, source, args, dims, kernels, sources, views, copies, work=(), arenas=(), inplace=None,
                 called=()):
        self.source = source
        self.args = args          # driver's array arguments, as nodes, in order
        self.work = list(work)    # values in workspaces: work[i]'s offset into its arena follows dims.specs in dims
        self.arenas = list(arenas)  # dtype names, one flat array each, after the args and copies
        self.inplace = inplace or {}  # update value -> the parameter its kernel writes (no copy)
        self.called = list(called)  # kernel function names; the driver's i-th call runs called[i]
        self.copies = copies      # outputs no kernel computes (leaves, views): fresh arrays after args
        self.dims = dims          # Dims: run-time ints
        self.kernels = kernels    # schedule Kernels
        self.sources = sources    # KernelSource per kernel (None for views)
        self.views = views        # node -> (source node, target shape expressions)


def inplace_updates(program, kernels, sources, check_numerics: bool = False) -> dict:
    """{update value: its parameter} for the updates whose kernel may write the new value straight
    into the parameter instead of a workspace copied in at the end (for Adam, three copies of every
    weight per step). Only where nothing can tell: an elementwise kernel of the parameter's shape
    that reads the parameter at the element it writes, nothing after it reading the old value (no
    kernel, output or other update), the value fetched by no one else, and no kernel from there on
    able to fail (an index check, check_numerics), so a failed call still changes no parameter."""
    if check_numerics:
        return {}
    views = {k.nodes[0]: k.nodes[0].inputs[0] for k in kernels if k.kind == "view"}

    def storage(n):
        while n in views:
            n = views[n]
        return n

    last_read = {}
    for k in kernels:
        if k.kind != "view":
            for i in k.inputs:
                last_read[storage(i)] = k.index
    fallible = max((k.index for k, ks in zip(kernels, sources)
                    if ks is not None and ks.fallible), default=-1)
    made_by = {n: k for k in kernels if k.kind != "view" for n in k.outputs}
    fetched = {storage(o) for o in program.outputs} | set(program.outputs)
    uses = {}
    for _, u in program.updates:
        uses[storage(u)] = uses.get(storage(u), 0) + 1
    out = {}
    for p, u in program.updates:
        k = made_by.get(u)
        if (k is None or k.kind != "loop" or k.reduce is not None or k.index <= fallible
                or uses[u] != 1 or u in fetched or p in fetched or p in uses
                or u.dtype != p.dtype or tuple(u.shape) != tuple(k.shape) or tuple(p.shape) != tuple(k.shape)
                or not any(i is p for i in k.inputs) or any(storage(i) is p and i is not p for i in k.inputs)
                or last_read.get(p, -1) > k.index):
            continue
        out[u] = p
    return out


def render_rule(rules: dict, kern: Kernel, backend: str):
    """The backend's render rule for this kernel's kind, or a CompileError naming the op."""
    rule = rules.get(kern.kind)
    if rule is None:
        node = kern.nodes[-1]
        raise CompileError(f"the {backend} backend has no kernel for {node.op.name} ({node.label}, kind "
                           f"{kern.kind!r}); compile it with backend='numpy'", node.loc)
    return rule


DRIVER_PART = 80  # statements per part of a long driver


def _driver_chunks(body) -> list[tuple[list[str], set]]:
    """The driver's statements cut into parts of at most DRIVER_PART: per part (lines, names), its
    lines beginning with the definitions (views) it reads, theirs included, in the driver's order,
    and every name those lines read (a part takes only those parameters: numba's cost of a function
    grows with its parameters, ~15 ms each, as much as with its statements); one part (the lines as
    they are) when the driver is short."""
    stmts = [b for b in body if b[2] is None]
    if len(stmts) <= DRIVER_PART:
        return [([line for line, _, _ in body], set().union(*(uses for _, uses, _ in body)))]
    defs = {d: (line, uses) for line, uses, d in body if d is not None}
    order = {d: i for i, (_, _, d) in enumerate(body) if d is not None}
    chunks = []
    for start in range(0, len(stmts), DRIVER_PART):
        part = stmts[start:start + DRIVER_PART]
        need, stack = set(), [u for _, uses, _ in part for u in uses]
        read = set(stack)
        while stack:
            u = stack.pop()
            if u in defs and u not in need:
                need.add(u)
                stack.extend(defs[u][1])
                read |= defs[u][1]
        chunks.append(([defs[d][0] for d in sorted(need, key=order.get)] + [line for line, _, _ in part], read))
    return chunks


def render_module(program, kernels, check_numerics: bool = False) -> Module:
    dims = Dims()

    def render(kern):
        return None if kern.kind == "view" else render_rule(RENDER, kern, "numba")(kern, dims)
    sources = [render(kern) for kern in kernels]
    # which updates a kernel may write into their parameter is known once every kernel says whether
    # it can fail; those kernels are rendered again, with one argument for the two: given two
    # arguments that are one array, LLVM checks at run time whether they overlap before running the
    # vectorized loop; they do, so it ran the scalar one (Adam's update of a 784x512 weight: 1.8
    # against 0.3 ms). One array read and written at the same element it vectorizes as it stands.
    inplace = inplace_updates(program, kernels, sources, check_numerics)
    made_by = {n: kern for kern in kernels if kern.kind != "view" for n in kern.outputs}
    for u, p in inplace.items():
        made_by[u].writes_into[u] = p
    sources = [render(kern) if kern.writes_into else ks for kern, ks in zip(kernels, sources)]
    name = NumbaNames(program.inputs)
    names, args, views = name.names, name.args, name.views
    for u, p in inplace.items():  # the kernel writing u writes the parameter itself
        names[u] = name(p)
    # body: (line, names it reads, name it defines or None); definitions are the driver's views
    body, defs, called = [], [], []  # called: the function each kernel call runs, in order
    defined = {}  # a kernel function's text (signature, options, body) -> its name
    for kern, ks in zip(kernels, sources):
        if ks is None:
            src = name(kern.nodes[0].inputs[0])
            line = name.view(kern.nodes[0], dims)
            body.append((line, {src}, names[kern.nodes[0]]))
            continue
        call_args = [name(n) for n in ks.arrays] + [expr for _, expr in ks.ints]
        # transposed views are column-major arrays in the kernels that read them
        split = ks.split is not None  # run on every thread over pieces [lo, hi) of its outer loop
        sig = ", ".join([arr_type(n.dtype, n.ndim, ("F" if n.ndim == 2 else "A") if views.get(n, (0, 0))[1] is None
                                  else "C")
                         for n in ks.arrays]
                        + ["T.int64"] * (len(ks.ints) + 2 * split))
        params = ", ".join(ks.arg_names + [name for name, _ in ks.ints] + ["lo", "hi"] * split)
        # flags written in a fixed order: the source (and so the cache key) must not vary by process
        flags = "{" + ", ".join(repr(f) for f in sorted(ks.fastmath or ())) + "}"
        opts = "**OPTS" if ks.fastmath is None else f"**{{**OPTS, 'fastmath': {flags}}}"
        # parallel=True only for the kernels that still use prange (loops not split: unslice, scatter...)
        # @kernel: compiled once the module is loaded, maybe by another process (cache.compile_module)
        deco = f"\n\n@kernel(nb.void({sig}), parallel={ks.parallel and not split}, {opts})\n"
        text = f"({params}):\n    # {' '.join(kern.ops)}\n" + "\n".join(ks.lines or ["    pass"])
        fn = defined.get(deco + text)
        if fn is None:  # a kernel like an earlier one but for its sizes calls that one's function
            fn = defined[deco + text] = kern.name
            defs.append(f"{deco}def {fn}{text}")
        uses = {name(n) for n in ks.arrays}
        if split:
            ints = dict(ks.ints)
            extent = ints.get(ks.split, ks.split)
            # sized at run time: on every thread only when large enough (decided in pcall: a
            # branch here per kernel makes the driver's compile time explode)
            threads = "True" if ks.size is None else \
                " * ".join(ints.get(e, e) for e in ks.size) + f" >= {PARALLEL_MIN}"
            line = f"    pcall({fn}, fns[{len(called)}], {extent}, {threads}, {', '.join(call_args)})"
        else:
            line = f"    kcall({fn}, fns[{len(called)}], {', '.join(call_args)})"
        called.append(fn)
        if check_numerics:
            for n in kern.outputs:
                if n.dtype.kind == "f":
                    line += (f"\n    if not all_finite({names[n]}):\n        raise FloatingPointError("
                             f'"graphc:{kern.index}:{kern.position(n)}: NaN or inf")')
        body.append((line, uses, None))
    read = set()

    def name_in_tail(n):
        read.add(name(n))
        return name(n)
    copies, tail = driver_tail(program, views, name_in_tail, lambda d, src: f"    copy_into({d}, {src})",
                               lambda t, src: [f"    {t} = {src}.copy()"], inplace)
    if tail:
        body.append(("\n".join(tail), read | {f"r{j}" for j in range(len(copies))}, None))
    # every value that is neither fed, a parameter, a constant nor a returned output lives in one
    # flat arena per dtype, laid out by the plan: views of it made here cost nothing per call
    fresh = set(fresh_outputs(program))
    work = [n for n in args if not n.is_leaf and n not in fresh]
    args = [n for n in args if n.is_leaf or n in fresh]
    arenas = list(dict.fromkeys(np.dtype(n.dtype).name for n in work))
    made = [(n, driver_shape(n, dims)) for n in work]
    base = len(dims.specs)
    body[:0] = [(f"    {names[n]} = arena_view(ws_{np.dtype(n.dtype).name}, dims[{base + i}], {tuple_text(shape)})",
                 {f"ws_{np.dtype(n.dtype).name}"}, names[n]) for i, (n, shape) in enumerate(made)]
    # the driver's parameters, in order, with their numba types
    ptypes = dict([(names[n], arr_type(n.dtype, n.ndim)) for n in args] +
                  [(f"r{j}", arr_type(n.dtype, n.ndim)) for j, n in enumerate(copies)] +
                  [(f"ws_{a}", arr_type(a, 1)) for a in arenas] + [("sizes", 'T.Array(T.int64, 1, "C")'),
                                                                   ("addresses", 'T.Array(T.int64, 1, "C")')])
    every = list(ptypes)
    chunks = _driver_chunks(body)
    parts = [] if len(chunks) == 1 else [f"driver_p{j}" for j in range(len(chunks))]
    n_fns = len(called) + len(parts)
    # the run-time sizes and the kernels' addresses as tuples: a constant index into a tuple is
    # one extract when compiled, where each getitem on an array compiles NumPy's indexing again
    head = [f"    dims = ints(sizes, {base + len(made)})", f"    fns = ints(addresses, {n_fns})"]

    def function(fn, lines, params, entry=False):
        sig = ", ".join(ptypes[q] for q in params)
        deco = f"@kernel(nb.void({sig}), {'entry=True, ' if entry else ''}**OPTS)"
        return f"\n\n{deco}\ndef {fn}({', '.join(params)}):\n" + "\n".join(lines or ["    pass"]) + "\n"
    if not parts:
        driver = function("driver", head + [line for line, _, _ in body], every, entry=True)
    else:
        # numba's compile time of one function grows much faster than its length (a driver of 2159
        # lines took 110 s, one of 1099 lines 15 s): a long driver is cut into parts of at most
        # DRIVER_PART statements, each making the views it reads, called in order through kcall
        # with the parameters it reads
        own = [[q for q in every if q in read or q in ("sizes", "addresses")] for _, read in chunks]
        driver = "".join(function(fn, head + lines, ps) for fn, (lines, _), ps in zip(parts, chunks, own))
        driver += function("driver", [f"    fns = ints(addresses, {n_fns})"] +
                           [f"    kcall({fn}, fns[{len(called) + j}], {', '.join(ps)})"
                            for j, (fn, ps) in enumerate(zip(parts, own))], every, entry=True)
        called = called + parts
    source = HEADER.format(n_kernels=len([k for k in kernels if k.kind != "view"]))
    if any(m.op.kind == "random" for kern in kernels for m in kern.nodes):
        source += RANDOM_HELPERS.format(key_mul=hex(rnd.KEY_MUL), idx_mul=hex(rnd.IDX_MUL), fmix1=hex(rnd.FMIX1),
                                        fmix2=hex(rnd.FMIX2))
    helpers = set().union(*(ks.helpers for ks in sources if ks is not None))
    if helpers:
        source += "\n\n" + vmath.IMPORT + vmath.source_of(helpers)
    source += "".join(defs) + driver
    return Module(source, args, dims, kernels, sources, views, copies, work, arenas, inplace, called)

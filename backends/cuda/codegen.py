"""Render a schedule as one CUDA module: @cuda.jit kernels, a host function per schedule kernel
that launches them, and a host driver that runs them all in order on the default stream.

The schedule, the buffer plan and each fused kernel's body (loads, the ops' own templates, writes)
are the CPU backend's (backends/numba/codegen.py: loop_parts); what differs is data: a flat thread
index unravelled to the loop variables and a bounds guard instead of nested (p)range loops, a
block per output for reductions (a strided loop, then a tree in shared memory), a tiled
shared-memory matmul, an error word on the device instead of exceptions, and launch
configurations. Nothing here imports numba.cuda: the generated module does.
"""
from __future__ import annotations

import os

from graphc.ops import random as rnd
from graphc.schedule import Kernel

from ..common import movement
from ..common.source import (
    Dims,
    KernelSource,
    convert,
    extent,
    literal,
    np_type,
    row_element,
    shape_exprs,
)
from ..numba.codegen import DriverNames, _combine, _identity, arr_type, driver_tail, loop_parts, render_rule


def simulated() -> bool:
    """Whether numba's CUDA simulator runs the kernels (CI): smaller blocks keep it fast."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


class Config:
    """Launch sizes. Under the simulator every thread is a Python thread, so blocks are small."""

    def __init__(self, sim: bool):
        self.sim = sim
        self.tpb = 32 if sim else 256        # threads per block of elementwise kernels
        self.red = 8 if sim else 128         # threads per output of reductions (a power of two)
        self.tile = 4 if sim else 16         # matmul tile edge


def shared(cfg: Config, decls) -> list[str]:
    """Lines declaring shared arrays (name, shape, dtype). The simulator makes a shared array on
    the first thread's call without a lock, so two threads may get different arrays: there each
    thread asks twice, across a barrier, and all get the one that was kept."""
    lines = [f"{name} = cuda.shared.array({shape}, {dtype})" for name, shape, dtype in decls]
    if not cfg.sim:
        return ["    " + ln for ln in lines]
    return ["    for _ in range(2):"] + ["        " + ln for ln in lines] + ["        cuda.syncthreads()"]


# error word codes: kind << 40 | kernel << 20 | position + 1 (0: no error)
INDEX, NUMERICS = 1, 2


def error_code(kind, kern, pos) -> int:
    return (kind << 40) | (kern << 20) | (pos + 1)


def decode(code: int):
    """(kind, kernel index, position) of an error word."""
    return code >> 40, (code >> 20) & 0xFFFFF, (code & 0xFFFFF) - 1


class Launch:
    """One @cuda.jit function and how the host launches it."""

    def __init__(self, name, lines, grid, block, guard=True, grid3=False):
        self.name, self.lines, self.grid, self.block, self.guard = name, lines, grid, block, guard
        self.grid3 = grid3  # grid is a tuple of three extents (matmul)


class CudaKernel(KernelSource):
    """A schedule kernel on the GPU: its arrays and ints (as on the CPU) and its launches."""

    ZERO_D = "0"  # 0-d values live in one-element arrays on the device (the simulator cannot read a[()])

    def __init__(self, kernel: Kernel, cfg: Config):
        super().__init__(kernel)
        self.cfg = cfg
        self.launches: list[Launch] = []

    def host(self, token: str) -> str:
        """A kernel-side extent (literal or int argument) as the driver computes it."""
        for name, expr in self.ints:
            if name == token:
                return expr
        return token

    def total(self, extents) -> str:
        return " * ".join(f"({self.host(e)})" for e in extents) if extents else "1"

    def elementwise(self, suffix, extents, body, pre=()):
        """One thread per element of extents (row-major), loop variables i0.. unravelled from it."""
        lines = list(pre)
        r = len(extents)
        lines.append("    t = cuda.grid(1)")
        if r == 0:
            lines += ["    if t != 0:", "        return"]
        else:
            lines += [f"    if t >= {' * '.join(extents)}:", "        return"]
            for j in range(r - 1, 0, -1):
                lines += [f"    i{j} = t % {extents[j]}", f"    t //= {extents[j]}"]
            lines.append("    i0 = t")
        lines += ["    " + b for b in body]
        total = self.total(extents)
        self.launches.append(Launch(f"{self.kernel.name}{suffix}", lines,
                                    f"blocks({total}, {self.cfg.tpb})", str(self.cfg.tpb)))


def _fail(kern, m, what) -> str:
    return f"fail(err, {error_code(INDEX, kern.index, kern.position(m))})"


def _check_index(k: CudaKernel, var, n, pos, body):
    """NumPy's index rules: negative counts from the end; outside [-n, n) sets the error word and
    reads element 0 instead (the call then fails and its updates are skipped)."""
    k.fallible = True
    body += [f"if {var} < 0:", f"    {var} += {n}", f"if {var} < 0 or {var} >= {n}:",
             f"    fail(err, {error_code(INDEX, k.kernel.index, pos)})", f"    {var} = 0"]


# ---------------------------------------------------------------- fused loops
def render_loop(kern: Kernel, dims: Dims, cfg: Config) -> CudaKernel:
    k = CudaKernel(kern, cfg)
    p = loop_parts(kern, dims, k, vector_math=False, fail=_fail)
    pre, k.lines = k.lines, []  # reads of one value for all elements: at the kernel's top
    if p.red is None:
        k.elementwise("", p.extents, p.body + p.writes, pre)
        return k
    red = p.red
    r = len(kern.shape)
    axes = kern.reduce
    outer = [j for j in range(r) if j not in axes]
    op = red.op.name
    T = np_type(red.dtype)
    B = cfg.red
    lines = list(pre)
    lines.append("    b = cuda.blockIdx.x")
    for q in range(len(outer) - 1, 0, -1):
        lines += [f"    i{outer[q]} = b % {p.extents[outer[q]]}", f"    b //= {p.extents[outer[q]]}"]
    if outer:
        lines.append(f"    i{outer[0]} = b")
    rtotal = " * ".join(p.extents[j] for j in axes) or "1"
    lines += ["    tid = cuda.threadIdx.x", f"    acc = {_identity(op, red.dtype)}", "    s = tid",
              f"    while s < {rtotal}:", "        t = s"]
    for q in range(len(axes) - 1, 0, -1):
        lines += [f"        i{axes[q]} = t % {p.extents[axes[q]]}", f"        t //= {p.extents[axes[q]]}"]
    if axes:  # a reduction over no axes (the mean of a scalar) reads its one element
        lines.append(f"        i{axes[0]} = t")
    lines += ["        " + b for b in p.body + p.writes + [f"acc = {_combine(op, 'acc', p.v)}"]]
    lines.append(f"        s += {B}")
    # the block's partial results combined as a tree in shared memory
    lines += shared(cfg, [("sh", B, T)])
    lines += ["    sh[tid] = acc", "    cuda.syncthreads()",
              f"    h = {B // 2}", "    while h > 0:", "        if tid < h:",
              f"            sh[tid] = {_combine(op, 'sh[tid]', 'sh[tid + h]')}", "        cuda.syncthreads()",
              "        h //= 2", "    if tid == 0:", f"        {p.ro}[{p.ridx}] = sh[0]"]
    blocks = k.total([p.extents[j] for j in outer])
    # a kernel that may set the error word itself reads it unevenly: no early return before a barrier
    k.launches.append(Launch(kern.name, lines, blocks, str(B), guard=not k.fallible))
    return k


# ---------------------------------------------------------------- one primitive each
def _out_grid(k, dims, node, body, suffix="", prefix="n"):
    k.elementwise(suffix, shape_exprs(k, dims, node, prefix), body)


def _fill(k, dims, node, out, value):
    iv = [f"i{q}" for q in range(node.ndim)]
    _out_grid(k, dims, node, [f"{out}[{k.index(iv, node.ndim)}] = {value}"], "_fill", "m")


def render_matmul(kern, dims, cfg):
    """Tiled: each block computes a tile x tile piece of the output from tiles of A and B staged in
    shared memory; batch dims (broadcast as NumPy's matmul) run along the grid's z."""
    node = kern.nodes[0]
    k = CudaKernel(kern, cfg)
    a, b = node.inputs
    A, B = k.array(a, "a0"), k.array(b, "a1")
    O = k.array(node, "o0")
    nb_ = node.ndim - (a.ndim > 1) - (b.ndim > 1)
    ext = shape_exprs(k, dims, node, "n")
    bext = ext[:nb_]
    rows = extent(k, dims, a, a.ndim - 2, a.shape[-2], "rows") if a.ndim > 1 else "1"
    inner = extent(k, dims, a, a.ndim - 1, a.shape[-1], "inner")
    cols = extent(k, dims, b, b.ndim - 1, b.shape[-1], "cols") if b.ndim > 1 else "1"
    TL = cfg.tile
    T = np_type(node.dtype)
    jv = [f"j{q}" for q in range(nb_)]

    def batch_index(x):
        own = x.shape[:-2] if x.ndim > 2 else ()
        pad = nb_ - len(own)
        return ["0" if d == 1 else jv[pad + q] for q, d in enumerate(own)]

    ia = batch_index(a) + (["row"] if a.ndim > 1 else [])
    ib = batch_index(b)
    L = ["    tx = cuda.threadIdx.x", "    ty = cuda.threadIdx.y",
         f"    col = cuda.blockIdx.x * {TL} + tx", f"    row = cuda.blockIdx.y * {TL} + ty", "    z = cuda.blockIdx.z"]
    for q in range(nb_ - 1, 0, -1):
        L += [f"    j{q} = z % {bext[q]}", f"    z //= {bext[q]}"]
    if nb_:
        L.append("    j0 = z")
    L += shared(cfg, [("sa", f"({TL}, {TL})", T), ("sb", f"({TL}, {TL})", T)])
    L += [f"    acc = {T}(0)", f"    for t0 in range(0, {inner}, {TL}):",
          "        qa = t0 + tx", f"        if row < {rows} and qa < {inner}:",
          f"            sa[ty, tx] = {A}[{', '.join(ia + ['qa'])}]", "        else:",
          f"            sa[ty, tx] = {T}(0)",
          "        qb = t0 + ty", f"        if qb < {inner} and col < {cols}:",
          f"            sb[ty, tx] = {B}[{', '.join(ib + ['qb'] + (['col'] if b.ndim > 1 else []))}]",
          "        else:", f"            sb[ty, tx] = {T}(0)", "        cuda.syncthreads()",
          f"        for q in range({TL}):", "            acc += sa[ty, q] * sb[q, tx]", "        cuda.syncthreads()",
          f"    if row < {rows} and col < {cols}:",
          f"        {O}[{k.index(jv + (['row'] if a.ndim > 1 else []) + (['col'] if b.ndim > 1 else []), node.ndim)}]"
          " = acc"]
    grid = f"(blocks({k.host(cols)}, {TL}), blocks({k.host(rows)}, {TL}), {k.total(bext)})"
    k.launches.append(Launch(kern.name, L, grid, f"({TL}, {TL})", grid3=True))
    return k


def _nest(axes, var, ext, inner) -> list[str]:
    """inner lines inside one for-loop per reduced axis (loop variable var[q], extent ext[q])."""
    lines, pad = [], ""
    for q in axes:
        lines.append(f"{pad}for {var[q]} in range({ext[q]}):")
        pad += "    "
    return lines + [pad + s for s in inner]


def render_logsumexp(kern, dims, cfg):
    """A thread per output entry: the max (and whether a NaN is there), then the sum of exp(x - max)."""
    node = kern.nodes[0]
    k = CudaKernel(kern, cfg)
    xn = node.inputs[0]
    x = k.array(xn, "a0")
    o = k.array(node, "o0")
    axes, keep = node.attrs["axes"], node.attrs["keepdims"]
    T = np_type(node.dtype)
    outer = [q for q in range(xn.ndim) if q not in axes]
    ext = {q: extent(k, dims, xn, q, d, f"n{q}") for q, d in enumerate(xn.shape)}
    # loop variables: outer axes are the thread's i0.., reduced axes r<axis>
    var = {q: (f"i{outer.index(q)}" if q in outer else f"r{q}") for q in range(xn.ndim)}
    v = convert(f"{x}[{k.index([var[q] for q in range(xn.ndim)], xn.ndim)}]", xn.dtype, node.dtype)

    def nest(inner):
        return _nest(axes, var, ext, inner)

    dst = k.index(["0" if q in axes else var[q] for q in range(xn.ndim)] if keep else [var[q] for q in outer],
                node.ndim)
    body = ([f"m = {T}(-np.inf)", "bad = False"] + nest([f"v = {v}", "bad = bad or v != v", "m = v if v > m else m"]) +
            ["if bad:", f"    {o}[{dst}] = {T}(np.nan)", "elif m == np.inf or m == -np.inf:", f"    {o}[{dst}] = m",
             "else:", f"    s = {T}(0)"] + ["    " + s for s in nest([f"s += math.exp({v} - m)"])] +
            [f"    {o}[{dst}] = m + {T}(math.log(s))"])
    k.elementwise("", [ext[q] for q in outer], body)
    return k


def _row_map(kern, dims, cfg, stats, value, n_in: int = 1):
    """A row primitive of x's shape: a thread per row runs the lines stats(node, T, x[at], nest,
    count, *others) give, then writes each element's value(x[at], *others) (others: the elements of
    the node's further inputs, of x's shape)."""
    node = kern.nodes[0]
    k = CudaKernel(kern, cfg)
    xn = node.inputs[0]
    arrays = [k.array(node.inputs[j], f"a{j}") for j in range(n_in)]
    o = k.array(node, "o0")
    axes = node.attrs["axes"]
    T = np_type(node.dtype)
    outer = [q for q in range(xn.ndim) if q not in axes]
    ext = {q: extent(k, dims, xn, q, d, f"n{q}") for q, d in enumerate(xn.shape)}
    var = {q: (f"i{outer.index(q)}" if q in outer else f"r{q}") for q in range(xn.ndim)}
    at = k.index([var[q] for q in range(xn.ndim)], xn.ndim)

    def nest(inner):
        return _nest(axes, var, ext, inner)

    xa, *others = [f"{a}[{at}]" for a in arrays]
    if xn.ndim >= 2:
        xa = row_element(node, xa, var[xn.ndim - 2], var[xn.ndim - 1])
    body = stats(node, T, xa, nest, " * ".join(f"({ext[q]})" for q in axes), *others) + \
        nest([f"{o}[{at}] = {value(xa, *others)}"])
    k.elementwise("", [ext[q] for q in outer], body)
    return k


def render_log_softmax(kern, dims, cfg):
    """A thread per row: the max (a NaN or a +-inf max makes the row NaN), the sum of exp(x - max),
    then each element's (x - max) - log(sum)."""
    def stats(node, T, xa, nest, cnt):
        return ([f"m = {T}(-np.inf)", "bad = False"]
                + nest([f"v = {xa}", "bad = bad or v != v", "m = v if v > m else m"])
                + ["if bad or m == np.inf or m == -np.inf:", f"    m = {T}(np.nan)", f"    ls = {T}(0)", "else:",
                   f"    s = {T}(0)"] + ["    " + ln for ln in nest([f"s += math.exp({xa} - m)"])]
                + [f"    ls = {T}(math.log(s))"])
    return _row_map(kern, dims, cfg, stats, lambda xa: f"({xa} - m) - ls")


def render_normalize(kern, dims, cfg):
    """A thread per row: the mean (0 when not centred), the variance of the deviations, then each
    element's (x - mean) / sqrt(var + eps)."""
    def stats(node, T, xa, nest, cnt):
        mean = ([f"s = {T}(0)"] + nest([f"s += {xa}"]) + [f"m = s / {T}({cnt})"]) if node.attrs["center"] \
            else [f"m = {T}(0)"]
        return (mean + [f"q = {T}(0)"] + nest([f"d = {xa} - m", "q += d * d"])
                + [f"rs = {T}(1) / {T}(math.sqrt(q / {T}({cnt}) + {literal(node.attrs['eps'], node.dtype)}))"])
    return _row_map(kern, dims, cfg, stats, lambda xa: f"({xa} - m) * rs")


def render_normalize_grad(kern, dims, cfg):
    """A thread per row: x's mean and rs, the sums of g and of g * y, y = (x - mean) rs, then each
    element's rs (g - mean(g) - y mean(g y))."""
    def stats(node, T, xa, nest, cnt, ga):
        mean = ([f"s = {T}(0)"] + nest([f"s += {xa}"]) + [f"m = s / {T}({cnt})"]) if node.attrs["center"] \
            else [f"m = {T}(0)"]
        rs = [f"q = {T}(0)"] + nest([f"d = {xa} - m", "q += d * d"]) + \
            [f"rs = {T}(1) / {T}(math.sqrt(q / {T}({cnt}) + {literal(node.attrs['eps'], node.dtype)}))"]
        sums = [f"sg = {T}(0)", f"sgy = {T}(0)"] + nest([f"gg = {ga}", "sg += gg", f"sgy += gg * ({xa} - m) * rs"])
        mg = f"mg = sg / {T}({cnt})" if node.attrs["center"] else f"mg = {T}(0)"
        return mean + rs + sums + [mg, f"mgy = sgy / {T}({cnt})"]
    return _row_map(kern, dims, cfg, stats, lambda xa, ga: f"rs * ({ga} - mg - ({xa} - m) * rs * mgy)", n_in=2)


class GpuTarget(movement.Target):
    """The GPU's hooks for the shared render rules: one thread per element (a launch per loop nest),
    the error word for an index out of range, an atomic add where threads may hit one element."""

    name = "cuda"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def kernel(self, kern):
        return CudaKernel(kern, self.cfg)

    def loops(self, k, extents, body, tag=""):
        k.elementwise(tag, extents, body)

    def over(self, k, dims, node, body, *, split=False, parallel=True):
        _out_grid(k, dims, node, body)

    def over_space(self, k, shape, extents, body, *, split=False, work=1):
        k.elementwise("", extents, body)

    def fill(self, k, dims, node, out, value):
        _fill(k, dims, node, out, value)

    def check_index(self, k, var, n, pos, body):
        _check_index(k, var, n, pos, body)

    def add_into(self, out, idx, value):
        return f"cuda.atomic.add({out}, ({', '.join(idx)},), {value})"


RENDER = {
    "loop": render_loop, "matmul": render_matmul,
    "logsumexp": render_logsumexp, "log_softmax": render_log_softmax,
    "causal_log_softmax": render_log_softmax, "normalize": render_normalize,
    "normalize_grad": render_normalize_grad, **movement.rules(GpuTarget),
}


# ---------------------------------------------------------------- the module
HEADER = '''"""graphc generated CUDA module: {n_kernels} kernels for one compiled graph.

Each schedule kernel is one or more @cuda.jit functions and a host function `run_<kernel>` that
launches them; `driver` runs them all in order on the default stream, without synchronising.
Every kernel takes `err`, the call's error word: kernels after one that may fail return at once
when it is set, so a failed call changes no parameter.
"""
{math}

import numpy as np
from numba import cuda
from numba import types as T

# fastmath off: NumPy's NaN/inf semantics; the ops' templates are written for it
OPTS = dict(cache={cache})


def blocks(n, size):
    return (n + size - 1) // size


@cuda.jit(device=True, inline=True)
def fail(err, code):
    # the first error wins
    cuda.atomic.compare_and_swap(err, 0, code)


@cuda.jit(**OPTS)
def copy_flat(dst, src, n, err, guard):
    t = cuda.grid(1)
    if t >= n or (guard and err[0] != 0):
        return
    dst[t] = src[t]


@cuda.jit(**OPTS)
def check_finite(a, n, err, code):
    t = cuda.grid(1)
    if t < n and not math.isfinite(a[t]):
        fail(err, code)


def copy_into(dst, src, err, guard):
    n = dst.size
    if n:
        copy_flat[blocks(n, {tpb}), {tpb}](dst.reshape(n), src.reshape(n), n, err, guard)


def finite(a, err, code):
    n = a.size
    if n:
        check_finite[blocks(n, {tpb}), {tpb}](a.reshape(n), n, err, code)
'''


RANDOM_HELPERS = '''

@cuda.jit(device=True, inline=True)
def mix64(key, i):
    # graphc/ops/random.py: counter-based random bits, element i under key
    z = np.uint64(key) * np.uint64({key_mul}) + (np.uint64(i) + np.uint64(1)) * np.uint64({idx_mul})
    z = (z ^ (z >> np.uint64(33))) * np.uint64({fmix1})
    z = (z ^ (z >> np.uint64(33))) * np.uint64({fmix2})
    return z ^ (z >> np.uint64(33))


@cuda.jit(device=True, inline=True)
def uniform_float32(key, i):
    return np.float32(mix64(key, i) >> np.uint64(40)) * np.float32(2.0 ** -24)


@cuda.jit(device=True, inline=True)
def uniform_float64(key, i):
    return np.float64(mix64(key, i) >> np.uint64(11)) * 2.0 ** -53
'''


class Module:
    """The rendered module and what the executable needs to call it."""

    def __init__(self, source, args, dims, kernels, sources, views, copies, fallible):
        self.source = source
        self.args = args          # driver's array arguments, as nodes, in order
        self.copies = copies      # outputs no kernel computes (leaves, views): device buffers after args
        self.dims = dims
        self.kernels = kernels
        self.sources = sources    # CudaKernel per kernel (None for views)
        self.views = views
        self.fallible = fallible  # whether a call must read the error word


def render_module(program, kernels, check_numerics: bool = False, cfg: Config | None = None) -> Module:
    cfg = cfg or Config(simulated())
    dims = Dims()
    name = DriverNames(program.inputs)
    names, args, views = name.names, name.args, name.views
    body, defs, runs, sources = [], [], [], []
    guard = False    # set once a kernel that may fail has been launched
    for kern in kernels:
        if kern.kind == "view":
            sources.append(None)
            body.append(name.view(kern.nodes[0], dims, zero_d="1"))  # 0-d: one element on the device
            continue
        ks = render_rule(RENDER, kern, "cuda")(kern, dims, cfg)
        sources.append(ks)
        call_args = [name(n) for n in ks.arrays] + [expr for _, expr in ks.ints]
        # transposed views are strided arrays in the kernels that read them
        sig = ", ".join([arr_type(n.dtype, max(n.ndim, 1), "A" if views.get(n, (0, 0))[1] is None else "C")
                         for n in ks.arrays]
                        + ["T.int64"] * len(ks.ints) + ['T.Array(T.int64, 1, "C")'])
        params = ", ".join(ks.arg_names + [name for name, _ in ks.ints] + ["err"])
        run = [f"\n\ndef run_{kern.name}({params}, dims):", f"    # {' '.join(kern.ops)}"]
        for ln in ks.launches:
            lines = (["    if err[0] != 0:", "        return"] if guard and ln.guard else []) + ln.lines
            defs.append(f"\n\n@cuda.jit(T.void({sig}), **OPTS)\ndef {ln.name}({params}):\n" + "\n".join(lines))
            test = "g[0] and g[1] and g[2]" if ln.grid3 else "g"  # no launch over nothing
            run += [f"    g = {ln.grid}", f"    if {test}:", f"        {ln.name}[g, {ln.block}]({params})"]
        runs.append("\n".join(run))
        body.append(f"    run_{kern.name}({', '.join(call_args + ['err', 'dims'])})")
        guard = guard or ks.fallible
        if check_numerics:
            for n in kern.outputs:
                if n.dtype.kind == "f":
                    body.append(f"    finite({names[n]}, err, {error_code(NUMERICS, kern.index, kern.position(n))})")
            guard = True

    copies, tail = driver_tail(
        program, views, name, lambda d, src: f"    copy_into({d}, {src}, err, {guard})",
        lambda t, src: [f"    {t} = cuda.device_array({src}.shape, {src}.dtype)",
                        f"    copy_into({t}, {src}, err, {guard})"])
    body += tail
    params = [names[n] for n in args] + [f"r{j}" for j in range(len(copies))]
    driver = (f"\n\ndef driver({', '.join(params + ['dims', 'err'])}):\n" + "\n".join(body or ["    pass"]) + "\n")
    n_launch = sum(len(ks.launches) for ks in sources if ks is not None)
    sim = simulated()
    source = HEADER.format(n_kernels=n_launch, tpb=cfg.tpb, cache=not sim,
                           math="from graphc.backends.cuda import simmath as math" if sim else "import math")
    if any(m.op.kind == "random" for kern in kernels for m in kern.nodes):
        source += RANDOM_HELPERS.format(key_mul=hex(rnd.KEY_MUL), idx_mul=hex(rnd.IDX_MUL), fmix1=hex(rnd.FMIX1),
                                        fmix2=hex(rnd.FMIX2))
    source += "".join(defs) + "".join(runs) + driver
    fallible = check_numerics or any(ks is not None and ks.fallible for ks in sources)
    return Module(source, args, dims, kernels, sources, views, copies, fallible)

"""Programs with loops: the graph cut at its scans into parts the backend compiles, and the host
loop that runs each scan's compiled body once per step. The same for every backend.

A value's stage is the number of scans on its longest path from the feeds. Part s computes the
stage-s nodes; the scans whose inputs are ready after part s run next; the last part computes the
outputs and applies the updates (so a call that fails changes no parameter). Each part and each
body is compiled once, by the backend, as an ordinary program.
"""
from __future__ import annotations

import sys

import numpy as np

from .errors import ShapeError
from .ir import consumers, fmt_shape, substitute
from .ops.base import index_read
from .ops.control import Scan
from .protocol import Executable


class _Part:
    """A scan-free piece of the graph: exe computes `results` (outer nodes) from `sources`."""

    def __init__(self, label, exe, sources, results):
        self.label, self.exe, self.sources, self.results = label, exe, sources, results


class _Loop:
    """A scan: its compiled body, its outer inputs, and the outer node of each result read."""

    def __init__(self, label, node, exe, wanted, residuals):
        self.label, self.node, self.exe, self.wanted = label, node, exe, wanted
        body = node.attrs["body"]
        self.nc, self.nx, self.ny = len(body.carry), len(body.xs), len(body.ys)
        self.residuals = residuals  # the residuals read, in the order the compiled body outputs them
        self.dtypes = []            # of the compiled body's outputs
        self.spare = {}             # the stacked arrays of the last call, for the next one

    def stacked(self, key, shape, dtype) -> np.ndarray:
        """An array for stacked per-step values: the last call's when nobody holds it any more (a
        fresh one of some MiB costs more in page faults than the steps that fill it)."""
        a = self.spare.get(key)
        if a is not None and a.shape == shape and a.dtype == dtype and sys.getrefcount(a) == 3:
            return a  # held by self.spare, `a` and getrefcount's argument
        a = np.empty(shape, dtype)
        self.spare[key] = a
        return a


def _shaped(shape, dtype) -> np.ndarray:
    """An array of this shape that owns no memory (every element the same one): for shape queries."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), tuple(shape), (0,) * len(shape))


class Staged(Executable):
    """A graph with scans, run as parts and loops; build(graph) compiles a scan-free graph (or a
    body) on the backend."""

    def __init__(self, graph, build):
        from .ops.build import placeholder
        from .passes import Graph
        order = graph.nodes
        stage = {}
        for n in order:
            if n.is_leaf:
                stage[n] = 0
            elif n.op.projection:
                stage[n] = stage[n.inputs[0]] + 1
            else:
                stage[n] = max(stage[i] for i in n.inputs)
        roots = graph.roots
        last = max((stage[r] for r in roots), default=0)
        root_set = set(roots)
        users = consumers(order)
        # each plain node as late as its readers allow: work that only a later part reads (Adam's
        # beta1 * m, which the update reads after the loops) is computed and fused there, not in
        # a kernel of its own before the loops whose result is kept across them
        for n in reversed(order):
            if n.is_leaf or n.op.tuple_valued or n.op.projection:
                continue
            later = [stage[u] for u in users[n]] + ([last] if n in root_set else [])
            if later:
                stage[n] = min(later)
        parts = _parts(order, stage, last)
        where = {}  # node -> the parts that compute it (its own, and those that recompute it)
        for s, inside in enumerate(parts):
            for n in inside:
                where.setdefault(n, []).append(s)
        self.steps = []
        self._consts = {}
        for s in range(last + 1):
            inside = parts[s]
            members = [n for n in order if n in inside]
            if s == last:
                wanted = list(graph.outputs)
                results = wanted
            else:
                # what a later part or a loop reads of this part's own nodes (a part that recomputes
                # a node reads its inputs instead)
                wanted = [n for n in members if stage[n] == s and (n in root_set or any(
                    u not in where or any(n not in parts[t] for t in where[u]) for u in users[n]))]
                results = wanted
            reads = {}
            for n in members:
                for i in n.inputs:
                    if i not in inside:
                        reads[i] = None
            if s == last:
                for r in roots:
                    if r not in inside:
                        reads[r] = None
            if members or s == last:
                outer = [v for v in reads if v.op.name == "placeholder"]
                boundary = [v for v in reads if not v.is_leaf]
                phs = {v: placeholder(v.shape, v.dtype) for v in boundary}
                outs = substitute(wanted, phs)
                ups = ()
                if s == last:
                    new_u = substitute([u for _, u in graph.updates], phs)
                    ups = tuple((p, u) for (p, _), u in zip(graph.updates, new_u))
                part = Graph(tuple(outer + list(phs.values())), tuple(outs), ups)
                self.steps.append(_Part(f"part{s}", build(part), outer + boundary, results))
            for n in order:
                if n.op.tuple_valued and stage[n] == s:
                    want = {u.attrs["index"]: u for u in users[n]}
                    body = n.attrs["body"]
                    first = 2 * len(body.carry) + len(body.ys)
                    res = sorted(k - first for k in want if k >= first)
                    outs = body.outputs + tuple(body.residuals[r] for r in res)
                    loop = _Loop(f"scan{len(self.steps)}:{n.label}", n, build(Graph(body.inputs, outs, ())), want, res)
                    loop.dtypes = [o.dtype for o in outs]
                    self.steps.append(loop)
        self.device = any(st.exe.device for st in self.steps)
        self.kernels = [k for st in self.steps for k in st.exe.kernels]
        self.inputs = list(graph.inputs)

    # ------------------------------------------------------------ running
    def _value(self, env, v):
        if v in env:
            return env[v]
        if v.op.name == "parameter":
            return v.data.array
        if v.op.name == "constant":
            a = self._consts.get(v)
            if a is None:
                a = self._consts[v] = np.array(v.data)  # writable: backends take feeds as such
            return a
        raise KeyError(v)

    def _env(self, feeds) -> dict:
        return dict(zip(self.inputs, feeds))

    def run(self, feeds, out=None):
        env = self._env(feeds)
        for st in self.steps[:-1]:
            self._step(st, env)
        return self.steps[-1].exe.run([self._value(env, v) for v in self.steps[-1].sources])

    def _step(self, st, env):
        if isinstance(st, _Part):
            res = st.exe.run([self._value(env, v) for v in st.sources])
            env.update(zip(st.results, res))
        else:
            env.update(self._loop(st, [self._value(env, v) for v in st.node.inputs]))

    def _length(self, st, args) -> int:
        node = st.node
        xs = args[st.nc:st.nc + st.nx]
        lengths = {x.shape[0] for x in xs}
        if node.attrs["length"] is not None:
            lengths.add(node.attrs["length"])
        if len(lengths) != 1:
            shapes = ", ".join(fmt_shape(x.shape) for x in xs)
            raise ShapeError(f"scan ({node.label}): its xs were fed with different numbers of steps ({shapes}"
                             f"{'; length=' + str(node.attrs['length']) if node.attrs['length'] is not None else ''})",
                             node.loc)
        return lengths.pop()

    def _loop(self, st, args) -> dict:
        node, exe, nc, nx, ny = st.node, st.exe, st.nc, st.nx, st.ny
        T = self._length(st, args)
        init, xs, caps = args[:nc], args[nc:nc + nx], args[nc + nx:]
        carry = list(init)
        first = carry + [x[0, ...] if T else _shaped(x.shape[1:], x.dtype) for x in xs] + list(caps)
        want = st.wanted
        ys = {}  # position among the body's outputs -> the stacked array it fills
        if any(nc <= k < nc + ny for k in want) or st.residuals:
            shapes, dtypes = exe.output_shapes(first), st.dtypes
            ys = {q: st.stacked(("y", q), (T,) + tuple(shapes[nc + q]), dtypes[nc + q])
                  for q in range(ny + len(st.residuals)) if q >= ny or nc + q in want}
        saved = {j: st.stacked(("c", j), (T,) + c.shape, c.dtype) for j, c in enumerate(init) if nc + ny + j in want}
        steps = range(T - 1, -1, -1) if node.attrs["reverse"] else range(T)
        step = -1 if node.attrs["reverse"] else 1
        caps = list(caps)
        if T:
            for j, a in saved.items():
                a[steps[0]] = carry[j]
        with exe.stepper([f.shape for f in first]) as call:
            for i in steps:
                feeds = carry + [x[i, ...] for x in xs] + caps  # [i, ...]: a 0-d view, not a scalar
                # a saved carry's next value is computed straight into its slot (the next step's)
                rows = {j: a[i + step, ...] for j, a in saved.items() if 0 <= i + step < T}
                rows.update((nc + q, a[i, ...]) for q, a in ys.items())
                res = call(feeds, rows)
                for pos, row in rows.items():
                    if res[pos] is not row:  # computed elsewhere (or one value fetched at two positions)
                        row[...] = res[pos]
                carry = res[:nc]
        result = {}
        for k, proj in want.items():
            if k < nc:
                result[proj] = carry[k] if T else np.array(carry[k], copy=True)  # never a caller's array
            elif k < nc + ny:
                result[proj] = ys[k - nc]
            elif k < 2 * nc + ny:
                result[proj] = saved[k - nc - ny]
            else:
                result[proj] = ys[ny + st.residuals.index(k - 2 * nc - ny)]
        return result

    # ------------------------------------------------------------ shapes and introspection
    def output_shapes(self, feeds) -> list[tuple]:
        env = self._env(feeds)
        for st in self.steps[:-1]:
            args = [self._value(env, v) for v in (st.sources if isinstance(st, _Part) else st.node.inputs)]
            if isinstance(st, _Part):
                env.update((r, _shaped(s, r.dtype)) for r, s in zip(st.results, st.exe.output_shapes(args)))
                continue
            T, nc = self._length(st, args), st.nc
            step = args[:nc] + [_shaped(x.shape[1:], x.dtype) for x in args[nc:nc + st.nx]] + args[nc + st.nx:]
            shapes, ny = st.exe.output_shapes(step), st.ny
            for k, proj in st.wanted.items():
                if k < nc:
                    s = shapes[k]
                elif k < nc + ny:
                    s = (T,) + tuple(shapes[k])
                elif k < 2 * nc + ny:
                    s = (T,) + args[k - nc - ny].shape
                else:
                    s = (T,) + tuple(shapes[nc + ny + st.residuals.index(k - 2 * nc - ny)])
                env[proj] = _shaped(s, proj.dtype)
        last = self.steps[-1]
        return last.exe.output_shapes([self._value(env, v) for v in last.sources])

    def source(self) -> str:
        return "\n\n".join(f"# ======== {st.label}\n{st.exe.source()}" for st in self.steps)

    def cache_info(self) -> dict:
        parts = [st.exe.cache_info() for st in self.steps]
        info = {"backend": parts[0].get("backend"), "module": None, "parts": parts,
                "reused": all(p.get("reused") for p in parts)}
        if all("compile_seconds" in p for p in parts):
            info["compile_seconds"] = sum(p["compile_seconds"] for p in parts)
        return info

    def profile(self, feeds, repeat: int):
        """Each part's kernels on this call's values, and each body's on its first step (names
        prefixed by the part or scan); parameters unchanged (the last part is profiled, not run)."""
        from .profile import KernelProfile, Profile
        env = self._env(feeds)
        out = Profile()
        for k, st in enumerate(self.steps):
            if isinstance(st, _Part):
                args = [self._value(env, v) for v in st.sources]
            else:
                args = [self._value(env, v) for v in st.node.inputs]
                nc, nx = st.nc, st.nx
                if not self._length(st, args):
                    continue
                args = args[:nc] + [x[0, ...] for x in args[nc:nc + nx]] + args[nc + nx:]
            for kp in st.exe.profile(args, repeat):
                out.append(KernelProfile(f"{st.label}/{kp.name}", kp.ops, kp.seconds, kp.bytes, kp.flops))
            if k < len(self.steps) - 1:
                self._step(st, env)
        return out


def _recomputed(n) -> bool:
    """A value a later part computes again from its inputs rather than reading it across the cut:
    a reshape or transpose (of a weight, of an activation a weight gradient reads), not a slice
    (smaller than what it reads). Read in the part that uses it, a transpose that only matmuls read
    is a view there, not a copy shipped over; one that moves the leading axes (an RNN's time-major
    outputs made batch-first) is a copy wherever it is, and is read across."""
    if n.is_leaf or n.op.kind != "movement":
        return False
    if n.op.name == "transpose" and tuple(n.attrs["perm"][:-2]) != tuple(range(n.ndim - 2)):
        return False
    return n.op.view or (index_read(n) and sorted(map(str, n.shape)) == sorted(map(str, n.inputs[0].shape)))


def _parts(order, stage, last) -> list[set]:
    """The nodes each part computes: those of its stage, and the movement nodes of earlier stages
    that it reads (through chains of them), computed again (_recomputed)."""
    parts = [set() for _ in range(last + 1)]
    for n in order:
        if not n.is_leaf and n.op.kind != "control":
            parts[stage[n]].add(n)
    for s in range(1, last + 1):
        inside = parts[s]
        todo = [i for n in inside for i in n.inputs if i not in inside and _recomputed(i)]
        while todo:
            v = todo.pop()
            if v in inside:
                continue
            inside.add(v)
            todo += [i for i in v.inputs if i not in inside and _recomputed(i)]
    return parts


def has_loops(graph) -> bool:
    """Whether the graph holds a scan (it is then compiled as a Staged program)."""
    return any(n.op is Scan for n in graph.nodes)

"""Evaluate a program node by node with each op's NumPy meaning."""
from __future__ import annotations

import functools

import numpy as np

from graphc.errors import GraphIndexError, GraphRuntimeError, OutOfMemoryError, ShapeError, format_loc
from graphc.ops.base import fmt_shape
from graphc.protocol import Executable
from graphc.schedule import resolve_shapes


def _fits(shape, static) -> bool:
    return len(shape) == len(static) and all(d is None or d == s for d, s in zip(static, shape))


class Interpreter(Executable):
    """Runs a Program; intermediate arrays are freed after their last use."""

    def __init__(self, program):
        self.program = program
        order = program.order
        slot = {n: i for i, n in enumerate(order)}
        self._feed_slots = [slot[p] for p in program.inputs if p in slot]
        self._feed_index = [i for i, p in enumerate(program.inputs) if p in slot]
        last_use = {}
        for i, n in enumerate(order):
            for x in n.inputs:
                last_use[slot[x]] = i
        keep = {slot[o] for o in program.outputs} | {slot[u] for _, u in program.updates}
        self._steps = []  # (slot, node, op.impl, input slots, attrs, slots to free after)
        free_at: dict[int, list[int]] = {}
        for s, i in last_use.items():
            if s not in keep:
                free_at.setdefault(i, []).append(s)
        for i, n in enumerate(order):
            if n.op.kind == "leaf":
                continue
            self._steps.append((i, n, n.op.impl, [slot[x] for x in n.inputs], dict(n.attrs),
                                free_at.get(i, [])))
        self._leaves = [(slot[n], n) for n in order if n.op.name in ("parameter", "constant")]
        self._n = len(order)
        self._out_slots = [slot[o] for o in program.outputs]
        self._upd = [(p, slot[u]) for p, u in program.updates]
        self._shapes: dict = {}  # feed shapes -> every node's shape (resolve_shapes: its run-time checks)

    def _resolved(self, feeds) -> dict:
        key = tuple(f.shape for f in feeds)
        shapes = self._shapes.get(key)
        if shapes is None:
            shapes = self._shapes[key] = resolve_shapes(self.program, key)
        return shapes

    def output_shapes(self, feeds) -> list[tuple]:
        shapes = self._resolved(feeds)
        return [shapes[o] for o in self.program.outputs]

    @property
    def kernels(self):
        """The interpreter runs one op at a time: each computing node is its own kernel."""
        from graphc.schedule import Kernel
        return [Kernel(k, n.op.name, (n,), n.inputs, (n,), n.shape, name=f"k{k}_{n.op.name}")
                for k, (_, n, *_rest) in enumerate(self._steps)]

    def source(self) -> str:
        from graphc.ir import format_graph
        return format_graph(self.program.outputs + [u for _, u in self.program.updates])

    def cache_info(self) -> dict:
        return {"backend": "numpy", "module": None, "reused": False}

    def profile(self, feeds, repeat: int):
        """Time every op of the interpreter on these feeds (parameters untouched)."""
        from graphc.profile import KernelProfile, Profile, node_flops, time_call
        vals = self._evaluate(feeds, keep_all=True)
        shapes = {n: vals[s].shape for s, n in enumerate(self.program.order) if vals[s] is not None}
        out = Profile()
        for k, (s, node, impl, ins, attrs, _) in zip(self.kernels, self._steps):
            args = [vals[j] for j in ins]
            with np.errstate(all="ignore"):
                sec = time_call(functools.partial(impl, *args, **attrs), repeat)
            moved = sum(a.nbytes for a in args) + vals[s].nbytes
            out.append(KernelProfile(k.name, k.ops, sec, moved, node_flops(node, shapes)))
        return out

    def _evaluate(self, feeds, keep_all: bool = False) -> list:
        """Every node's value for these feeds; intermediates are freed after their last use unless
        keep_all (profiling)."""
        self._resolved(feeds)  # the same run-time shape rules as the compiled backends
        vals: list = [None] * self._n
        for s, k in zip(self._feed_slots, self._feed_index):
            vals[s] = feeds[k]
        for s, n in self._leaves:
            vals[s] = n.data.array if n.op.name == "parameter" else n.data
        numerics = self.program.check_numerics and not keep_all
        with np.errstate(all="ignore"):
            for s, node, impl, ins, attrs, free in self._steps:
                args = [vals[j] for j in ins]
                try:
                    out = impl(*args, **attrs)
                except Exception as e:  # name the node and the user's line that built it
                    kind = GraphIndexError if isinstance(e, IndexError) else \
                        OutOfMemoryError if isinstance(e, MemoryError) else GraphRuntimeError
                    shapes = ", ".join(fmt_shape(a.shape) for a in args)
                    raise kind(f"{node.op.name} ({node.label}) failed on inputs of shapes {shapes}: {e}",
                               node.loc) from e
                out = np.asarray(out)
                if out.dtype != node.dtype:
                    out = out.astype(node.dtype)
                if not _fits(out.shape, node.shape):
                    raise ShapeError(f"{node.op.name} ({node.label}) produced shape {fmt_shape(out.shape)}, "
                                     f"its rule says {fmt_shape(node.shape)} (a graphc bug)", node.loc)
                if numerics and out.dtype.kind == "f" and not np.isfinite(out).all():
                    k = next(k for k, step in enumerate(self._steps) if step[0] == s)
                    raise GraphRuntimeError(f"check_numerics: kernel k{k}_{node.op.name} [{node.op.name}] "
                                            f"produced NaN or inf in {node.label}; its first op "
                                            f"{node.op.name} was built at {format_loc(node.loc)}", node.loc)
                vals[s] = out
                if not keep_all:
                    for j in free:
                        vals[j] = None
        return vals

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        vals = self._evaluate(feeds)  # all-or-nothing: resolve_shapes checked every update's shape
        results, given = [], set()
        for s in self._out_slots:
            v = vals[s]
            # hand out arrays nobody else holds: copy views, leaves' storage and repeats
            if id(v) in given or v.base is not None or not v.flags.writeable or \
                    any(v is f for f in feeds) or any(v is n.data.array for _, n in self._leaves
                                                      if n.op.name == "parameter"):
                v = v.copy()
            given.add(id(v))
            results.append(v)
        new_values = [(p, vals[s].copy() if any(vals[s] is q.data.array for q, _ in self._upd) else vals[s])
                      for p, s in self._upd]
        for p, v in new_values:
            np.copyto(p.data.array, v)
        return results

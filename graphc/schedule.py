"""Kernels in order and the buffer plan: run-time shapes, liveness, workspace reuse.

Backend-neutral: a code-generating backend renders the kernels; the plan tells it, for one set of
feed shapes, the concrete shape of every value and which array holds it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import GraphError, ShapeError
from .ir import Node, consumers
from .ops.base import fmt_shape, index_read, reads, swap_last_two
from .passes.fuse import fusible, row_split


@dataclass
class Kernel:
    """One generated function: the nodes it computes, what it reads and what it writes."""

    index: int
    kind: str                 # "loop" (fused elementwise [+ reduction]), "rows" (a row reduction, then
                              # elementwise work on each row), "view", or the op's name
    nodes: tuple              # members, in topological order
    inputs: tuple             # nodes computed elsewhere whose values it reads
    outputs: tuple            # members whose values leave it (buffers)
    shape: tuple              # iteration shape (loop kernels) or the output's shape
    reduce: tuple | None = None
    name: str = ""
    # outputs the backend writes straight into an input's array (an update value -> its parameter),
    # decided by its buffer planning before the kernel is rendered
    writes_into: dict = field(default_factory=dict)

    def position(self, node) -> int:
        """node's index among the members (by identity: == on nodes builds a graph node)."""
        return next(j for j, m in enumerate(self.nodes) if m is node)

    @property
    def ops(self) -> list[str]:
        """The ops this kernel fused, in order."""
        return [n.op.name for n in self.nodes]

    def __repr__(self):
        ins = ", ".join(f"{n.label}{fmt_shape(n.shape)}" for n in self.inputs)
        outs = ", ".join(f"{n.label}{fmt_shape(n.shape)}" for n in self.outputs)
        return f"<Kernel {self.name}: {' '.join(self.ops)} | in: {ins} | out: {outs}>"


def transposed_view(node, users, roots, batched: bool = False) -> bool:
    """A 2-D float transpose that only 2-D matmuls read: they take its input as a transposed
    (column-major) view, which BLAS reads as is, so no kernel copies it. batched: also a transpose
    of more dims that only matmuls of matrices read, keeping the input's last axis as one of the
    matrices' two (each batch's matrix is then a strided view with one unit stride, which BLAS reads
    as it stands: a backend whose products are BLAS calls per matrix): a swap of the last two axes
    (k's transpose in q @ k^T), attention's heads split off ((B, T, H, D) -> (B, H, T, D)). Such a
    view of more than a swap is taken only by products of its own number of dims (no reshape of a
    strided array to add batch dims of 1)."""
    if node.op.name != "transpose" or node.dtype.kind != "f" or node in roots or not users[node]:
        return False
    n, perm = node.ndim, tuple(node.attrs["perm"])
    if n == 2:
        return perm == (1, 0) and all(
            u.op.name == "matmul" and u.inputs[0].ndim == 2 and u.inputs[1].ndim == 2 for u in users[node])
    if not batched or n - 1 not in perm[-2:]:
        return False
    swap = perm == swap_last_two(n)
    return all(u.op.name == "matmul" and u.inputs[0].ndim >= 2 and u.inputs[1].ndim >= 2
               and (swap or u.ndim == n) for u in users[node])


def make_kernels(program, batched_views: bool = False) -> list[Kernel]:
    """The program's fused groups as Kernels, named k<index>_<kind>. batched_views: transposes of
    the last two axes of batches that only matmuls read are views too (transposed_view)."""
    order = program.order
    users = consumers(order)
    roots = set(program.outputs) | {u for _, u in program.updates}
    kernels = []
    for k, group in enumerate(program.groups):
        members = set(group)
        ins, outs = {}, []
        for m in group:
            for i in reads(m):
                if i not in members:
                    ins[i] = None
            if m in roots or any(u not in members for u in users[m]):
                outs.append(m)
        head = group[-1]
        split = row_split(group)
        if len(group) == 1 and (head.op.view or transposed_view(head, users, roots, batched_views)):
            kind = "view"
        elif split is not None:
            kind = "rows"
        elif all(fusible(m) or m.op.loop_reduction for m in group) and not all(index_read(m) for m in group):
            kind = "loop"  # (a transpose alone keeps its own kernel)
        else:
            kind = head.op.name
        red = next((m for m in group if m.op.loop_reduction), None) if kind == "loop" else \
            (split[0] if kind == "rows" else None)
        shape = red.inputs[0].shape if red is not None else head.shape
        kern = Kernel(k, kind, tuple(group), tuple(ins), tuple(outs), shape,
                      red.attrs["axes"] if red is not None else None)
        label = "_".join(dict.fromkeys(m.op.name for m in group
                                       if m.op.kind != "movement" or kind not in ("loop", "rows")))
        kern.name = f"k{k}_{label[:48]}"
        kernels.append(kern)
    return kernels


class _Shaped:
    """A stand-in with a concrete shape, so each op's shape rule can check run-time shapes."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype

    @property
    def ndim(self):
        return len(self.shape)


def resolve_shapes(program, feed_shapes) -> dict[Node, tuple]:
    """The concrete shape of every node for these feed shapes, checked by the ops' own rules."""
    shapes: dict[Node, tuple] = {}
    stand: dict[Node, _Shaped] = {}
    feeds = dict(zip(program.inputs, feed_shapes))
    for n in program.order:
        if n.op.name == "placeholder":
            s = tuple(feeds[n]) if n in feeds else n.shape
        elif n.is_leaf:
            s = n.shape
        else:
            try:
                s, _ = n.op.infer(tuple(stand[i] for i in n.inputs), n.attrs)
            except GraphError as e:
                shapes_in = ", ".join(fmt_shape(stand[i].shape) for i in n.inputs)
                raise ShapeError(f"{n.op.name} ({n.label}) at run time, inputs of shapes {shapes_in}: "
                                 f"{e.message}", n.loc) from None
            s = tuple(s)
            k = n.op.value_inputs
            if None in s and k is not None and len(n.inputs) > k:  # dims lent by a reference input
                ref = stand[n.inputs[-1]].shape
                s = tuple(ref[i] if d is None else d for i, d in enumerate(s))
            if None in s:  # reshape: sizes copied from the input (src) or inferred from the count
                s = _infer_dims(n, s, stand)
            n.op.check_run_time(n, [stand[i].shape for i in n.inputs], s)
            if math.prod(s) >= 2 ** 63:
                raise ShapeError(f"{n.op.name} ({n.label}) at run time: shape {fmt_shape(s)} has more "
                                 "elements than an int64 counts", n.loc)
        shapes[n] = s
        stand[n] = _Shaped(s, n.dtype)
    for p, u in program.updates:  # a run-time dim of the new value must be the parameter's size
        if shapes[u] != p.shape:
            raise ShapeError(f"update of parameter {p.label} {fmt_shape(p.shape)} computed shape "
                             f"{fmt_shape(shapes[u])} at run time", u.loc or p.loc)
    return shapes


def _infer_dims(n, s, stand):
    x = stand[n.inputs[0]]
    target = list(n.attrs["shape"])
    src = n.attrs.get("src")
    for i, d in enumerate(target):
        if d is None:
            target[i] = stand[n.inputs[1]].shape[i] if len(n.inputs) > 1 else x.shape[src[i]]
    size = math.prod(x.shape)
    known = math.prod(d for d in target if d != -1)
    out = tuple(size // known if d == -1 else d for d in target) if known else tuple(0 if d == -1 else d
                                                                                      for d in target)
    if math.prod(out) != size:
        raise ShapeError(f"reshape ({n.label}) at run time: cannot reshape {fmt_shape(x.shape)} to "
                         f"{fmt_shape(out)}", n.loc)
    return out


@dataclass
class BufferPlan:
    """Which array holds each value for one set of shapes.

    slots: node -> ("feed", i) | ("param", node) | ("const", node) | ("work", i) | ("out", i) |
    ("view", source node); an update value written in place has its parameter's slot.
    workspaces: (dtype, shape) of each workspace, allocated once.
    """

    shapes: dict
    slots: dict = field(default_factory=dict)
    workspaces: list = field(default_factory=list)
    outputs: list = field(default_factory=list)


def fresh_outputs(program) -> list:
    """The program outputs a kernel computes, each once: a fresh array per call (the caller keeps
    it); every other value a kernel computes lives in a workspace."""
    return list(dict.fromkeys(o for o in program.outputs if not o.is_leaf and not o.op.view))


def plan_buffers(program, kernels, shapes, inplace=None) -> BufferPlan:
    """Assign storage by liveness: a workspace is reused once every reader of its value has run.
    inplace: {update value: parameter} the backend writes straight into the parameter."""
    plan = BufferPlan(shapes)
    inplace = inplace or {}
    for i, p in enumerate(program.inputs):
        plan.slots[p] = ("feed", i)
    for n in program.order:
        if n.op.name == "parameter":
            plan.slots[n] = ("param", n)
        elif n.op.name == "constant":
            plan.slots[n] = ("const", n)
    for p, _ in program.updates:  # a target the graph never reads is written all the same
        plan.slots[p] = ("param", p)
    plan.outputs = fresh_outputs(program)
    out_nodes = {o: i for i, o in enumerate(plan.outputs)}
    keep = {u for _, u in program.updates} | set(program.outputs)

    def storage(n):
        while plan.slots.get(n, ("",))[0] == "view":
            n = plan.slots[n][1]
        return n

    last_use: dict[Node, int] = {}
    for k in kernels:
        for n in k.nodes:
            if k.kind == "view":
                plan.slots[n] = ("view", n.inputs[0])
    for k in kernels:
        for i in k.inputs:
            last_use[storage(i)] = k.index
        if k.kind == "view":
            last_use[storage(k.nodes[0])] = k.index
    free: dict[tuple, list[int]] = {}
    for k in kernels:
        if k.kind == "view":
            continue
        for o in k.outputs:
            if o in out_nodes:
                plan.slots[o] = ("out", out_nodes[o])
                continue
            if o in inplace:
                plan.slots[o] = ("param", inplace[o])
                continue
            key = (o.dtype.str, shapes[o])
            pool = free.get(key)
            if pool:
                plan.slots[o] = ("work", pool.pop())
            else:
                plan.slots[o] = ("work", len(plan.workspaces))
                plan.workspaces.append((o.dtype, shapes[o]))
        for i in list(k.inputs) + [o for o in k.outputs]:
            s = storage(i)
            if last_use.get(s, -1) <= k.index and s not in keep and plan.slots.get(s, ("",))[0] == "work" \
                    and not any(storage(v) is s for v in keep):
                key = (s.dtype.str, shapes[s])
                idx = plan.slots[s][1]
                if idx not in free.setdefault(key, []):
                    free[key].append(idx)
    return plan

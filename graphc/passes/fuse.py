"""Fusion: group nodes into kernels.

Consumer-driven, as in XLA's loop fusion: walking from the outputs back, an elementwise node joins
the kernel of its consumers when it has the kernel's iteration shape. If it also has users outside,
it becomes one more output of that kernel (a forward value the backward pass reuses), unless that
would make kernels depend on each other in a cycle. A reduction (sum, max, min, prod) starts a
kernel whose loop runs over its input's shape, so the elementwise work producing that input folds
into the same loop. Everything else (matmul, gathers, copies) is a kernel of its own; a reshape is
a view and costs nothing.
"""
from __future__ import annotations

from ..ir import Node, consumers
from ..ops.base import reads
from .graph import Graph

FUSED_REDUCTIONS = {"sum", "max", "min", "prod"}
MAX_BUFFERS = 24  # external inputs + outputs of one kernel
MAX_OPS = 64      # ops per kernel: compile time grows with a kernel's length, speed stops growing


def fusible(n: Node) -> bool:
    """An elementwise node: computed per output element from inputs read with broadcasting."""
    return n.op.kind in ("elementwise", "random") or n.op.name == "broadcast_to"


def iteration_shape(n: Node) -> tuple:
    return n.inputs[0].shape if n.op.name in FUSED_REDUCTIONS else n.shape


class _Group:
    __slots__ = ("id", "members", "shape", "reduce")

    def __init__(self, gid, head: Node):
        self.id = gid
        self.members = {head: None}
        self.shape = iteration_shape(head)
        self.reduce = head.attrs["axes"] if head.op.name in FUSED_REDUCTIONS else None


def fuse(graph: Graph) -> Graph:
    """graph with groups: one tuple of member nodes (in topological order) per kernel."""
    nodes = graph.nodes
    index = {n: k for k, n in enumerate(nodes)}
    users = consumers(nodes)
    roots = set(graph.roots)
    group_of: dict[Node, _Group] = {}
    groups: list[_Group] = []

    def new_group(n):
        g = _Group(len(groups), n)
        groups.append(g)
        group_of[n] = g

    def reaches(start: Node, g: _Group) -> bool:
        """Whether g's kernel would have to run after start's (a path start -> ... -> a member of g)."""
        stack, seen = [start], set()
        while stack:
            u = stack.pop()
            if group_of.get(u) is g:
                return True
            if u in seen:
                continue
            seen.add(u)
            stack.extend(users[u])
        return False

    def buffers_with(g: _Group, n: Node) -> int:
        members = set(g.members) | {n}
        ext = {i for m in members for i in reads(m) if i not in members}
        outs = {m for m in members if m in roots or any(u not in members for u in users[m])}
        return len(ext) + len(outs)

    for n in reversed(nodes):
        if n.is_leaf:
            continue
        if not fusible(n):
            new_group(n)
            continue
        target = None
        candidates = []
        for u in users[n]:
            g = group_of.get(u)
            if g is not None and fusible_into(n, u, g) and g not in candidates:
                candidates.append(g)
        for g in candidates:
            outside = [u for u in users[n] if group_of.get(u) is not g]
            if any(reaches(u, g) for u in outside):
                continue
            if len(g.members) >= MAX_OPS or buffers_with(g, n) > MAX_BUFFERS:
                continue
            target = g
            break
        if target is None:
            new_group(n)
        else:
            target.members[n] = None
            group_of[n] = target

    ordered = _kernel_order(groups, group_of, index)
    return Graph(graph.inputs, graph.outputs, graph.updates,
                 tuple(tuple(sorted(g.members, key=index.__getitem__)) for g in ordered))


def fusible_into(n: Node, user: Node, g: _Group) -> bool:
    """n may be computed inside g's loop: it is elementwise with g's iteration shape and user is
    elementwise in g or g's reduction."""
    if n.shape != g.shape:
        return False
    return fusible(user) or user.op.name in FUSED_REDUCTIONS


def _kernel_order(groups, group_of, index):
    """Kernels in a topological order of their dependencies, ties broken by graph order."""
    import heapq

    deps = {g.id: set() for g in groups}
    for g in groups:
        for m in g.members:
            for i in m.inputs:
                h = group_of.get(i)
                if h is not None and h is not g:
                    deps[g.id].add(h.id)
    users = {g.id: set() for g in groups}
    for gid, ds in deps.items():
        for d in ds:
            users[d].add(gid)
    first = {g.id: min(index[m] for m in g.members) for g in groups}
    ready = [(first[gid], gid) for gid, ds in deps.items() if not ds]
    heapq.heapify(ready)
    out, pending = [], {gid: len(ds) for gid, ds in deps.items()}
    by_id = {g.id: g for g in groups}
    while ready:
        _, gid = heapq.heappop(ready)
        out.append(by_id[gid])
        for u in users[gid]:
            pending[u] -= 1
            if pending[u] == 0:
                heapq.heappush(ready, (first[u], u))
    if len(out) != len(groups):  # pragma: no cover - fusion never makes a cycle
        raise RuntimeError("graphc: fusion produced a cycle between kernels")
    return out

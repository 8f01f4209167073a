"""Fusion: group nodes into kernels.

Consumer-driven, as in XLA's loop fusion: walking from the outputs back, an elementwise node joins
the kernel of its consumers when it has the kernel's iteration shape. If it also has users outside,
it becomes one more output of that kernel (a forward value the backward pass reuses), unless that
would make kernels depend on each other in a cycle. A reduction (sum, max, min, prod) starts a
kernel whose loop runs over its input's shape, so the elementwise work producing that input folds
into the same loop. A cheap elementwise node of a smaller shape that broadcasts to the kernel's
(the negated row maximum in x - max) joins when every reader is in the kernel: recomputing it per
element costs less than a kernel and a buffer. Everything else (matmul, gathers, copies) is a kernel
of its own; a reshape is a view and costs nothing.

With rows=True (backends whose kernels loop over rows: numba), a row reduction over trailing axes
(logsumexp) and an elementwise kernel over its input's shape that reads it (softmax's
exp(x - logsumexp(x))) become one "rows" kernel: per row, the reduction, then the elementwise work
on that row while it is still in cache.

Then elementwise kernels of one iteration shape that the walk left apart merge when they share an
input or one reads the other (siblings: an LSTM's four gate gradients), if no other kernel must run
between them.
"""
from __future__ import annotations

from ..ir import Node, consumers
from ..ops.base import index_read, reads
from .graph import Graph

MAX_BUFFERS = 24  # external inputs + outputs of one kernel
MAX_OPS = 64      # ops per kernel: compile time grows with a kernel's length, speed stops growing
# sibling merges (_merge_loops) stay linear in the graph's size: at most this many candidates per
# kernel per round, and a dependency search over at most this many kernels (else no merge)
MERGE_TRIES = 8
MERGE_SEARCH = 256


def fusible(n: Node) -> bool:
    """An elementwise node: computed per output element from inputs read with broadcasting (or
    an index read: its input read at other indices)."""
    return n.op.fusible or index_read(n)


def iteration_shape(n: Node) -> tuple:
    return n.inputs[0].shape if n.op.loop_reduction else n.shape


class _Group:
    __slots__ = ("id", "members", "shape", "reduce")

    def __init__(self, gid, head: Node):
        self.id = gid
        self.members = {head: None}
        self.shape = iteration_shape(head)
        self.reduce = head.attrs["axes"] if head.op.loop_reduction else None


def broadcasts_to(small: tuple, big: tuple) -> bool:
    """small is a strictly smaller shape that broadcasts to big (a None matches only a None)."""
    if len(small) > len(big) or small == big:
        return False
    return all(d == 1 or d == e for d, e in zip(small[::-1], big[::-1]))


def fuse(graph: Graph, rows: bool = False) -> Graph:
    """graph with groups: one tuple of member nodes (in topological order) per kernel; rows: also
    fuse row reductions with their elementwise consumers (see the module's docstring)."""
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
        stack, seen, kernels = [start], set(), set()
        while stack:
            u = stack.pop()
            h = group_of.get(u)
            if h is g:
                return True
            if u in seen:
                continue
            seen.add(u)
            stack.extend(users[u])
            if h is not None and h.id not in kernels:  # u's kernel runs as a whole: what reads any
                kernels.add(h.id)                       # of its members runs after it too
                stack.extend(h.members)
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
            if g is not None and g not in candidates and \
                    (fusible_into(n, u, g) or recomputable(n, g, users[n], group_of, roots)):
                candidates.append(g)
        for g in candidates:
            if any(group_of.get(u) is g and index_read(u) for u in users[n]):
                continue  # a transpose in g reads n at other indices: n stays a kernel input of g
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

    if rows:
        groups = _fuse_rows(groups, group_of, users, roots)
    groups = _merge_loops(groups, group_of, users, roots)
    ordered = _kernel_order(groups, group_of, index)
    return Graph(graph.inputs, graph.outputs, graph.updates,
                 tuple(tuple(sorted(g.members, key=index.__getitem__)) for g in ordered))


def fusible_into(n: Node, user: Node, g: _Group) -> bool:
    """n may be computed inside g's loop: it is elementwise with g's iteration shape and user is
    elementwise in g or g's reduction (not an index read such as a transpose, which reads its input
    at other indices than the loop's)."""
    if n.shape != g.shape or index_read(user):
        return False
    return fusible(user) or user.op.loop_reduction


def recomputable(n: Node, g: _Group, readers, group_of, roots) -> bool:
    """n is cheap, of a shape broadcasting to g's, and only g's elementwise members read it."""
    return (n.op.cheap and n not in roots and broadcasts_to(n.shape, g.shape)
            and all(group_of.get(u) is g and fusible(u) and not index_read(u) for u in readers))


def row_split(members):
    """(row reduction, epilogue) of a rows kernel's members (in order), or None: the epilogue is
    every other member, computed per element of the row after the reduction."""
    red = next((m for m in members if m.op.row_reduction), None)
    if red is None or len(members) == 1:
        return None
    return red, [m for m in members if m is not red]


def _kernel_reads(h: _Group, group_of) -> set:
    """The kernels whose values kernel h reads."""
    return {group_of[i] for m in h.members for i in m.inputs if i in group_of and group_of[i] is not h}


def _runs_after(stack, target: _Group, group_of, limit: int | None = None) -> bool:
    """Whether any kernel in stack runs after target: the kernels (not the nodes: a kernel holds
    nodes of several paths) they read, followed back to target. With a limit on the kernels
    visited, a search that reaches it answers True (the caller then keeps the kernels apart)."""
    seen = set()
    while stack:
        h = stack.pop()
        if h is target:
            return True
        if h.id not in seen:
            seen.add(h.id)
            if limit is not None and len(seen) > limit:
                return True
            stack.extend(_kernel_reads(h, group_of))
    return False


def _row_reduction(g: _Group):
    """g's row reduction when g is one (a logsumexp over trailing axes, kept dims), else None."""
    if len(g.members) != 1:
        return None
    (red,) = g.members
    if not red.op.row_reduction or not red.attrs.get("keepdims", True):
        return None
    r = red.inputs[0].ndim
    axes = tuple(red.attrs["axes"])
    return red if axes and axes == tuple(range(r - len(axes), r)) else None


def _fuse_rows(groups, group_of, users, roots):
    """Merge each elementwise kernel into the row reduction it reads, when nothing it reads is
    computed after the reduction by another kernel (that would make a cycle)."""
    def depends(xs, target) -> bool:
        """Whether a kernel computing any of xs runs after target's."""
        return _runs_after([group_of[x] for x in xs if x in group_of], target, group_of)

    used, gone = set(), set()  # row reductions that took a kernel; kernels merged away
    for g in groups:
        if g.reduce is not None or not all(fusible(m) and not index_read(m) for m in g.members):
            continue
        ext = {i for m in g.members for i in reads(m) if i not in g.members}
        for red in ext:
            h = group_of.get(red)
            if h is None or h.id in used or _row_reduction(h) is not red or red.inputs[0].shape != g.shape:
                continue
            # merged, the two kernels must not wait on each other through a third
            if depends(ext - {red}, h) or depends(red.inputs, g):
                continue
            members = set(g.members) | {red}
            outs = {m for m in members if m in roots or any(u not in members for u in users[m])}
            if len(ext - {red}) + len(outs) > MAX_BUFFERS:
                continue
            h.members.update(g.members)
            h.shape = g.shape
            for m in g.members:
                group_of[m] = h
            used.add(h.id)
            gone.add(g.id)
            break
    return [g for g in groups if g.id not in gone]


def _plain_loop(g: _Group) -> bool:
    """g is an elementwise loop kernel with no reduction (not a transpose alone)."""
    return g.reduce is None and all(fusible(m) for m in g.members) and not all(index_read(m) for m in g.members)


def _merge_loops(groups, group_of, users, roots):
    """Merge elementwise loop kernels of one iteration shape that read a common input, or where one
    reads the other's outputs (siblings the consumer-driven walk left apart: an LSTM's gate
    gradients), when no third kernel runs between them and no index read in the merged loop reads
    a value computed in it. One loop then reads the shared input once, and one call replaces two."""
    def depends(start, target) -> bool:
        """Whether a kernel start reads runs after target through some third kernel."""
        return _runs_after([h for h in _kernel_reads(start, group_of) if h is not target], target, group_of,
                           MERGE_SEARCH)

    def external(members):
        ext = {i for m in members for i in reads(m) if i not in members}
        outs = {m for m in members if m in roots or any(u not in members for u in users[m])}
        return ext, outs

    gone = set()
    by_input: dict[Node, list] = {}
    def shared(i) -> bool:  # an input worth reading once: an array, not a scalar or a constant
        return i.op.name != "constant" and any(d != 1 for d in i.shape)

    for g in groups:
        if _plain_loop(g):
            for i in {i for m in g.members for i in reads(m) if i not in g.members}:
                if shared(i):
                    by_input.setdefault(i, []).append(g)
    for g in groups:
        if g.id in gone or not _plain_loop(g):
            continue
        while True:
            ext, _ = external(g.members)
            partners = {h.id: h for i in ext for h in by_input.get(i, ()) if h is not g} | \
                {group_of[i].id: group_of[i] for i in ext if i in group_of and group_of[i] is not g}
            merged = None
            tries = 0
            for h in sorted(partners.values(), key=lambda h: h.id):
                if h.id in gone or not _plain_loop(h) or h.shape != g.shape:
                    continue
                tries += 1
                if tries > MERGE_TRIES:
                    break
                members = set(g.members) | set(h.members)
                if len(members) > MAX_OPS:
                    continue
                e, o = external(members)
                if len(e) + len(o) > MAX_BUFFERS:
                    continue
                if any(index_read(m) and m.inputs[0] in members for m in members):
                    continue  # an index read's input is never computed in its loop
                if depends(g, h) or depends(h, g):
                    continue
                merged = h
                break
            if merged is None:
                break
            g.members.update(merged.members)
            for m in merged.members:
                group_of[m] = g
            gone.add(merged.id)
            for i in external(g.members)[0]:
                if shared(i):
                    by_input.setdefault(i, []).append(g)
    return [g for g in groups if g.id not in gone]


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

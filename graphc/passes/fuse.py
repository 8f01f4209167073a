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

Whether a join or a merge would make a cycle is asked of a topological order of the kernels kept
up to date as the walk adds edges (_Order): each question searches only the kernels between the two
in that order, so the pass stays about linear in the graph's size.
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


class _Order:
    """A topological order of the kernels while the walk builds them, kept as edges are added
    (Pearce and Kelly's dynamic topological sort): whether an edge would close a cycle is a search
    over the kernels between its ends in the order only, not over everything downstream. An edge
    a -> b: b reads a value a computes."""

    def __init__(self):
        self.pos: dict[int, int] = {}
        self.succ: dict[int, set] = {}
        self.pred: dict[int, set] = {}
        self.first = 0

    def add_source(self, g: _Group, readers) -> None:
        """A new kernel, read by readers: the walk goes from the outputs back, so a new kernel reads
        no kernel yet and goes first."""
        self.first -= 1
        self.pos[g.id] = self.first
        self.succ[g.id], self.pred[g.id] = set(), set()
        self._link(g, readers)

    def _link(self, g: _Group, readers) -> None:
        for h in readers:
            self.succ[g.id].add(h)
            self.pred[h.id].add(g)

    def add_edges(self, g: _Group, readers) -> bool:
        """Add g -> h for each h in readers and keep the order; False (adding none of them) where
        one would close a cycle (h already runs before g, through other kernels)."""
        pos = self.pos
        for h in readers:
            if pos[h.id] > pos[g.id] or h in self.succ[g.id]:
                continue
            ahead = self._search(h, g, self.succ, lambda k: pos[k.id] < pos[g.id])
            if ahead is None:
                return False
            behind = self._search(g, None, self.pred, lambda k, lo=pos[h.id]: pos[k.id] > lo)
            # the kernels that must run before g, then those after h, in their old slots
            moved = sorted(behind, key=lambda k: pos[k.id]) + sorted(ahead, key=lambda k: pos[k.id])
            for k, p in zip(moved, sorted(pos[k.id] for k in moved)):
                pos[k.id] = p
        self._link(g, readers)
        return True

    def between(self, a: _Group, b: _Group, limit: int | None = None) -> bool:
        """Whether a third kernel must run between a and b (a path of two or more edges joins
        them): merged, they would wait on each other. A search that visits more than limit
        kernels answers True."""
        pos = self.pos
        if pos[a.id] > pos[b.id]:
            a, b = b, a
        end = pos[b.id]
        stack = [k for k in self.succ[a.id] if k is not b and pos[k.id] < end]
        seen = {k.id for k in stack}
        while stack:
            for k in self.succ[stack.pop().id]:
                if k is b:
                    return True
                if k.id not in seen and pos[k.id] < end:
                    seen.add(k.id)
                    if limit is not None and len(seen) > limit:
                        return True
                    stack.append(k)
        return False

    def merge(self, keep: _Group, gone: _Group) -> None:
        """keep takes gone's members (no third kernel runs between them): its edges become keep's,
        and the kernels between them in the order that run after the first of the two move after
        keep, those that run before the second move before it."""
        pos = self.pos
        lo, hi = sorted((keep, gone), key=lambda k: pos[k.id])
        after = self._search(lo, None, self.succ, lambda k: pos[k.id] < pos[hi.id])
        before = self._search(hi, None, self.pred, lambda k: pos[k.id] > pos[lo.id])
        after = sorted((k for k in after if k is not lo), key=lambda k: pos[k.id])
        before = sorted((k for k in before if k is not hi), key=lambda k: pos[k.id])
        # the slots of all of them, one left free: those before only move earlier, those after later
        slots = sorted([pos[k.id] for k in before + after] + [pos[lo.id], pos[hi.id]])
        slots = slots[:len(before) + 1] + slots[len(slots) - len(after):]
        for k, p in zip(before + [keep] + after, slots):
            pos[k.id] = p
        for h in self.succ.pop(gone.id):
            self.pred[h.id].discard(gone)
            if h is not keep:
                self.pred[h.id].add(keep)
                self.succ[keep.id].add(h)
        for h in self.pred.pop(gone.id):
            self.succ[h.id].discard(gone)
            if h is not keep:
                self.succ[h.id].add(keep)
                self.pred[keep.id].add(h)
        del pos[gone.id]

    @staticmethod
    def _search(start: _Group, stop, edges, inside):
        """The kernels reachable from start along edges through kernels where inside holds; None
        if stop is reached."""
        seen, stack = {start.id: start}, [start]
        while stack:
            for k in edges[stack.pop().id]:
                if k is stop:
                    return None
                if k.id not in seen and inside(k):
                    seen[k.id] = k
                    stack.append(k)
        return list(seen.values())


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

    order = _Order()

    def new_group(n):
        g = _Group(len(groups), n)
        groups.append(g)
        group_of[n] = g
        order.add_source(g, {group_of[u] for u in users[n]})

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
            if len(g.members) >= MAX_OPS or buffers_with(g, n) > MAX_BUFFERS:
                continue
            # n in g: g's kernel runs before those of n's other readers; not if one runs before g
            if not order.add_edges(g, {group_of[u] for u in users[n]} - {g}):
                continue
            target = g
            break
        if target is None:
            new_group(n)
        else:
            target.members[n] = None
            group_of[n] = target

    if rows:
        groups = _fuse_rows(groups, group_of, users, roots, order)
    groups = _merge_loops(groups, group_of, users, roots, order)
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


def _fuse_rows(groups, group_of, users, roots, order: _Order):
    """Merge each elementwise kernel into the row reduction it reads, when nothing it reads is
    computed after the reduction by another kernel (that would make a cycle)."""
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
            if order.between(g, h):
                continue
            members = set(g.members) | {red}
            outs = {m for m in members if m in roots or any(u not in members for u in users[m])}
            if len(ext - {red}) + len(outs) > MAX_BUFFERS:
                continue
            h.members.update(g.members)
            h.shape = g.shape
            for m in g.members:
                group_of[m] = h
            order.merge(h, g)
            used.add(h.id)
            gone.add(g.id)
            break
    return [g for g in groups if g.id not in gone]


def _plain_loop(g: _Group) -> bool:
    """g is an elementwise loop kernel with no reduction (not a transpose alone)."""
    return g.reduce is None and all(fusible(m) for m in g.members) and not all(index_read(m) for m in g.members)


def _merge_loops(groups, group_of, users, roots, order: _Order):
    """Merge elementwise loop kernels of one iteration shape that read a common input, or where one
    reads the other's outputs (siblings the consumer-driven walk left apart: an LSTM's gate
    gradients), when no third kernel runs between them and no index read in the merged loop reads
    a value computed in it. One loop then reads the shared input once, and one call replaces two."""
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
                if order.between(g, h, MERGE_SEARCH):
                    continue
                merged = h
                break
            if merged is None:
                break
            g.members.update(merged.members)
            for m in merged.members:
                group_of[m] = g
            order.merge(g, merged)
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

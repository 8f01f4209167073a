"""Graph: what passes transform (feeds, fetches, parameter updates), and the rebuild helper."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Node, make_node, new_uid, toposort


@dataclass(frozen=True)
class Graph:
    """A program's graph: inputs (placeholders), outputs, (parameter, new value) updates.

    groups, set by the fusion pass: lists of nodes that one kernel computes.
    """

    inputs: tuple
    outputs: tuple
    updates: tuple
    groups: tuple | None = field(default=None)

    @property
    def roots(self) -> list[Node]:
        return list(self.outputs) + [u for _, u in self.updates]

    @property
    def nodes(self) -> list[Node]:
        """Every node the outputs and updates need, inputs first (dead code is simply not here)."""
        return toposort(self.roots)


def _adopt(new: Node, since: int, old: Node) -> None:
    """Nodes a rewrite built (serial > since) keep the user's line and origin of the node they replace."""
    stack = [new]
    while stack:
        n = stack.pop()
        if n.serial <= since:
            continue
        object.__setattr__(n, "loc", old.loc)
        if n.origin is None and old.origin is not None:
            object.__setattr__(n, "origin", old.origin)
        stack.extend(n.inputs)


def rewrite(graph: Graph, rule) -> Graph:
    """Rebuild the graph bottom-up, replacing each node by rule(node) until rule returns None.

    Rebuilding goes through the constructor cache, so equal subgraphs merge (CSE) as a side effect.
    """
    mapping: dict[Node, Node] = {}
    for n in graph.nodes:
        if n.is_leaf:
            mapping[n] = n
            continue
        ins = tuple(mapping[i] for i in n.inputs)
        new = n
        if any(a is not b for a, b in zip(ins, n.inputs)):
            since = new_uid()
            new = make_node(n.op, ins, dict(n.attrs), loc=n.loc)
            _adopt(new, since, n)
        for _ in range(16):  # a rule may enable another on the node it returns
            since = new_uid()
            r = rule(new)
            if r is None or r is new:
                break
            _adopt(r, since, new)
            new = r
        mapping[n] = new
    return Graph(graph.inputs, tuple(mapping[o] for o in graph.outputs),
                 tuple((p, mapping[u]) for p, u in graph.updates))

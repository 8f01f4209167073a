"""The verifier: checks a graph's invariants; run between passes in tests (GRAPHC_VERIFY=1)."""
from __future__ import annotations

from ..errors import CompileError
from .graph import Graph


def verify(graph: Graph, before: Graph | None = None, after_pass: str = "") -> Graph:
    """Raise CompileError if a node's shape/dtype disagree with its rule, or if the outputs' and
    updates' shapes/dtypes changed from `before`."""
    where = f" after pass {after_pass!r}" if after_pass else ""
    seen = set()
    for n in graph.nodes:
        if any(i not in seen for i in n.inputs):
            raise CompileError(f"{n.label} is ordered before one of its inputs{where}", n.loc)
        seen.add(n)
        if not n.is_leaf:
            shape, dtype = n.op.infer(n.inputs, n.attrs)
            if tuple(shape) != n.shape or dtype != n.dtype:
                raise CompileError(f"{n.label} ({n.op.name}) has {n.shape} {n.dtype} but its rule gives "
                                   f"{tuple(shape)} {dtype}{where}", n.loc)
    if before is not None:
        for old, new in zip(before.roots, graph.roots):
            if old.shape != new.shape or old.dtype != new.dtype:
                raise CompileError(f"{old.label} changed from {old.shape} {old.dtype} to {new.shape} "
                                   f"{new.dtype}{where}", old.loc)
    if graph.groups is not None:
        grouped = [m for g in graph.groups for m in g]
        if len(grouped) != len(set(grouped)):
            raise CompileError(f"a node is in two kernels{where}")
        missing = [n for n in graph.nodes if not n.is_leaf and n not in set(grouped)]
        if missing:
            raise CompileError(f"{missing[0].label} is in no kernel{where}", missing[0].loc)
    return graph

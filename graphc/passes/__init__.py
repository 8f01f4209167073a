"""Graph passes: pure Graph -> Graph functions, run in the order `pipeline` lists them."""
from __future__ import annotations

import os

from ..protocol import NO_FUSION, Fusion
from .fuse import fuse
from .graph import Graph, rewrite
from .masks import fold_mask
from .simplify import join_unslices, simplify_node
from .stabilize import stabilize_node
from .verify import verify


def stabilize(graph: Graph) -> Graph:
    """log(softmax) -> log_softmax, log(sigmoid) -> -softplus(-x), and friends."""
    return rewrite(graph, stabilize_node)


def simplify(graph: Graph) -> Graph:
    """Constant folding and algebraic identities (x*1, x+0, -(-x), x**2 -> x*x, ...)."""
    return rewrite(graph, simplify_node)


def masks(graph: Graph) -> Graph:
    """log_softmax(where(causal triangle, s * c, -inf)) -> causal_log_softmax(s, scale=c, diag)."""
    return rewrite(graph, fold_mask)


def merge(graph: Graph) -> Graph:
    """Dead-code elimination and CSE: rebuild from the roots through the constructor cache."""
    return rewrite(graph, lambda n: None)


def unfused(graph: Graph) -> Graph:
    """Every computing node a kernel of its own (compile(..., optimize=False) on compiled backends)."""
    nodes = graph.nodes
    return Graph(graph.inputs, graph.outputs, graph.updates, tuple((n,) for n in nodes if not n.is_leaf))


def pipeline(fusion: Fusion = NO_FUSION) -> list:
    """The passes in order: (name, function); the fusion pass as the backend's policy asks."""
    passes = [("stabilize", stabilize), ("simplify", simplify), ("unslices", join_unslices), ("masks", masks),
              ("merge", merge)]
    if fusion.kernels:
        passes.append(("fuse", lambda g: fuse(g, rows=fusion.rows)))
    return passes


def optimize(graph: Graph, fusion: Fusion = NO_FUSION, check: bool | None = None) -> Graph:
    """Run the pipeline; with check (default: GRAPHC_VERIFY=1) verify the graph after every pass."""
    check = os.environ.get("GRAPHC_VERIFY") == "1" if check is None else check
    original = graph
    for name, p in pipeline(fusion):
        graph = p(graph)
        if check:
            verify(graph, original, name)
    return graph


__all__ = ["Graph", "rewrite", "fuse", "verify", "stabilize", "simplify", "join_unslices", "masks", "merge",
           "pipeline", "optimize", "unfused"]

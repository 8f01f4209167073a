"""compile(): check a graph's inputs, outputs and updates, and hand it to a backend."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .errors import CompileError, format_loc
from .ir import Node, toposort, user_location
from .ops.base import fmt_shape
from .ops.build import as_node
from .ops.mode import TrainSwitch
from .ops.mode import resolve as resolve_switch
from .passes import Graph, rewrite, unfused
from .passes import optimize as run_passes
from .protocol import NO_FUSION, Fusion
from .schedule import make_kernels
from .staged import Staged, has_loops

# Backends by name, imported lazily (CUDA must not be imported unless asked for).
BACKENDS = {
    "numpy": "graphc.backends.numpy",
    "numba": "graphc.backends.numba",
    "cuda": "graphc.backends.cuda",
}


@dataclass
class Program:
    """What a backend compiles: feeds, fetches, parameter updates and every node in order.

    groups: the fused groups (tuples of nodes) for backends that generate code, and kernels the
    schedule made of them by the backend's fusion policy (graphc.schedule.Kernel: kind, inputs,
    outputs, iteration shape), which the backend builds and viz draws; source: the graph as the
    user built it, before the passes (for drawings and comparisons).
    """

    inputs: list[Node]
    outputs: list[Node]
    updates: list[tuple[Node, Node]]
    order: list[Node] = field(default_factory=list)
    groups: tuple | None = None
    source: Graph | None = None
    check_numerics: bool = False
    training: bool = False
    kernels: list | None = None

    @property
    def parameters(self) -> list[Node]:
        """Every parameter the program reads or writes, in graph order."""
        seen = {p: None for p in self.order if p.op.name == "parameter"}
        for p, _ in self.updates:
            seen.setdefault(p, None)
        return list(seen)


def get_backend(name: str):
    """The backend module registered under name."""
    if name not in BACKENDS:
        raise CompileError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    try:
        be = importlib.import_module(BACKENDS[name])
    except ImportError as e:
        raise CompileError(f"backend {name!r} cannot be loaded: {e}") from e
    if not (isinstance(getattr(be, "FUSION", None), Fusion) and callable(getattr(be, "build", None))):
        raise CompileError(f"backend {name!r} ({be.__name__}) does not declare FUSION (a "
                           "graphc.protocol.Fusion) and build(program)")
    return be


def _check_updates(updates, loc) -> list[tuple[Node, Node]]:
    if updates is None:
        return []
    pairs = list(updates.items()) if isinstance(updates, dict) else list(updates)
    out, seen = [], set()
    for pair in pairs:
        try:
            p, new = pair
        except (TypeError, ValueError):
            raise CompileError(f"updates must be (parameter, new_value) pairs, got {pair!r}", loc) from None
        if not isinstance(p, Node) or p.op.name != "parameter":
            raise CompileError(f"update target must be a parameter, got {p!r}", loc)
        if p in seen:
            raise CompileError(f"parameter {p.label} is updated twice", loc)
        seen.add(p)
        new = as_node(new, like=p)
        if len(new.shape) != len(p.shape) or any(a is not None and a != b for a, b in zip(new.shape, p.shape)):
            raise CompileError(f"update of parameter {p.label} {fmt_shape(p.shape)} has shape "
                               f"{fmt_shape(new.shape)}", new.loc or loc)
        if new.dtype != p.dtype:
            raise CompileError(f"update of parameter {p.label} ({p.dtype}) has dtype {new.dtype}; "
                               f"cast it with gc.cast(..., '{p.dtype}')", new.loc or loc)
        out.append((p, new))
    return out


def _default_updates(roots, explicit) -> list[tuple[Node, Node]]:
    """(parameter, default_update) for every parameter the roots (or those updates) reach that has
    one and no explicit update: batch norm's running statistics, dropout's random key."""
    out, seen = [], set(explicit)
    frontier = toposort(roots)
    while frontier:
        new = [(n, n.data.default_update) for n in frontier
               if n.op.name == "parameter" and n.data.default_update is not None and n not in seen]
        seen.update(p for p, _ in new)
        out += new
        frontier = toposort([u for _, u in new]) if new else []
    return out


def _resolve_mode(graph: Graph, training: bool) -> Graph:
    """The graph with every train_switch replaced by its training or inference input."""
    if not any(n.op is TrainSwitch for n in graph.nodes):
        return graph
    return rewrite(graph, lambda n: resolve_switch(n, training))


def compile(inputs, outputs, updates=None, backend: str = "numpy", *,  # noqa: A001 - the API's name
            training: bool | None = None, optimize: bool = True, check_numerics: bool = False):
    """Compile a graph into a callable Function: feeds in `inputs` order, fetches `outputs`.

    updates: (parameter, new_value) pairs (or a dict), applied in place after every output is
    computed; if the call fails, no parameter changes. training: True builds a training function
    (dropout on, batch norm on batch statistics, and every parameter's default update applied:
    running statistics, random keys); False an inference function (no dropout, running statistics,
    no default updates); None (default) means True when updates are given. optimize=False skips the
    graph passes (rewrites and fusion). check_numerics=True raises at the first kernel that produces
    a NaN or inf.
    """
    from .function import Function

    loc = user_location()
    single = not isinstance(outputs, (list, tuple))
    outs = [as_node(o) for o in ([outputs] if single else outputs)]
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    seen = set()
    for x in ins:
        if not isinstance(x, Node) or x.op.name != "placeholder":
            raise CompileError(f"inputs must be placeholders, got {x!r}", loc)
        if x in seen:
            raise CompileError(f"placeholder {x.label} is listed twice in inputs", loc)
        twin = next((y for y in seen if x.name and y.name == x.name), None)
        if twin is not None:  # feeding by keyword could not tell them apart
            raise CompileError(f"two input placeholders are named {x.name!r} (made at {format_loc(twin.loc)} "
                               f"and at {format_loc(x.loc)}); give them distinct names", loc)
        seen.add(x)
    ups = _check_updates(updates, loc)
    if training is None:
        training = bool(ups)
    if training:
        ups += _check_updates(_default_updates(outs + [u for _, u in ups], {p for p, _ in ups}), loc)
    source = _resolve_mode(Graph(tuple(ins), tuple(outs), tuple(ups)), training)
    missing = [n for n in source.nodes if n.op.name == "placeholder" and n not in seen]
    if missing:
        m = missing[0]
        raise CompileError(f"the graph needs placeholder {m.label} {fmt_shape(m.shape)} {m.dtype} "
                           f"(made at {format_loc(m.loc)}), which is not in inputs", loc)
    be = get_backend(backend)
    if has_loops(source):  # cut at its scans: parts and bodies compiled one by one, run by a host loop
        graph = run_passes(source, fusion=NO_FUSION) if optimize else source
        program = Program(ins, list(graph.outputs), list(graph.updates), graph.nodes, None, source,
                          check_numerics, training)
        return Function(program, Staged(graph, _builder(be, optimize, check_numerics, training)), backend, single)
    program = _program(source, be, optimize, check_numerics, training)
    return Function(program, be.build(program), backend, single)


def _program(graph: Graph, be, optimize: bool, check_numerics: bool, training: bool) -> Program:
    """The scan-free graph after the passes, and scheduled, as the backend compiles it."""
    return scheduled(graph, be.FUSION, optimize, check_numerics, training)


def scheduled(graph: Graph, fusion: Fusion, optimize: bool = True, check_numerics: bool = False,
              training: bool = False) -> Program:
    """The pipeline below the front end for a scan-free graph: passes (rewrites, then fusion by the
    policy), then the schedule (program.kernels) where the policy fuses into kernels."""
    source = graph
    graph = run_passes(graph, fusion=fusion) if optimize else (unfused(graph) if fusion.kernels else graph)
    program = Program(list(graph.inputs), list(graph.outputs), list(graph.updates), graph.nodes, graph.groups,
                      source, check_numerics, training)
    if fusion.kernels:
        program.kernels = make_kernels(program, fusion.batched_views)
    return program


def _builder(be, optimize: bool, check_numerics: bool, training: bool):
    """build(graph) -> an executable: what Staged compiles its parts and scan bodies with (a body
    in the mode of its program; a body holding a scan is staged in turn)."""
    def build(graph: Graph):
        graph = _resolve_mode(graph, training)
        if has_loops(graph):
            inner = run_passes(graph, fusion=NO_FUSION) if optimize else graph
            return Staged(inner, build)
        return be.build(_program(graph, be, optimize, check_numerics, training))
    return build

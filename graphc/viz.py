"""Graphviz drawings of every stage of a graph: forward, backward (with the derived gradient nodes
and the optimizer's updates) and optimized (each fused kernel a labelled cluster); render to files.

    dot = gc.to_dot(step, stage="optimized")    # a graphviz.Digraph; dot.source is the DOT text
    gc.render(dot, "step.svg")                  # needs Graphviz's `dot`; else writes step.dot
"""
from __future__ import annotations

import html
import linecache
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import GraphError
from .ir import Node, toposort, user_location
from .ops.base import fmt_shape
from .protocol import Fusion

STAGES = ("forward", "backward", "optimized")

# Fill colours by class. Leaves by their role; computing nodes by op kind; "update" is the
# optimizer's arithmetic (nodes that only feed parameter updates).
COLORS = {
    "placeholder": "#cfe2ff",
    "parameter": "#ffe08a",
    "constant": "#eeeeee",
    "elementwise": "#d8f3dc",
    "reduction": "#ffd6a5",
    "matmul": "#f4a6a6",
    "movement": "#e2e2f0",
    "random": "#e4c1f9",
    "mode": "#ffffff",
    "control": "#b8e0f6",
    "update": "#ffc8dd",
}
BACKWARD_PEN = "#1f4e9e"  # outline of nodes a gradient rule built
UPDATE_EDGE = "#c9184a"   # the assignment of a new value into its parameter
SHAPES = {"placeholder": "invhouse", "parameter": "box", "constant": "box", "reduction": "invtrapezium",
          "matmul": "box3d", "movement": "parallelogram", "random": "hexagon", "mode": "diamond",
          "control": "octagon"}


@dataclass
class _View:
    """What one drawing shows: nodes in order, each node's class, the kernels and the updates."""

    title: str
    nodes: list
    cls: dict            # node -> colour class
    backward: set        # nodes built by a gradient rule (drawn with a dashed blue outline)
    updates: list        # (parameter, new value)
    kernels: list | None = None
    names: dict = field(default_factory=dict)  # labels for unnamed nodes (derived gradients)
    outputs: list = field(default_factory=list)
    owner: dict = field(default_factory=dict)         # update-only node -> its update group
    update_group: dict = field(default_factory=dict)  # update index -> group (one per trained weight)
    group_label: dict = field(default_factory=dict)


def to_dot(obj, stage: str = "forward", *, collapse: bool = False, rankdir: str = "TB",
           edge_labels: bool = True, legend: bool = True, inline_scalars: bool = True, max_io: int = 6):
    """A graphviz.Digraph of a graph at one stage of the compiler.

    obj: a node, a list of nodes, a compiled Function, or a Trainer (its training step).
    stage: "forward" (the graph as built, gradients and updates left out), "backward" (forward plus
    the nodes gradient rules built, outlined dashed blue, and the optimizer's update arithmetic,
    pink, grouped per parameter and ending in a "p :=" assignment box), or "optimized" (after the
    passes; each kernel of a fusing backend a cluster labelled with its name, ops, inputs and outputs).
    For a loss node with no gradients yet, "backward" derives them for every trainable parameter.
    collapse=True draws each kernel as one box; rankdir "TB" (top to bottom) or "LR";
    inline_scalars=True draws a scalar constant beside each of its users instead of one shared
    node with edges across the drawing. Node ids are n<k>, k the node's index in topological order.
    """
    try:
        import graphviz  # noqa: F401 - checked here, used by draw()
    except ImportError as e:  # a core dependency; say how to get it rather than fail obscurely
        raise GraphError("gc.to_dot needs the graphviz Python package: pip install graphviz",
                         user_location()) from e
    if stage not in STAGES:
        raise GraphError(f"to_dot: stage must be one of {', '.join(STAGES)}, got {stage!r}", user_location())
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise GraphError(f"to_dot: rankdir must be TB, LR, BT or RL, got {rankdir!r}", user_location())
    return draw(_view(obj, stage), stage, collapse=collapse, rankdir=rankdir, edge_labels=edge_labels,
                legend=legend, inline_scalars=inline_scalars, max_io=max_io)


def draw(view: _View, stage: str, *, collapse: bool = False, rankdir: str = "TB", edge_labels: bool = True,
         legend: bool = True, inline_scalars: bool = True, max_io: int = 6):
    """The graphviz.Digraph of one view (to_dot's drawing; gc.explore draws the view it describes)."""
    import graphviz
    dot = graphviz.Digraph(name=f"graphc_{stage}")
    dot.attr(rankdir=rankdir, fontname="Helvetica", newrank="true", nodesep="0.25", ranksep="0.35")
    dot.attr("node", fontname="Helvetica", fontsize="10", style="filled", margin="0.08,0.04")
    dot.attr("edge", fontname="Helvetica", fontsize="8", color="#555555", arrowsize="0.6")
    ids = {n: f"n{k}" for k, n in enumerate(view.nodes)}
    kernels = view.kernels if view.kernels is not None else []
    members = {m: k for k in kernels for m in k.nodes}
    scalar = {n for n in view.nodes if inline_scalars and n.op.name == "constant" and n.shape == ()}
    where = {}  # node -> id of what draws it (itself, or its collapsed kernel)
    box_of = {}  # drawing id -> the graphviz (sub)graph it lives in, for the inline constants
    clusters = {}

    def container(name, **attrs):
        if name not in clusters:
            clusters[name] = graphviz.Digraph(name=name)
            clusters[name].attr(**attrs)
        return clusters[name]

    for n in view.nodes:
        if n in scalar:
            continue
        if n in members:
            k = members[n]
            kid = f"k{k.index}"
            if collapse:
                where[n] = kid
                continue
            c = container(f"cluster_{kid}", label="\\l".join(_kernel_head(k, max_io)) + "\\l",
                          labeljust="l", style="rounded,filled", fillcolor="#fafafa", color="#888888",
                          fontsize="9", tooltip=_esc(repr(k)), **{"class": f"kernel {k.kind}"})
        elif n in view.owner:
            g = view.owner[n]
            c = container(f"cluster_update{g}", label=_esc(view.group_label[g]), labeljust="l",
                          style="rounded,dashed", color=UPDATE_EDGE, fontcolor=UPDATE_EDGE, fontsize="9",
                          **{"class": "update"})
        else:
            c = dot
        c.node(ids[n], **_node_attrs(n, view))
        where[n] = ids[n]
        box_of[ids[n]] = c
    if collapse:
        for k in kernels:
            kid = f"k{k.index}"
            head = _kernel_head(k, max_io)
            body = "\\l".join([head[0], _esc("ops: " + " ".join(k.ops)), *head[1:]]) + "\\l"
            dot.node(kid, body, shape="box3d" if k.kind != "loop" else "box", fillcolor=_kernel_fill(k, view),
                     style="filled,dashed" if all(m in view.backward for m in k.nodes) else "filled",
                     tooltip=_esc(repr(k)), **{"class": f"kernel {k.kind}"})
            box_of[kid] = dot

    drawn = set()
    for n in view.nodes:
        if n not in where:
            continue
        b = where[n]
        for i in n.inputs:
            if i in scalar:
                cid = f"{ids[i]}_{b}"
                if cid not in drawn:
                    drawn.add(cid)
                    box_of[b].node(cid, **_node_attrs(i, view))
                    dot.edge(cid, b, arrowsize="0.4")
                continue
            a = where.get(i)
            if a is None or a == b or (a, b, i) in drawn:  # inside a collapsed kernel: one edge per value
                continue
            drawn.add((a, b, i))
            attrs = {"label": fmt_shape(i.shape)} if edge_labels and not i.op.tuple_valued else {}
            if n in view.backward and i not in view.backward:
                attrs["color"] = "#7d9bd1"  # the forward values the backward pass reads
            dot.edge(a, b, **attrs)
    # an assignment is drawn as a box "p :=" below the new value, not as an edge back up to p, which
    # would cross the whole drawing; the box sits in the parameter's update cluster when it has one
    for j, (p, new) in enumerate(view.updates):
        if new not in where and new not in scalar:
            continue
        g = view.update_group.get(j)
        c = clusters.get(f"cluster_update{g}", dot) if g is not None else dot
        if new in members and not collapse:  # beside the kernel that computes it
            c = clusters[f"cluster_k{members[new].index}"]
        c.node(f"a{j}", shape="box", style="filled,bold", fillcolor=COLORS["parameter"], color=UPDATE_EDGE,
               penwidth="2", label=_esc(f"{p.label} :=") + "\\n" + f"{fmt_shape(p.shape)} {p.dtype}",
               tooltip=_esc(f"the new value of parameter {p.label}, written after every output"),
               **{"class": "assign"})
        src = where.get(new, f"{ids.get(new)}_a{j}")
        if new in scalar:
            c.node(src, **_node_attrs(new, view))
        dot.edge(src, f"a{j}", label=":=", color=UPDATE_EDGE, fontcolor=UPDATE_EDGE, style="bold",
                 **{"class": "update"})
    for c in clusters.values():
        dot.subgraph(c)
    for n in view.nodes:
        if n.op.tuple_valued and n in where:
            _draw_body(dot, n, where[n], edge_labels)
    if legend:
        dot.attr(label=_legend(view, len(view.outputs)), labelloc="b", labeljust="l", fontsize="10")
    return dot


def _draw_body(dot, scan: Node, at: str, edge_labels: bool) -> None:
    """A scan's body as a dashed cluster beside it (a scan in the body gets one of its own), its
    placeholders named carry j, x j, or after the outer value they are fed."""
    import graphviz
    body = scan.attrs["body"]
    nodes = body.nodes
    names = {p: f"carry {j}" for j, p in enumerate(body.carry)}
    names.update({p: f"x {j}" for j, p in enumerate(body.xs)})
    caps = scan.inputs[len(body.carry) + len(body.xs):]
    names.update({p: f"captured {v.label}" for p, v in zip(body.captured, caps)})
    view = _classify(nodes, [], [], "")
    view.names.update(names)
    role: dict = {}
    for what, outs in (("new carry", body.carry_out), ("y", body.ys)):
        for j, n in enumerate(outs):
            role[n] = (role[n] + ", " if n in role else "→ ") + f"{what} {j}"
    ids = {n: f"{at}_b{k}" for k, n in enumerate(nodes)}
    sub = graphviz.Digraph(name=f"cluster_{at}_body")
    sub.attr(label=_esc(f"body of {scan.label}: {len(body.carry)} carries, {len(body.xs)} xs, "
                        f"{len(body.captured)} captured -> new carries, {len(body.ys)} ys"
                        f"{' (reverse)' if scan.attrs['reverse'] else ''}"), labeljust="l",
             style="rounded,dashed", color="#3a86b4", fontcolor="#1d4e6e", fontsize="9", **{"class": "scan-body"})
    for n in nodes:
        attrs = _node_attrs(n, view)
        if n in role:
            attrs["label"] += "\\n" + _esc(role[n])
            attrs["penwidth"] = "2.5"
        sub.node(ids[n], **attrs)
        for i in n.inputs:
            sub.edge(ids[i], ids[n], **({"label": fmt_shape(i.shape)} if edge_labels else {}))
        if n.op.tuple_valued:
            _draw_body(sub, n, ids[n], edge_labels)
    dot.subgraph(sub)
    first = body.inputs[0] if body.inputs else nodes[0]
    dot.edge(at, ids[first], style="dotted", color="#3a86b4", arrowhead="none", label="body",
             fontcolor="#3a86b4")


def to_networkx(obj, stage: str = "forward"):
    """A networkx.DiGraph of the graph at one stage (the nodes and kernels to_dot draws).

    Nodes are n<k> (k: topological position) with attributes op, label, shape, dtype, attrs, role
    (the drawing's class: input, parameter, forward, backward, update, ...), backward (built by a
    gradient rule) and, at the optimized stage of a fusing backend, kernel (its name). An edge
    input -> user carries position, the input's index among the user's inputs. The graph's
    attributes: title, outputs (ids) and updates ((parameter id, new value id) pairs)."""
    import networkx as nx
    if stage not in STAGES:
        raise GraphError(f"to_networkx: stage must be one of {', '.join(STAGES)}, got {stage!r}", user_location())
    view = _view(obj, stage)
    ids = {n: f"n{k}" for k, n in enumerate(view.nodes)}
    kernel_of = {m: k.name for k in (view.kernels or []) for m in k.nodes}
    g = nx.DiGraph(title=view.title, outputs=[ids[o] for o in view.outputs if o in ids],
                   updates=[(ids[p], ids[u]) for p, u in view.updates if p in ids and u in ids])
    for n in view.nodes:
        g.add_node(ids[n], op=n.op.name, label=view.names.get(n, n.label), shape=n.shape, dtype=str(n.dtype),
                   attrs=dict(n.attrs), role=view.cls.get(n), backward=n in view.backward,
                   **({"kernel": kernel_of[n]} if n in kernel_of else {}))
    for n in view.nodes:
        for pos, i in enumerate(n.inputs):
            if i in ids:
                g.add_edge(ids[i], ids[n], position=pos)
    return g


def _view(obj, stage) -> _View:
    from .compiler import scheduled
    from .function import Function
    from .passes import Graph
    from .train import Trainer

    if isinstance(obj, Trainer):
        obj = obj.step_function
    if isinstance(obj, Function):
        prog = obj.program
        if stage == "optimized":
            kernels = obj.kernels if prog.groups is not None else None  # the schedule its backend built
            note = f"{len(kernels)} kernels ({obj.backend})" if kernels is not None else \
                f"{obj.backend} backend: no fusion, one op at a time"
            view = _classify(list(prog.order), list(prog.outputs), list(prog.updates),
                             f"optimized graph, {note}", kernels)
            _group_updates(view, clusters=False)  # the kernels are the clusters here
            return view
        src = prog.source
        return _staged(list(src.outputs), list(src.updates), stage)
    roots = _as_roots(obj)
    if stage == "optimized":
        ins = tuple(n for n in toposort(roots) if n.op.name == "placeholder")
        # numba's policy (graphc.backends.numba.FUSION), without importing numba
        prog = scheduled(Graph(ins, tuple(roots), ()), Fusion(kernels=True, rows=True, batched_views=True))
        kernels = prog.kernels
        return _classify(list(prog.order), list(prog.outputs), [],
                         f"optimized graph, {len(kernels)} kernels (as the numba backend fuses it)", kernels)
    names = {}
    if stage == "backward" and not any(n.origin is not None for n in toposort(roots)):
        grads = _derive_gradients(roots[0], names)
        roots = roots + grads
    view = _staged(roots, [], stage)
    view.names.update(names)
    return view


def _as_roots(obj) -> list[Node]:
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    bad = [x for x in items if not isinstance(x, Node)]
    if bad or not items:
        raise GraphError(f"to_dot draws a node, a list of nodes, a compiled Function or a Trainer; got "
                         f"{type(bad[0]).__name__ if bad else 'an empty list'}", user_location())
    return items


def _derive_gradients(loss: Node, names: dict) -> list[Node]:
    from .autodiff import grad
    if loss.shape != () or loss.dtype.kind != "f":
        raise GraphError(f"to_dot(stage='backward') of {loss.label} {fmt_shape(loss.shape)} {loss.dtype}: "
                         "give a scalar floating-point loss, or the gradient nodes themselves",
                         user_location())
    params = [n for n in toposort([loss]) if n.op.name == "parameter" and n.dtype.kind == "f"
              and n.data.role == "weight"]
    if not params:
        raise GraphError(f"to_dot(stage='backward'): {loss.label} depends on no trainable parameter",
                         user_location())
    gs = grad(loss, params)
    for p, g in zip(params, gs):
        names.setdefault(g, f"d{p.label}")  # drawn names only: the cached nodes stay as they are
    return list(gs)


def _staged(outputs, updates, stage) -> _View:
    """The source graph split in forward, backward (origin set) and update nodes; one stage drawn."""
    order = toposort(outputs + [u for _, u in updates])
    backward = {n for n in order if n.origin is not None}
    need = _needed(outputs, backward)
    if stage == "forward":
        fwd_outs = [o for o in outputs if o not in backward] or \
            [i for b in backward for i in b.inputs if i not in backward]
        nodes = [n for n in toposort(fwd_outs) if n not in backward]
        return _classify(nodes, fwd_outs, [], f"forward graph, {len(nodes)} nodes")
    nb = sum(n in backward for n in order)
    nu = sum(n not in need and not n.is_leaf for n in order)
    title = f"backward graph: {len(order)} nodes ({nb} from gradient rules"
    title += f", {nu} in parameter updates)" if updates else ")"
    view = _classify(order, outputs, updates, title)
    _group_updates(view)
    return view


def _needed(outputs, backward) -> set:
    """Forward nodes: what the outputs need plus what backward nodes read; the rest feeds only updates."""
    return set(toposort([o for o in outputs if o not in backward] + [i for b in backward for i in b.inputs]))


def _group_updates(view: _View, clusters: bool = True) -> None:
    """Colour the update-only nodes and group them per trained weight: a weight's update and its
    optimizer slots' updates (Adam's m and v) read the same gradient node, so they share a group."""
    updates, backward = view.updates, view.backward
    need = _needed(view.outputs, backward)
    serves: dict = {}  # update-only node -> the updates that read it
    reads_grad = []
    for j, (_, new) in enumerate(updates):
        sub = toposort([new])
        grads = set()
        for n in sub:
            if n not in need and n not in backward:
                serves.setdefault(n, set()).add(j)
                grads.update(i for i in n.inputs if i in backward)
        reads_grad.append(frozenset(grads))
    first: dict = {}
    for j, key in enumerate(reads_grad):
        view.update_group[j] = first.setdefault(key if key else ("alone", j), j)
    for g in set(view.update_group.values()):
        ps = [updates[j][0] for j, h in view.update_group.items() if h == g]
        main = next((p for p in ps if getattr(p.data, "role", "weight") == "weight"), ps[0])
        rest = [p.label for p in ps if p is not main]
        view.group_label[g] = f"update of {main.label}" + (f" (and {', '.join(rest)})" if rest else "")
    for n, js in serves.items():
        if not n.is_leaf:
            view.cls[n] = "update"
        gs = {view.update_group[j] for j in js}
        if clusters and len(gs) == 1 and (not n.is_leaf or n.op.name == "parameter"):
            view.owner[n] = gs.pop()


def _classify(nodes, outputs, updates, title, kernels=None) -> _View:
    cls = {}
    for n in nodes:
        cls[n] = n.op.name if n.is_leaf and n.op.name in COLORS else n.op.kind
    backward = {n for n in nodes if n.origin is not None}
    return _View(title, nodes, cls, backward, list(updates), kernels, outputs=list(outputs))


def _node_attrs(n: Node, view: _View) -> dict:
    c = view.cls[n]
    lines = []
    if n.op.name == "constant":
        lines.append(_const_text(n))
    elif n.name or n in view.names:
        lines += [n.name or view.names[n], n.op.name]
    else:
        lines.append(n.op.name)
    if n.op.tuple_valued:
        lines.append(n.op.describe(n))
    else:
        if n.op.projection:
            lines.append(n.inputs[0].op.result_name(n.inputs[0], n.attrs["index"]))
        lines.append(f"{fmt_shape(n.shape)} {n.dtype}")
    style = ["filled"]
    attrs = {"shape": SHAPES.get(c, "ellipse" if c in ("elementwise", "update") else "box"),
             "fillcolor": COLORS.get(c, "#ffffff")}
    if c == "placeholder":
        style.append("bold")
    elif c == "parameter":
        attrs["peripheries"] = "2"
        role = getattr(n.data, "role", "weight")
        if role != "weight":
            lines.append(f"[{role}]")
    elif c == "constant":
        style.append("rounded")
        attrs["fontsize"] = "8"
    klass = [c]
    if any(o is n for o in view.outputs):
        k = next(j for j, o in enumerate(view.outputs) if o is n)
        lines.append(f"→ output {k}")
        attrs["penwidth"] = "2.5"
        klass.append("output")
    if n in view.backward:
        style.append("dashed")
        attrs.update(color=BACKWARD_PEN, fontcolor="#102a5c")
        attrs.setdefault("penwidth", "1.6")
        if n.origin is not None:
            lines.append(f"∇ of {n.origin.label}")
        klass.append("backward")
    attrs["style"] = ",".join(style)
    attrs["label"] = "\\n".join(_esc(s) for s in lines)  # DOT's own line break, not a raw newline
    attrs["class"] = " ".join(klass)
    if n.loc:  # the file's base name, so a drawing does not depend on where the checkout lives
        attrs["tooltip"] = _esc(f"{n.label}: built at {os.path.basename(n.loc[0])}:{n.loc[1]}"
                                f"{_line_text(n.loc)}")
    return attrs


def _line_text(loc) -> str:
    text = linecache.getline(loc[0], loc[1]).strip()
    return f": {text}" if text else ""


def _const_text(n: Node) -> str:
    v = np.asarray(n.data)
    if v.size == 1:
        x = v.reshape(()).item()
        return f"const {x:.4g}" if isinstance(x, float) else f"const {x}"
    return "constant"


def _kernel_head(k, max_io) -> list[str]:
    def names(nodes):
        items = [f"{n.label} {fmt_shape(n.shape)}" for n in nodes if n.op.name != "constant"]
        consts = sum(n.op.name == "constant" for n in nodes)
        if len(items) > max_io:
            items = items[:max_io] + [f"+{len(items) - max_io} more"]
        if consts:
            items.append(f"{consts} constant{'s' if consts > 1 else ''}")
        return ", ".join(items) or "-"

    ops = " ".join(dict.fromkeys(k.ops)) if len(k.ops) > 8 else " ".join(k.ops)
    head = [_esc(f"{k.name}  [{k.kind}, {len(k.nodes)} op{'s' if len(k.nodes) != 1 else ''}]")]
    if len(k.ops) > 8:
        head.append(_esc(f"fuses: {ops}"))
    head += [_esc(f"in: {names(k.inputs)}"), _esc(f"out: {names(k.outputs)}")]
    return head


def _kernel_fill(k, view) -> str:
    kinds = {view.cls.get(m, m.op.kind) for m in k.nodes}
    for c in ("matmul", "reduction", "random", "update", "elementwise", "movement"):
        if c in kinds:
            return COLORS[c]
    return "#ffffff"


def _legend(view: _View, n_outputs: int) -> str:
    present = set(view.cls.values())
    if view.kernels:
        present |= {m.op.kind for k in view.kernels for m in k.nodes}
    cells = [f'<td bgcolor="{COLORS[c]}" border="1">{c}</td>' for c in COLORS if c in present]
    extra = []
    if view.backward:
        extra.append(f'<td border="1" color="{BACKWARD_PEN}" style="dashed">backward (gradient rule)</td>')
    if view.updates:
        extra.append(f'<td border="0"><font color="{UPDATE_EDGE}">red edge: p := new value</font></td>')
    if view.kernels:
        extra.append('<td border="0">box = one fused kernel</td>')
    title = html.escape(f"{view.title}; {n_outputs} output{'s' if n_outputs != 1 else ''}")
    row = "".join(cells + extra)
    return (f'<<table border="0" cellspacing="3" cellpadding="3"><tr><td colspan="{len(cells) + len(extra)}" '
            f'align="left"><b>{title}</b></td></tr><tr>{row}</tr></table>>')


def _esc(s: str) -> str:
    """Text safe inside a DOT string (the graphviz package quotes, but backslashes are escapes)."""
    return str(s).replace("\\", "\\\\")


_HINT_SHOWN = False
INSTALL_HINT = ("graphc: Graphviz's `dot` program was not found, so the drawing was written as DOT text "
                "to {path}. Install Graphviz to render SVG/PNG/PDF (Debian/Ubuntu: apt-get install graphviz; "
                "macOS: brew install graphviz; conda: conda install graphviz), or paste the text into any "
                "Graphviz viewer.")


def render(dot, path, format: str | None = None) -> str:  # noqa: A002 - graphviz's own name
    """Draw dot (a Digraph from to_dot, or DOT text) to path as svg, png or pdf; returns the path written.

    format defaults to path's extension (svg when it has none). Without Graphviz's `dot` binary the
    DOT text is written beside it (path with extension .dot), a one-time hint says how to install
    Graphviz, and that .dot path is returned.
    """
    global _HINT_SHOWN
    import graphviz
    path = os.fspath(path)
    stem, ext = os.path.splitext(path)
    fmt = (format or ext.lstrip(".") or "svg").lower()
    if fmt not in ("svg", "png", "pdf", "dot", "gv"):
        raise GraphError(f"render: format must be svg, png, pdf or dot, got {fmt!r}", user_location())
    if not ext:
        path = f"{path}.{fmt}"
    source = dot.source if hasattr(dot, "source") else str(dot)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if fmt in ("dot", "gv"):
        return _write(path, source.encode())
    try:
        data = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        dot_path = _write(stem + ".dot", source.encode())
        if not _HINT_SHOWN:
            _HINT_SHOWN = True
            print(INSTALL_HINT.format(path=dot_path), file=sys.stderr)
        return dot_path
    except graphviz.CalledProcessError as e:
        raise GraphError(f"render: Graphviz's dot failed on this drawing: "
                         f"{(e.stderr or b'').decode(errors='replace').strip()[:500]}", user_location()) from None
    return _write(path, data)


def _write(path: str, data: bytes) -> str:
    """Write through a temporary file and rename, so a failed write never leaves half a drawing."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

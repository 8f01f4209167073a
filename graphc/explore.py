"""gc.explore: one self-contained HTML page per compiled function, to read what the compiler did.

    gc.explore(trainer, "step.html", feeds=(X[:64], y[:64]))

The page has a tab per stage (forward, backward, optimized). Each tab is Graphviz's SVG of
gc.to_dot, pan- and zoomable, with a search box. Clicking a node shows its op, shape, dtype and
attributes, the gradient rule or pass that made it, and the user's file:line with that line. Clicking
a kernel shows its fused ops, its inputs and outputs, its generated source and, with `feeds`, its
profile row (time, bytes, GB/s, GFLOP/s, share of the step); kernels are then coloured by their
share. A header sums it up: kernels, parameters, FLOPs and bytes per call, compile time. The page
needs no network. A URL fragment selects on load: #kernel=NAME, #node=ID&stage=STAGE, #search=TEXT.
"""
from __future__ import annotations

import json
import linecache
import os
import re
import tempfile

import numpy as np

from .errors import GraphError
from .ir import Node, toposort, user_location
from .ops.base import fmt_shape

__all__ = ["explore", "page_data"]


def explore(obj, path: str = "graph.html", feeds=None, *, repeat: int = 5) -> str:
    """Write the explorer page of obj (anything gc.to_dot takes: a Trainer, a compiled Function, an
    imported ONNX model's Function, nodes) to path; returns the path. feeds: the inputs of one call
    (a tuple/list in the function's input order, or a dict by name), to profile each kernel `repeat`
    times (parameters are not changed)."""
    from .explore_page import render_page
    text = render_page(page_data(obj, feeds, repeat=repeat))
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the page from anyone else
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _function(obj):
    from .function import Function
    from .train import Trainer
    if isinstance(obj, Trainer):
        obj = obj.step_function
    return obj if isinstance(obj, Function) else None


def page_data(obj, feeds=None, *, repeat: int = 5) -> dict:
    """What the page shows, as plain data: {"title", "summary", "stages": [{"name", "title", "svg",
    "dot", "nodes": {id: ...}, "kernels": {cluster id: ...}}]}."""
    from . import viz
    fn = _function(obj)
    if feeds is not None and fn is None:
        raise GraphError("explore: feeds profile a compiled function; pass a Function or a Trainer",
                         user_location())
    profile = {}
    if feeds is not None:
        args, kwargs = (([], dict(feeds)) if isinstance(feeds, dict) else
                        (list(feeds) if isinstance(feeds, (list, tuple)) else [feeds], {}))
        rows = fn.profile(*args, repeat=repeat, **kwargs)
        total = sum(r.seconds for r in rows) or 1e-30
        profile = {r.name: {"us": 1e6 * r.seconds, "bytes": r.bytes, "flops": r.flops, "gbps": r.gbps,
                            "gflops": r.gflops, "share": r.seconds / total} for r in rows}
    made_by = _made_by(obj, fn)
    stages = []
    for stage in viz.STAGES:
        try:
            view = viz._view(obj, stage)
        except GraphError:  # e.g. the backward of an output that is not a scalar loss
            continue
        dot = viz.draw(view, stage)
        svg = _svg(dot)
        ids = {n: f"n{k}" for k, n in enumerate(view.nodes)}
        nodes = {ids[n]: _node_info(n, view, made_by if stage == "optimized" else {}) for n in view.nodes}
        kernels = {}
        for k in view.kernels or []:
            kernels[f"cluster_k{k.index}"] = {
                "name": k.name, "kind": k.kind, "ops": list(k.ops), "nodes": [ids[m] for m in k.nodes if m in ids],
                "inputs": [_value(n) for n in k.inputs], "outputs": [_value(n) for n in k.outputs],
                "source": fn.kernel_source(k) if fn is not None else "",
                "profile": profile.get(k.name)}
        for j, (p, _) in enumerate(view.updates):
            nodes[f"a{j}"] = {"label": f"{p.label} :=", "op": "assign", "shape": fmt_shape(p.shape),
                              "dtype": str(p.dtype), "kind": "update", "attrs": {},
                              "made_by": "the optimizer: the parameter's new value, written after every output",
                              "loc": _loc(p)}
        stages.append({"name": stage, "title": view.title, "svg": svg, "dot": None if svg else dot.source,
                       "nodes": nodes, "kernels": kernels})
    if not stages:
        raise GraphError("explore: nothing to draw", user_location())
    return {"title": _title(obj, fn), "summary": _summary(fn, profile), "stages": stages}


def _svg(dot) -> str | None:
    """Graphviz's SVG of dot, without the XML prolog (inlined in the page); None without `dot`."""
    try:
        text = dot.pipe(format="svg").decode("utf-8")
    except Exception:  # noqa: BLE001 - Graphviz's binary missing or failing: the page says so
        return None
    return text[text.index("<svg"):] if "<svg" in text else None


def _title(obj, fn) -> str:
    if fn is not None:
        return f"{fn!r}"
    return f"graph of {len(obj) if isinstance(obj, (list, tuple)) else 1} output(s)"


def _made_by(obj, fn) -> dict:
    """Node -> the pass after which it first appears, replaying the pipeline on the source graph."""
    from .compiler import get_backend
    from .passes import Graph, pipeline
    from .protocol import Fusion
    if fn is not None:
        graph, fusion = fn.program.source, get_backend(fn.backend).FUSION
    else:
        roots = list(obj) if isinstance(obj, (list, tuple)) else [obj]
        if not all(isinstance(r, Node) for r in roots):
            return {}
        ins = tuple(n for n in toposort(roots) if n.op.name == "placeholder")
        graph, fusion = Graph(ins, tuple(roots), ()), Fusion(kernels=True, rows=True)
    if graph is None:
        return {}
    seen, made = set(graph.nodes), {}
    for name, p in pipeline(fusion):
        graph = p(graph)
        for n in graph.nodes:
            if n not in seen:
                made[n] = name
                seen.add(n)
    return made


def _value(n: Node) -> dict:
    return {"label": n.label, "shape": fmt_shape(n.shape), "dtype": str(n.dtype)}


def _loc(n: Node) -> dict | None:
    if not n.loc:
        return None
    file, line = n.loc[0], n.loc[1]
    return {"file": os.path.basename(file), "path": file, "line": line,
            "code": linecache.getline(file, line).rstrip()}


def _attr_text(v) -> str:
    if isinstance(v, np.ndarray):
        return f"array {fmt_shape(v.shape)} {v.dtype}"
    text = repr(v)
    return text if len(text) <= 160 else text[:157] + "..."


def _node_info(n: Node, view, made_by: dict) -> dict:
    if n.origin is not None:
        rule = f"the gradient rule of {n.origin.op.name} ({n.origin.op.__name__}.grad), for {n.origin.label}"
    elif n in made_by:
        rule = f"the {made_by[n]} pass"
    elif n.is_leaf:
        rule = f"a {n.op.name}"
    else:
        rule = "the graph as built"
    info = {"label": view.names.get(n, n.label), "op": n.op.name,
            "shape": fmt_shape(n.shape), "dtype": str(n.dtype), "kind": view.cls.get(n, n.op.kind),
            "attrs": {k: _attr_text(v) for k, v in n.attrs.items()}, "made_by": rule, "loc": _loc(n)}
    if n.op.name == "parameter":
        info["role"] = getattr(n.data, "role", "weight")
    if n.op.name == "constant" and np.asarray(n.data).size <= 8:
        info["value"] = re.sub(r"\s+", " ", np.array2string(np.asarray(n.data), precision=6))
    return info


def _summary(fn, profile: dict) -> dict:
    out = {"backend": None, "kernels": None, "parameters": None, "parameter_elements": None,
           "flops_per_call": None, "bytes_per_call": None, "seconds_per_call": None, "compile_seconds": None}
    if fn is None:
        return out
    weights = [p for p in fn.program.parameters if getattr(p.data, "role", "weight") == "weight"]
    out.update(backend=fn.backend, kernels=len(fn.kernels), parameters=len(weights),
               parameter_elements=int(sum(int(np.prod(p.shape, dtype=np.int64)) for p in weights)),
               compile_seconds=fn.cache_info().get("compile_seconds"))
    if profile:
        out.update(flops_per_call=int(sum(r["flops"] for r in profile.values())),
                   bytes_per_call=int(sum(r["bytes"] for r in profile.values())),
                   seconds_per_call=sum(r["us"] for r in profile.values()) / 1e6)
    return out


def data_json(data: dict) -> str:
    """data as JSON safe inside a <script> element."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")

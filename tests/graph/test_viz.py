"""gc.to_dot and gc.render on graphs (no backend): node, edge and cluster counts per stage, styles,
derived gradients, the optimized stage's kernels, rendering with and without Graphviz's `dot`."""
from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import graphc as gc
from graphc.passes import Graph, optimize
from graphc.schedule import make_kernels

NODE = re.compile(r"^\t+(n\d+) \[", re.M)
EDGE = re.compile(r"^\t+(\S+) -> (\S+)", re.M)


def node_ids(src):
    return NODE.findall(src)


def classes(src, name):
    """Statements whose class attribute lists `name`."""
    return [line for line in src.splitlines() if re.search(r'class="?[^"\]]*\b' + name + r'\b', line)]


def mlp():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 5), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.normal(size=(5, 4)).astype(np.float32), name="W1")
    b1 = gc.parameter(np.zeros(4, np.float32), name="b1")
    W2 = gc.parameter(rng.normal(size=(4, 3)).astype(np.float32), name="W2")
    h = gc.relu(x @ W1 + b1)
    loss = gc.cross_entropy(h @ W2, y)
    return x, y, [W1, b1, W2], loss


def test_forward_stage_draws_every_node_once_with_its_edges():
    x, y, params, loss = mlp()
    order = gc.toposort([loss])
    src = gc.to_dot(loss, "forward", inline_scalars=False).source
    assert sorted(node_ids(src)) == sorted(f"n{k}" for k in range(len(order)))
    edges = {(i, n) for n in order for i in n.inputs}
    assert len(EDGE.findall(src)) == len(edges)
    assert len(classes(src, "placeholder")) == 2 and len(classes(src, "parameter")) == 3
    assert len(classes(src, "matmul")) == 2
    assert not classes(src, "backward") and "cluster" not in src
    # labels: op, shape, dtype; edges carry the shape of the value
    assert 'label="matmul\\n(None, 4) float32"' in src
    assert 'label="(None, 5)"' in src
    assert len(classes(src, "output")) == 1


def test_scalar_constants_are_drawn_beside_each_user():
    x = gc.placeholder((3,), name="x")
    out = (x * 2.0) + (gc.exp(x) * 2.0)
    src = gc.to_dot(out, "forward").source
    const = [ln for ln in src.splitlines() if "const 2" in ln]
    assert len(const) == 2  # one copy per user, no edge across the drawing
    assert len(gc.to_dot(out, "forward", inline_scalars=False).source.split("const 2")) == 2


def test_backward_stage_derives_and_marks_the_gradient_nodes():
    x, y, params, loss = mlp()
    src = gc.to_dot(loss, "backward", inline_scalars=False).source
    grads = gc.grad(loss, params)  # the constructor cache gives back the nodes to_dot drew
    order = gc.toposort([loss] + grads)
    derived = [n for n in order if n.origin is not None]
    assert len(node_ids(src)) == len(order)
    assert len(classes(src, "backward")) == len(derived) > 10
    for p in params:
        assert f'label="d{p.label}\\n' in src  # the gradient outputs are named after their parameter
    assert "∇ of" in src
    # the forward stage of the same nodes leaves out every derived node and what only they read
    fwd = gc.to_dot([loss] + grads, "forward", inline_scalars=False).source
    assert not classes(fwd, "backward")
    assert len(node_ids(fwd)) == len(gc.toposort([loss]))


def test_accumulated_cotangents_belong_to_the_backward_graph():
    x = gc.placeholder((3,), "float64", name="x")
    w = gc.parameter(np.ones(3), name="w")
    loss = gc.sum(gc.tanh(w * x) * w)  # w used twice: its cotangent is a sum of two parts
    (g,) = gc.grad(loss, [w])
    assert g.op.name == "add" and g.origin is w


def test_backward_stage_needs_a_scalar_loss_or_gradients():
    x = gc.placeholder((3,), name="x")
    with pytest.raises(gc.GraphError, match="scalar floating-point loss"):
        gc.to_dot(x * 2.0, "backward")
    with pytest.raises(gc.GraphError, match="no trainable parameter"):
        gc.to_dot(gc.sum(x), "backward")
    with pytest.raises(gc.GraphError, match="stage must be one of"):
        gc.to_dot(x, "fused")
    with pytest.raises(gc.GraphError, match="rankdir"):
        gc.to_dot(x, rankdir="up")
    with pytest.raises(gc.GraphError, match="draws a node"):
        gc.to_dot("x")


def test_optimized_stage_of_nodes_draws_the_fused_kernels():
    x, y, params, loss = mlp()
    grads = gc.grad(loss, params)
    roots = [loss] + grads
    ins = tuple(n for n in gc.toposort(roots) if n.op.name == "placeholder")
    g = optimize(Graph(ins, tuple(roots), ()), fusion=gc.protocol.Fusion(kernels=True))
    from graphc.compiler import Program
    kernels = make_kernels(Program(list(ins), list(g.outputs), [], g.nodes, g.groups))
    dot = gc.to_dot(roots, "optimized", inline_scalars=False)
    src = dot.source
    assert src.count("subgraph cluster_k") == len(kernels) > 3
    assert len(node_ids(src)) == len(g.nodes)
    for k in kernels:  # each cluster is labelled with the kernel's name, its inputs and outputs
        assert k.name in src
    assert "in: " in src and "out: " in src
    assert len(classes(src, "backward")) > 0  # gradient nodes keep their origin through the passes
    collapsed = gc.to_dot(roots, "optimized", collapse=True).source
    assert "cluster_k" not in collapsed
    assert len(re.findall(r"^\t+k\d+ \[", collapsed, re.M)) == len(kernels)
    assert "ops: " in collapsed


def test_rankdir_and_edge_labels_options():
    x, y, params, loss = mlp()
    src = gc.to_dot(loss, rankdir="LR", edge_labels=False, legend=False).source
    assert "rankdir=LR" in src
    assert 'label="(None, 5)"' not in src
    assert "<table" not in src


HAVE_DOT = shutil.which("dot") is not None


@pytest.mark.skipif(not HAVE_DOT and not os.environ.get("CI"), reason="Graphviz's dot is not installed")
def test_render_svg_png_pdf(tmp_path):
    assert HAVE_DOT, "make installs Graphviz in CI"
    x, y, params, loss = mlp()
    dot = gc.to_dot(loss, "backward")
    svg = gc.render(dot, tmp_path / "g.svg")
    root = ET.parse(svg).getroot()  # well-formed SVG
    assert root.tag.endswith("svg")
    text = open(svg, encoding="utf-8").read()
    assert 'class="node placeholder' in text and "backward" in text
    png = gc.render(dot, tmp_path / "g", format="png")
    assert png.endswith("g.png") and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    pdf = gc.render(dot.source, tmp_path / "g.pdf")  # DOT text works too
    assert open(pdf, "rb").read(5) == b"%PDF-"
    assert sorted(os.listdir(tmp_path)) == ["g.pdf", "g.png", "g.svg"]  # no temporary files left


def test_render_without_dot_writes_dot_text_and_says_how_once(tmp_path, monkeypatch, capsys):
    import graphc.viz as viz
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` anywhere
    monkeypatch.setattr(viz, "_HINT_SHOWN", False)
    x, y, params, loss = mlp()
    dot = gc.to_dot(loss)
    out = gc.render(dot, tmp_path / "g.svg")
    assert out == str(tmp_path / "g.dot")
    assert open(out).read() == dot.source
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "Traceback" not in err
    assert gc.render(dot, tmp_path / "h.png").endswith("h.dot")
    assert capsys.readouterr().err == ""  # said once
    with pytest.raises(gc.GraphError, match="format must be"):
        gc.render(dot, tmp_path / "g.jpg")


def test_to_networkx_exports_each_stage():
    import networkx as nx
    x = gc.placeholder((None, 3), name="x")
    w = gc.parameter(np.ones((3, 2), np.float32), name="w")
    loss = gc.mean(gc.tanh(x @ w) * 2)
    step = gc.compile([x], loss, updates=gc.optim.SGD(0.1).updates(loss, [w]), backend="numpy")
    fwd = gc.to_networkx(step, "forward")
    assert nx.is_directed_acyclic_graph(fwd)
    ops = nx.get_node_attributes(fwd, "op")
    assert {"placeholder", "parameter", "matmul", "tanh", "mul", "sum"} <= set(ops.values())
    mm = next(k for k, v in ops.items() if v == "matmul")
    assert sorted(fwd.in_edges(mm, data="position"), key=lambda e: e[2])[0][2] == 0
    assert fwd.nodes[mm]["shape"] == (None, 2) and fwd.graph["outputs"]
    back = gc.to_networkx(step, "backward")
    assert any(back.nodes[n]["backward"] for n in back) and back.graph["updates"]
    assert len(back) > len(fwd)
    opt = gc.to_networkx(gc.sum(gc.tanh(x) * 2 + 1), "optimized")  # the numba policy: kernels
    kernels = set(nx.get_node_attributes(opt, "kernel").values())
    assert len(kernels) == 1
    with pytest.raises(gc.GraphError, match="stage must be one of"):
        gc.to_networkx(step, "kernels")

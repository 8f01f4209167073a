"""gc.explore: the page's data on the digits MLP step and the CNN (every kernel with its source and
profile row, every node with the user's line, shares summing to 1), and the page itself in headless
chromium (a kernel selected by the URL fragment shows its source; no script error)."""
from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from graphc.explore import page_data

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import cnn_digits  # noqa: E402
import mlp_digits  # noqa: E402
from datasets import digits  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def mlp(data):
    train = data[0]
    trainer = mlp_digits.build("numba", hidden=(32, 16))
    return trainer, (train[0][:64], train[1][:64])


def _stage(page, name):
    return next(s for s in page["stages"] if s["name"] == name)


def _check_page(page, fn):
    assert [s["name"] for s in page["stages"]] == ["forward", "backward", "optimized"]
    opt = _stage(page, "optimized")
    # every kernel the function runs, with the source of the function it calls and a profile row
    run = [k for k in fn.kernels if k.kind != "view"]
    by_name = {k["name"]: k for k in opt["kernels"].values()}
    assert {k.name for k in run} <= set(by_name)
    for k in run:
        info = by_name[k.name]
        assert re.search(r"^def k\d+_\w+\(", info["source"], re.M), k.name
        assert info["ops"] == list(k.ops) and len(info["outputs"]) == len(k.outputs)
        assert info["profile"]["us"] > 0 and info["profile"]["bytes"] > 0
    shares = [k["profile"]["share"] for k in by_name.values() if k["profile"]]
    assert len(shares) == len(run) and abs(sum(shares) - 1) < 1e-9
    # every node the user's code built names its line, with that line's text
    for st in page["stages"]:
        for nid, n in st["nodes"].items():
            if n["op"] in ("constant", "assign") or not nid.startswith("n"):
                continue
            assert n["loc"] is not None and n["loc"]["line"] > 0 and n["loc"]["code"].strip(), (st["name"], n)
            assert n["made_by"], n
    back = _stage(page, "backward")["nodes"].values()
    assert any(n["made_by"].startswith("the gradient rule of matmul (MatMul.grad)") for n in back)
    s = page["summary"]
    assert s["backend"] == "numba" and s["kernels"] == len(fn.kernels) and s["compile_seconds"] >= 0
    assert s["flops_per_call"] == sum(k["profile"]["flops"] for k in by_name.values() if k["profile"])
    assert s["parameter_elements"] == sum(int(np.prod(p.shape)) for p in fn.program.parameters
                                          if p.data.role == "weight")


def test_the_mlp_steps_page_has_every_kernel_node_and_profile_row(mlp):
    trainer, feeds = mlp
    page = page_data(trainer, feeds, repeat=2)
    _check_page(page, trainer.train_step)
    # the user's lines: the model's layers are in examples/mlp_digits.py
    files = {n["loc"]["file"] for n in _stage(page, "forward")["nodes"].values() if n["loc"]}
    assert "mlp_digits.py" in files
    svg = _stage(page, "optimized")["svg"]
    if shutil.which("dot"):
        assert svg.startswith("<svg") and "cluster_k0" in svg
    else:  # the page shows the DOT text instead
        assert svg is None and "cluster_k0" in _stage(page, "optimized")["dot"]


def test_the_cnns_page(data):
    """The digits CNN's inference function (its training step compiles ~100 kernels: the MLP's
    covers the training stages): convolutions as im2col kernels, each with source and profile."""
    trainer = cnn_digits.build("numpy", width=4)
    x = trainer.inputs[0]
    fn = gc.compile([x], trainer._predict_node, backend="numba", training=False)
    page = page_data(fn, (cnn_digits.images(data[0][0][:16]),), repeat=1)
    opt = _stage(page, "optimized")
    run = [k for k in fn.kernels if k.kind != "view"]
    by_name = {k["name"]: k for k in opt["kernels"].values()}
    assert all(re.search(r"^def k\d+_", by_name[k.name]["source"], re.M) and by_name[k.name]["profile"]
               for k in run)
    assert abs(sum(by_name[k.name]["profile"]["share"] for k in run) - 1) < 1e-9
    assert {"im2col", "max_pool2d"} & {op for k in run for op in k.ops}
    assert all(n["loc"]["file"] == "cnn_digits.py" for n in _stage(page, "forward")["nodes"].values()
               if n["op"] == "im2col" or n["op"] == "matmul")


def test_nodes_alone_and_passes_named():
    x = gc.placeholder((None, 6), name="x")
    y = gc.log(gc.sigmoid(x * 2.0))  # the stabilize pass makes this -softplus(-x)
    page = page_data(y)
    assert [s["name"] for s in page["stages"]] == ["forward", "optimized"]  # no scalar loss: no backward
    opt = _stage(page, "optimized")
    made = {n["op"]: n["made_by"] for n in opt["nodes"].values()}
    assert made["softplus"] == "the stabilize pass" and made["mul"] == "the graph as built", made
    assert all(k["source"] == "" for k in opt["kernels"].values())  # nothing compiled
    assert page["summary"]["kernels"] is None
    with pytest.raises(gc.GraphError, match="feeds profile a compiled function"):
        page_data(y, feeds=[np.zeros((2, 6), np.float32)])


def test_explore_writes_one_self_contained_page(mlp, tmp_path):
    trainer, feeds = mlp
    path = gc.explore(trainer, tmp_path / "mlp.html", feeds=feeds, repeat=1)
    text = pathlib.Path(path).read_text()
    assert "<script src" not in text and "<link" not in text and "http://" not in text.replace(
        "http://www.w3.org", "")  # nothing fetched: scripts, styles and SVGs are inline
    blob = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', text, re.S).group(1)
    page = json.loads(blob.replace("<\\/", "</"))
    assert {s["name"] for s in page["stages"]} == {"forward", "backward", "optimized"}
    out = subprocess.run([sys.executable, "-m", "graphc.cli", "viz", str(ROOT / "examples" / "xor.py"), "-o",
                          str(tmp_path / "xor.html")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "graph-data" in (tmp_path / "xor.html").read_text()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `make test` installs Debian's where apt-get can")
def test_the_page_in_headless_chromium(mlp, tmp_path):
    trainer, feeds = mlp
    path = pathlib.Path(gc.explore(trainer, tmp_path / "mlp.html", feeds=feeds, repeat=1))
    kernel = max((k for k in trainer.train_step.kernels if k.kind == "matmul"), key=lambda k: k.index)
    fn = re.search(r"^def (\w+)\(", trainer.train_step.kernel_source(kernel), re.M).group(1)
    url = f"{path.as_uri()}#kernel={kernel.name}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000",
             "--window-size=1400,900", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = re.search(r"<body[^>]*>", html).group(0)  # the script marks it: ready, and any error
    assert 'data-ready="1"' in body and "data-errors" not in body, (body, re.search(r'id="errors"[^<]*', html))
    assert re.search(rf'id="kernel-title">{kernel.name}\b', html)
    source = re.search(r'<pre class="code" id="source">(.*?)</pre>', html, re.S).group(1)
    assert re.search(rf'<span class="fn">{fn}</span>', source), source[:500]  # the function, highlighted
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    shot = tmp_path / "kernel.png"
    run = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", url], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", run.stderr[-2000:]


def test_an_imported_onnx_models_page():
    pytest.importorskip("onnx")
    model = gc.onnx.load(str(ROOT / "tests" / "data" / "onnx" / "digits_cnn.onnx"))
    fn = gc.compile(model.inputs, model.outputs, backend="numba")
    x = np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32)
    page = page_data(fn, (x,), repeat=1)
    assert {"forward", "optimized"} <= {s["name"] for s in page["stages"]}
    opt = _stage(page, "optimized")
    run = [k for k in fn.kernels if k.kind != "view"]
    assert {k["name"] for k in opt["kernels"].values() if k["source"] and k["profile"]} >= {k.name for k in run}
    ops = {n["op"] for n in _stage(page, "forward")["nodes"].values()}
    assert "im2col" in ops or "conv2d" in ops, ops

"""gc.to_dot of compiled training steps: every stage of a Function and a Trainer, kernels as clusters,
updates as assignments grouped per trained weight."""
from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc

NODE = re.compile(r"^\t+(n\d+) \[", re.M)


def classes(src, name):
    return [line for line in src.splitlines() if re.search(r'class="?[^"\]]*\b' + name + r'\b', line)]


@pytest.fixture(scope="module", params=["numpy", "numba"])
def step(request):
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 6), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.normal(size=(6, 5)).astype(np.float32), name="W1")
    b1 = gc.parameter(np.zeros(5, np.float32), name="b1")
    W2 = gc.parameter(rng.normal(size=(5, 3)).astype(np.float32), name="W2")
    loss = gc.cross_entropy(gc.relu(x @ W1 + b1) @ W2, y)
    opt = gc.optim.Adam(1e-2)
    return gc.compile([x, y], loss, updates=opt.updates(loss, [W1, b1, W2]), backend=request.param)


def test_forward_stage_of_a_step_is_the_graph_as_built(step):
    src = gc.to_dot(step, "forward", inline_scalars=False).source
    loss = step.program.source.outputs[0]
    assert len(NODE.findall(src)) == len(gc.toposort([loss]))
    assert not classes(src, "backward") and not classes(src, "update") and "assign" not in src


def test_backward_stage_of_a_step_shows_gradients_and_updates(step):
    src = gc.to_dot(step, "backward", inline_scalars=False).source
    source = step.program.source
    order = gc.toposort(list(source.roots))
    assert len(NODE.findall(src)) == len(order)
    assert len(classes(src, "backward")) == sum(n.origin is not None for n in order)
    # Adam: the weight, its m and v, and the shared step counter are each assigned
    assert len(classes(src, "assign")) == len(source.updates) == 3 * 3 + 1
    assert src.count('label=":="') == len(source.updates)
    # one update cluster per trained weight, holding its slots' assignments too; the step counter,
    # which every weight's bias correction reads, stays outside them
    assert src.count("subgraph cluster_update") == 3
    assert "update of W1 (and " in src
    assert len(classes(src, "update")) > 9


def test_optimized_stage_of_a_step_draws_its_kernels(step):
    src = gc.to_dot(step, "optimized", inline_scalars=False).source
    prog = step.program
    assert len(NODE.findall(src)) == len(prog.order)
    if step.backend == "numba":
        kernels = step.kernels
        assert src.count("subgraph cluster_k") == len(kernels)
        for k in kernels:
            assert f"{k.name}  [{k.kind}" in src
        # each weight's Adam update is one kernel: its three assignments sit in that kernel's cluster
        collapsed = gc.to_dot(step, "optimized", collapse=True).source
        assert len(re.findall(r"^\t+k\d+ \[", collapsed, re.M)) == len(kernels)
        assert f"{len(kernels)} kernels (numba)" in src
    else:
        assert "cluster" not in src and "no fusion" in src
    assert len(classes(src, "assign")) == len(prog.updates)


def test_a_trainer_draws_its_training_step():
    x = gc.placeholder((None, 4), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    model = gc.nn.Sequential(gc.nn.Linear(4, 3, seed=0))
    tr = gc.Trainer([x, y], gc.cross_entropy(model(x), y), gc.optim.SGD(0.1), model=model, backend="numpy")
    a = gc.to_dot(tr, "backward").source
    b = gc.to_dot(tr.train_step, "backward").source
    assert a == b and "0.W :=" in a

"""graphc against PyTorch's recorded training runs (tools/torch_reference.py writes tests/data/).

The torch model's initial state_dict is loaded with load_torch_state_dict (names and layouts
mapped, no torch import), the same batches and optimizer settings are used, and every step's loss
must match torch's."""
from __future__ import annotations

import ast
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import graphc as gc

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "examples"))  # examples import their shared modules
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
    return mod


def _recorded(name):
    rec = np.load(ROOT / "tests" / "data" / f"{name}.npz")
    init = {k[len("init/"):]: rec[k] for k in rec.files if k.startswith("init/")}
    return rec, ast.literal_eval(str(rec["config"])), init


def _models():
    gpt, lstm = _example("char_gpt"), _example("char_lstm")
    return {
        "torch_gpt": lambda c: gpt.GPT(c["vocab"], c["d_model"], c["heads"], c["layers"], c["context"], c["d_ff"]),
        "torch_lstm": lambda c: lstm.LSTMLM(c["vocab"], c["embed"], c["hidden"], c["layers"]),
    }, gpt.loss_of


@pytest.mark.parametrize("name", ["torch_gpt", "torch_lstm"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_matches_torch_over_20_steps(name, backend):
    rec, c, init = _recorded(name)
    models, loss_of = _models()
    model = models[name](c)
    model.load_torch_state_dict(init)
    x = gc.placeholder((c["batch"], c["context"]), "int64", name="x")
    y = gc.placeholder((c["batch"], c["context"]), "int64", name="y")
    logits = model(x)
    loss = loss_of(logits, y)
    opt = gc.optim.AdamW(c["lr"], betas=c["betas"], weight_decay=c["weight_decay"])
    step = gc.compile([x, y], loss, opt.updates(loss, clip_norm=c["clip"]), backend=backend)
    schedule = gc.optim.cosine(c["lr"], c["steps"], c["lr"] / 10, c["warmup"])
    losses = []
    for s in range(c["steps"]):
        opt.lr = schedule(s)
        losses.append(float(step(rec["xs"][s], rec["ys"][s])))
    np.testing.assert_allclose(losses, rec["losses"], rtol=2e-6)
    assert losses[-1] < losses[0] - 0.1  # it learns
    final = gc.compile([x], logits, backend=backend, training=False)(rec["xs"][0])
    np.testing.assert_allclose(final, rec["final_logits"], rtol=1e-5, atol=1e-5)
    # and back: torch's names and layouts again
    out = model.torch_state_dict()
    assert sorted(out) == sorted(init)
    assert all(out[k].shape == init[k].shape for k in init)

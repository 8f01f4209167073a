"""The real-model workloads W6-W11 (conv2d, LSTM, GPT, LeNet, LSTM LM, imported ONNX models):
graphc's side and torch's (run under the peers' Python)."""
from __future__ import annotations

import functools
import os
import sys
import time

from .measure import SEED, THREADS, median, timeit

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------- W6 conv2d, W7 LSTM (issue 9)
# W6: conv2d 3x3, padding 1, x (64, 16, 16, 16) float32, w (32, 16, 3, 3), bias, relu: forward and the
# gradients for x, w and b of sum(relu(conv)). W7: the training step of an LSTM (input 32, hidden
# 128) over 8 steps (one gc.scan), batch 64, a linear head and MSE, Adam. Peers: PyTorch CPU eager (its
# oneDNN convolution and fused LSTM), run by this script under the peers' Python.
W6_X, W6_W = (64, 16, 16, 16), (32, 16, 3, 3)
W6_FLOP = 3 * 2 * W6_X[0] * W6_W[0] * W6_X[2] * W6_X[3] * W6_W[1] * 9   # forward + 2 backward GEMMs
W7_T, W7_N, W7_I, W7_H = 8, 64, 32, 128


def w6_data():
    import numpy as np
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal(W6_X, dtype=np.float32), rng.standard_normal(W6_W, dtype=np.float32) * 0.1,
            np.zeros(W6_W[0], np.float32))


def run_w6(backend):
    import graphc as gc
    X, Wv, Bv = w6_data()
    x = gc.placeholder((None,) + W6_X[1:], name="x")
    w, b = gc.parameter(Wv, name="w"), gc.parameter(Bv, name="b")
    loss = gc.sum(gc.relu(gc.conv2d(x, w, b, padding=1)))
    t0 = time.perf_counter()
    f = gc.compile([x], [loss] + gc.grad(loss, [x, w, b]), backend=backend)
    out = f(X)
    first = time.perf_counter() - t0
    t = median(timeit(lambda: f(X), 2, 7))
    return [{"system": f"graphc {backend}", "ms": 1e3 * t, "gflops": W6_FLOP / t / 1e9, "first_call_s": first,
             "check": float(out[0]), "note": f"{len(getattr(f, 'kernels', []))} kernels; im2col + batched GEMM"}]


def w7_data():
    import numpy as np
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((W7_N, W7_T, W7_I), dtype=np.float32),
            rng.standard_normal((W7_N, 1), dtype=np.float32))


def run_w7(backend):
    import graphc as gc
    X, Y = w7_data()
    lstm = gc.nn.LSTM(W7_I, W7_H, batch_first=True, seed=SEED)
    head = gc.nn.Linear(W7_H, 1, seed=SEED + 1)
    x = gc.placeholder((None, W7_T, W7_I), name="x")
    y = gc.placeholder((None, 1), name="y")
    _, (h, _) = lstm(x)
    loss = gc.mse(head(h[-1]), y)
    t0 = time.perf_counter()
    step = gc.compile([x, y], loss, updates=gc.optim.Adam(1e-3).updates(loss), backend=backend)
    first_loss = float(step(X, Y))
    first = time.perf_counter() - t0
    t = median(timeit(lambda: step(X, Y), 3, 15))
    return [{"system": f"graphc {backend}", "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first,
             "check": first_loss, "note": f"{len(getattr(step, 'kernels', []))} kernels, one scan"}]


# ------------------------------------------------------------- W8 GPT training step (issue 24)
# examples/char_gpt.py's step: 2 pre-norm transformer blocks, d_model 128, 4 heads, d_ff 512,
# context 64, batch 32, vocabulary 101, AdamW, gradients clipped to 1. Peer: the same model in
# torch eager (tools/torch_reference.py's twin, its own initial weights).
W8 = dict(vocab=101, d_model=128, heads=4, layers=2, context=64, d_ff=512, batch=32, seed=SEED)


def w8_data():
    import numpy as np
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, W8["vocab"], (W8["batch"], W8["context"]))
    return x, np.roll(x, -1, axis=1)


def run_w8(backend):
    import graphc as gc
    sys.path.insert(0, os.path.join(TOOLS, "..", "examples"))
    import char_gpt
    X, Y = w8_data()
    model = char_gpt.GPT(W8["vocab"], W8["d_model"], W8["heads"], W8["layers"], W8["context"], W8["d_ff"], SEED)
    x = gc.placeholder(X.shape, "int64", name="x")
    y = gc.placeholder(Y.shape, "int64", name="y")
    loss = char_gpt.loss_of(model(x), y)
    t0 = time.perf_counter()
    step = gc.compile([x, y], loss, gc.optim.AdamW(1e-3).updates(loss, clip_norm=1.0), backend=backend)
    first_loss = float(step(X, Y))
    first = time.perf_counter() - t0
    t = median(timeit(lambda: step(X, Y), 3, 10))
    return [{"system": f"graphc {backend}", "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first,
             "check": first_loss, "note": f"{len(getattr(step, 'kernels', []))} kernels"}]


def _torch_step(loss_of, opt, clip=None, params=None):
    """One torch training step as a function: loss_of() -> the loss, its gradients (clipped to norm
    clip over params when given), opt's update."""
    import torch

    def step():
        loss = loss_of()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return loss.detach()
    return step


def _torch_lm_step(model, opt, X, Y, vocab, clip=None):
    """One torch training step of a language model on (X, Y) token ids, returned as a function."""
    import torch
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    return _torch_step(lambda: torch.nn.functional.cross_entropy(model(tx).reshape(-1, vocab), ty.reshape(-1)),
                       opt, clip, list(model.parameters()))


def _torch_system(compiled: bool) -> str:
    return "torch.compile" if compiled else "torch CPU eager"


def _torch_model(model, compiled: bool):
    """The model as the step calls it: torch.compile(model) (inductor, default mode: forward and
    backward compiled, the optimizer eager), or the model itself."""
    import torch
    return torch.compile(model) if compiled else model


def _torch_w8(compiled=False):
    import torch
    sys.path.insert(0, TOOLS)
    from torch_reference import torch_gpt
    X, Y = w8_data()
    model = torch_gpt(W8)
    step = _torch_lm_step(_torch_model(model, compiled), torch.optim.AdamW(model.parameters(), lr=1e-3), X, Y,
                          W8["vocab"], clip=1.0)
    t0 = time.perf_counter()
    first = float(step())
    first_s = time.perf_counter() - t0
    t = median(timeit(step, 3, 10))
    return [{"system": _torch_system(compiled), "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first_s,
             "check": first, "note": f"torch {torch.__version__}; its own initial weights"}]


def run_torch(workload, compiled=False):
    import torch
    torch.set_num_threads(THREADS)
    if workload == "w8":
        return _torch_w8(compiled)
    if workload == "w9":
        return _torch_w9(compiled)
    if workload.startswith("w10-"):
        return _torch_w10(int(workload[4:]), compiled)
    if workload == "w6":
        X, Wv, Bv = w6_data()
        w = torch.tensor(Wv, requires_grad=True)
        b = torch.tensor(Bv, requires_grad=True)

        def call():
            x = torch.tensor(X, requires_grad=True)
            loss = torch.relu(torch.nn.functional.conv2d(x, w, b, padding=1)).sum()
            gx, gw, gb = torch.autograd.grad(loss, [x, w, b])
            return loss
        out = call()
        t = median(timeit(call, 2, 7))
        return [{"system": "torch CPU eager", "ms": 1e3 * t, "gflops": W6_FLOP / t / 1e9, "check": float(out),
                 "note": f"torch {torch.__version__}"}]
    X, Y = w7_data()
    torch.manual_seed(SEED)
    lstm = torch.nn.LSTM(W7_I, W7_H, batch_first=True)
    head = torch.nn.Linear(W7_H, 1)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    step = _torch_step(lambda: torch.nn.functional.mse_loss(head(lstm(tx)[1][0][0]), ty), opt)
    first = float(step())
    t = median(timeit(step, 3, 15))
    return [{"system": "torch CPU eager", "ms": 1e3 * t, "steps_per_s": 1 / t, "check": first,
             "note": f"torch {torch.__version__} (fused LSTM); weights differ from graphc's, same shapes"}]


# ------------------------------------------------------------- W9 LeNet CNN training step (issue 25)
# conv 5x5 1 -> 16, relu, max pool 2, conv 5x5 16 -> 32, relu, max pool 2, linear 512 -> 10, cross-
# entropy, SGD (lr 0.05, momentum 0.9), batch 64 of scikit-learn's 8x8 digits upscaled bilinearly to
# 28x28 (as torch's interpolate, align_corners=False). Same initial weights on both sides (drawn
# here, torch's default init bounds), so the first losses agree. Peer: the same model in torch eager.
W9 = dict(batch=64, lr=0.05, momentum=0.9, seed=SEED)
W9_FLOP = 3 * 2 * W9["batch"] * (16 * 24 * 24 * 25 + 32 * 8 * 8 * 16 * 25 + 512 * 10)  # fwd + 2 bwd GEMMs


def w9_data():
    """(images (64, 1, 28, 28) float32, labels (64,) int64, torch-named initial weights)."""
    import numpy as np
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X, y = (X[:W9["batch"]] / 16.0).reshape(-1, 8, 8), y[:W9["batch"]].astype(np.int64)
    src = (np.arange(28) + 0.5) * 8 / 28 - 0.5  # bilinear, align_corners=False
    lo = np.clip(np.floor(src).astype(int), 0, 7)
    hi, frac = np.minimum(lo + 1, 7), np.clip(src - lo, 0, 1)
    rows = X[:, lo] * (1 - frac)[None, :, None] + X[:, hi] * frac[None, :, None]
    img = rows[:, :, lo] * (1 - frac) + rows[:, :, hi] * frac
    rng = np.random.default_rng(W9["seed"])

    def uniform(shape, fan_in):
        b = 1 / np.sqrt(fan_in)
        return rng.uniform(-b, b, shape).astype(np.float32)
    w = {"0.weight": uniform((16, 1, 5, 5), 25), "0.bias": uniform((16,), 25),
         "3.weight": uniform((32, 16, 5, 5), 400), "3.bias": uniform((32,), 400),
         "7.weight": uniform((10, 512), 512), "7.bias": uniform((10,), 512)}
    return img[:, None].astype(np.float32), y, w


def run_w9(backend):
    import graphc as gc
    X, Y, weights = w9_data()
    model = gc.nn.Sequential(gc.nn.Conv2d(1, 16, 5), gc.nn.ReLU(), gc.nn.MaxPool2d(2), gc.nn.Conv2d(16, 32, 5),
                             gc.nn.ReLU(), gc.nn.MaxPool2d(2), gc.nn.Flatten(), gc.nn.Linear(512, 10))
    model.load_torch_state_dict(weights)
    x = gc.placeholder((None, 1, 28, 28), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    loss = gc.cross_entropy(model(x), y)
    t0 = time.perf_counter()
    step = gc.compile([x, y], loss, gc.optim.SGD(W9["lr"], momentum=W9["momentum"]).updates(loss), backend=backend)
    first_loss = float(step(X, Y))
    first = time.perf_counter() - t0
    t = median(timeit(lambda: step(X, Y), 3, 20))
    return [{"system": f"graphc {backend}", "ms": 1e3 * t, "steps_per_s": 1 / t, "gflops": W9_FLOP / t / 1e9,
             "first_call_s": first, "check": first_loss, "note": f"{len(getattr(step, 'kernels', []))} kernels"}]


def _torch_w9(compiled=False):
    import torch
    X, Y, weights = w9_data()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(512, 10))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    opt = torch.optim.SGD(model.parameters(), lr=W9["lr"], momentum=W9["momentum"])
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    fwd = _torch_model(model, compiled)
    step = _torch_step(lambda: torch.nn.functional.cross_entropy(fwd(tx), ty), opt)
    t0 = time.perf_counter()
    first = float(step())
    first_s = time.perf_counter() - t0
    t = median(timeit(step, 3, 20))
    return [{"system": _torch_system(compiled), "ms": 1e3 * t, "steps_per_s": 1 / t, "gflops": W9_FLOP / t / 1e9,
             "first_call_s": first_s, "check": first,
             "note": f"torch {torch.__version__} (oneDNN convolutions); the same initial weights"}]


# ------------------------------------------------- W10 LSTM language model step, cold (issues 24, 25)
# examples/char_lstm.py's model: vocabulary 100, embedding 64, a 2-layer LSTM of 128 (one gc.scan
# per layer), a linear head, cross-entropy over every position, Adam; batch 32, for T = 8, 32 and
# 128. Each T in a fresh process with empty caches: first_call_s is the cold compile (plus the first
# step). Peer: the same model in torch eager (its fused LSTM), its own initial weights.
W10 = dict(vocab=100, embed=64, hidden=128, layers=2, batch=32, seed=SEED)
W10_T = (8, 32, 128)


def w10_data(T):
    import numpy as np
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, W10["vocab"], (W10["batch"], T))
    return x, np.roll(x, -1, axis=1)


def run_w10(backend, T):
    import graphc as gc
    sys.path.insert(0, os.path.join(TOOLS, "..", "examples"))
    import char_lstm
    X, Y = w10_data(T)
    model = char_lstm.LSTMLM(W10["vocab"], W10["embed"], W10["hidden"], W10["layers"], SEED)
    x = gc.placeholder(X.shape, "int64", name="x")
    y = gc.placeholder(Y.shape, "int64", name="y")
    loss = gc.cross_entropy(gc.reshape(model(x), (-1, W10["vocab"])), gc.reshape(y, (-1,)))
    t0 = time.perf_counter()
    step = gc.compile([x, y], loss, gc.optim.Adam(1e-3).updates(loss), backend=backend)
    first_loss = float(step(X, Y))
    first = time.perf_counter() - t0
    t = median(timeit(lambda: step(X, Y), 3, 10))
    return [{"system": f"graphc {backend}", "T": T, "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first,
             "check": first_loss, "note": f"{len(getattr(step, 'kernels', []))} kernels, one scan per layer"}]


def _torch_w10(T, compiled=False):
    import torch
    sys.path.insert(0, TOOLS)
    from torch_reference import torch_lstm_lm
    X, Y = w10_data(T)
    model = torch_lstm_lm(W10)
    step = _torch_lm_step(_torch_model(model, compiled), torch.optim.Adam(model.parameters(), lr=1e-3), X, Y,
                          W10["vocab"])
    t0 = time.perf_counter()
    first = float(step())
    first_s = time.perf_counter() - t0
    t = median(timeit(step, 3, 10))
    return [{"system": _torch_system(compiled), "T": T, "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first_s,
             "check": first, "note": f"torch {torch.__version__} (fused LSTM); its own initial weights"}]

# ------------------------------------------------- W11 imported ONNX models beside onnxruntime (issue 26)
# tests/data/onnx's digits MLP (torch's TorchScript exporter) and CNN (its dynamo exporter), batch
# 256, inference: graphc (gc.onnx.load, then its backend) beside onnxruntime's CPU provider on the
# same file, threads pinned alike, in one process.
W11_BATCH = 256


def run_w11(backend):
    import numpy as np
    import onnxruntime as ort

    import graphc as gc
    data = os.path.join(TOOLS, "..", "tests", "data", "onnx")
    rng = np.random.default_rng(SEED)
    out = []
    for name, shape in (("digits_mlp", (W11_BATCH, 64)), ("digits_cnn", (W11_BATCH, 1, 8, 8))):
        path = os.path.join(data, f"{name}.onnx")
        x = rng.random(shape, dtype=np.float32)
        model = gc.onnx.load(path)
        t0 = time.perf_counter()
        fn = gc.compile(model.inputs, model.outputs, backend=backend)
        got = fn(x)[0]
        first = time.perf_counter() - t0
        t = median(timeit(functools.partial(fn, x), 5, 30))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {model.input_names[0]: x}
        want = sess.run(None, feed)[0]
        t_ort = median(timeit(functools.partial(sess.run, None, feed), 5, 30))
        err = float(np.abs(got - want).max())
        out.append({"system": f"graphc {backend}", "op": name, "ms": 1e3 * t, "first_call_s": first,
                    "max_abs_err": err, "note": f"{len(getattr(fn, 'kernels', []))} kernels"})
        out.append({"system": "onnxruntime CPU", "op": name, "ms": 1e3 * t_ort, "max_abs_err": 0.0,
                    "note": f"onnxruntime {ort.__version__}, {THREADS} threads"})
    return out

"""graphc's benchmark suite: workloads W0-W5 of ../shared/peers/README.md and W6-W8, W10 (conv2d, LSTM, GPT,
LSTM language model, beside torch CPU), graphc's backends side by side with NumPy and, where installed, PyTorch, JAX and
PyTensor, in one run.

    python tools/bench.py                      # everything, 3 rounds: ~25 minutes on 2 cores
    python tools/bench.py --quick              # one round, W1 W2 W4 W5, a few peers: ~3 minutes
    python tools/bench.py -w w1,w4 --rounds 3  # some workloads
    python tools/bench.py --backend cuda       # on a GPU: G1 chain vs copy bandwidth, G2 GEMM vs
                                               # cuBLAS, G3 MLP step vs torch CUDA eager
    graphc bench ...  /  make bench            # the same

Method (the peers' own): every thread pool pinned to 2 threads; every system in its own fresh
process; the whole list of systems repeated --rounds times, interleaved, because this shared
machine drifts by 10-30 % between processes; within a process warm-up, then the median of several
timed repeats; the table shows the median over rounds with the min-max range. Same data, seeds and
initial parameters as the peers (float32, seed 0), so losses must agree.

Peers run from the peers' own scripts (--peers DIR, default ../shared/peers beside the checkout)
with --peers-python (default: $PEERS_VENV/bin/python when that venv exists, else this Python);
a peer whose package is not importable there is listed as not installed. Results: a Markdown table
on stdout and every record as JSON (--json, default bench_results.json). Never run in CI; no test
asserts a time.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEED = 0
WORKLOADS = ("w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10", "w11")
PEER_SCRIPTS = {"w0": "w0_bandwidth.py", "w1": "w1_fused.py", "w2": "w2_mlp.py", "w3": "w3_first_step.py",
                "w4": "w4_tiny.py", "w5": "w5_softmax.py"}
# the package a peer system needs (systems not listed need only numpy/numba)
NEEDS = {"torch": "torch", "jax": "jax", "pytensor": "pytensor"}
QUICK_PEERS = {"numpy", "torch_compile", "torch_eager_fused", "jax_jit", "pytensor_numba", "numba"}


# ------------------------------------------------------------------------------ measuring helpers
def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def timeit(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timed_loops(fn, warmup, repeats, steps):
    """Seconds of each of `repeats` loops of `steps` calls after `warmup` calls, and the CpuCounter."""
    for _ in range(warmup):
        fn()
    times = []
    with CpuCounter() as cpu:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append(time.perf_counter() - t0)
    return times, cpu


class CpuCounter:
    """CPU seconds and minor page faults of this process over a block."""

    def __enter__(self):
        import resource
        self._r = resource
        self._t0 = time.perf_counter()
        self._u0 = resource.getrusage(resource.RUSAGE_SELF)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t0
        u1 = self._r.getrusage(self._r.RUSAGE_SELF)
        self.cpu = (u1.ru_utime - self._u0.ru_utime) + (u1.ru_stime - self._u0.ru_stime)
        self.minflt = u1.ru_minflt - self._u0.ru_minflt
        return False

    def per_call(self, calls):
        return {"cores_busy": round(self.cpu / self.wall, 2), "minflt_per_call": round(self.minflt / calls)}


def gc_versions():
    import numba
    import numpy

    import graphc
    return {"graphc": graphc.__version__, "numpy": numpy.__version__, "numba": numba.__version__}


# --------------------------------------------------------------------------------- W1 fused chain
W1_N = 2 ** 24


def w1_inputs():
    import numpy as np
    rng = np.random.default_rng(SEED)
    return rng.standard_normal(W1_N, dtype=np.float32), rng.standard_normal(W1_N, dtype=np.float32)


def w1_graph(gc, n=W1_N):
    # the size is part of the graph, as jax.jit and torch.compile specialise on it; with (None,)
    # the numba backend guesses a small loop and runs it on one thread (see BENCHMARKS.md)
    x = gc.placeholder((n,), "float32", name="x")
    y = gc.placeholder((n,), "float32", name="y")
    out = gc.tanh(x * 1.5 + y) * (1 / (1 + gc.exp(-x))) + gc.maximum(y - 0.5, 0) * gc.exp(-x * x)
    return [x, y], out


def run_w1(backend):
    import numpy as np

    import graphc as gc
    x, y = w1_inputs()
    ins, out = w1_graph(gc)
    t0 = time.perf_counter()
    f = gc.compile(ins, out, backend=backend)
    r = f(x, y)
    first = time.perf_counter() - t0
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    ref = np.tanh(xd * 1.5 + yd) * (1 / (1 + np.exp(-xd))) + np.maximum(yd - 0.5, 0) * np.exp(-xd * xd)
    err = float(np.max(np.abs(r.astype(np.float64) - ref)))
    rows = []
    buf = np.empty_like(x)
    for label, call in (("", lambda: f(x, y)), (" (out=)", lambda: f(x, y, out=buf))):
        with CpuCounter() as cpu:
            ts = timeit(call, 2, 7)
        t = median(ts)
        rows.append({"system": f"graphc {backend}{label}", "ms": 1e3 * t, "gbps": 3 * W1_N * 4 / t / 1e9,
                     "max_abs_err": err, "first_call_s": first, **cpu.per_call(9),
                     "note": f"{len(f.kernels)} kernel(s), "
                             + ("caller's buffer" if label else "fresh output per call")})
    return rows


# ----------------------------------------------------------------------------- W2 MLP train step
W2_SIZES, W2_BATCH = (784, 512, 256, 10), 256
W2_FLOP = (2 * W2_BATCH * sum(a * b for a, b in zip(W2_SIZES, W2_SIZES[1:])) * 2
           + 2 * W2_BATCH * sum(a * b for a, b in zip(W2_SIZES[1:], W2_SIZES[2:])))


def w2_problem():
    """The peers' problem: He-initialised weights (fan_in, fan_out), zero biases, one fixed batch."""
    import numpy as np
    rng = np.random.default_rng(SEED)
    params = []
    for fan_in, fan_out in zip(W2_SIZES, W2_SIZES[1:]):
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        params.append(w * np.float32(math.sqrt(2.0 / fan_in)))
        params.append(np.zeros(fan_out, dtype=np.float32))
    x = rng.standard_normal((W2_BATCH, W2_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, W2_SIZES[-1], size=W2_BATCH).astype(np.int64)
    return params, x, y


def w2_graph():
    """The W2 model as graph nodes: (x, y, parameters, loss, x batch, y batch)."""
    import graphc as gc
    params, xb, yb = w2_problem()
    x = gc.placeholder((None, W2_SIZES[0]), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    ps = [gc.parameter(p, name=f"{'Wb'[i % 2]}{i // 2}") for i, p in enumerate(params)]
    h = x
    for k in range(3):
        h = h @ ps[2 * k] + ps[2 * k + 1]
        if k < 2:
            h = gc.relu(h)
    return x, y, ps, gc.cross_entropy(h, y), xb, yb


def w2_step(backend):
    """Build and compile the W2 step: (step function, x, y)."""
    import graphc as gc
    x, y, ps, loss, xb, yb = w2_graph()
    step = gc.compile([x, y], loss, updates=gc.optim.Adam(1e-3).updates(loss, ps), backend=backend)
    return step, xb, yb


def run_w2(backend):
    t0 = time.perf_counter()
    step, xb, yb = w2_step(backend)
    compile_s = time.perf_counter() - t0
    losses = [float(step(xb, yb)) for _ in range(200)]
    times, cpu = timed_loops(lambda: step(xb, yb), warmup=20, repeats=5, steps=100)
    t = median(times) / 100
    # what a steady-state step allocates through Python's allocators (NumPy's arrays included)
    import tracemalloc
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for _ in range(50):
        step(xb, yb)
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(base, "filename"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"steps_per_s": 1 / t, "samples_per_s": W2_BATCH / t, "ms_per_step": 1e3 * t,
            "gflops": W2_FLOP / t / 1e9, "loss_first": losses[0], "loss_200": losses[-1],
            "loss_decreased": losses[-1] < losses[0], "compile_s": compile_s, **cpu.per_call(500),
            "traced_peak_bytes": peak, "traced_growth_bytes": grown,
            "note": f"{len(step.kernels)} kernels, gc.optim.Adam"}


# --------------------------------------------------------------------------- W3 first-step latency
def run_w3(backend):
    t0 = time.perf_counter()
    import graphc  # noqa: F401
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    step, xb, yb = w2_step(backend)
    loss = float(step(xb, yb))
    out = {"import_s": import_s, "build_to_first_step_s": time.perf_counter() - t0, "first_loss": loss}
    if hasattr(step, "cache_info"):
        out["note"] = "cache reused" if step.cache_info().get("reused") else "compiled"
    return out


# ------------------------------------------------------------------------------- W4 XOR SGD step
def w4_problem():
    import numpy as np
    rng = np.random.default_rng(SEED)
    w1 = rng.standard_normal((2, 8), dtype=np.float32)
    b1 = np.zeros(8, dtype=np.float32)
    w2 = rng.standard_normal((8, 1), dtype=np.float32)
    b2 = np.zeros(1, dtype=np.float32)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return [w1, b1, w2, b2], x, y


def run_w4(backend):
    import numpy as np

    import graphc as gc
    params, xb, yb = w4_problem()
    x = gc.placeholder((None, 2), "float32", name="x")
    t = gc.placeholder((None, 1), "float32", name="t")
    W1, b1, W2, b2 = (gc.parameter(p, name=n) for p, n in zip(params, ("W1", "b1", "W2", "b2")))
    z = gc.tanh(x @ W1 + b1) @ W2 + b2
    loss = gc.binary_cross_entropy_with_logits(z, t)
    step = gc.compile([x, t], loss, updates=gc.optim.SGD(0.5).updates(loss, [W1, b1, W2, b2]),
                      backend=backend)
    predict = gc.compile([x], gc.sigmoid(z), backend=backend)
    first = float(step(xb, yb))
    for _ in range(3000 - 2):
        step(xb, yb)
    last = float(step(xb, yb))
    solved = np.array_equal((predict(xb).ravel() > 0.5).astype(int), [0, 1, 1, 0])
    times, cpu = timed_loops(lambda: step(xb, yb), warmup=200, repeats=5, steps=2000)
    return {"us_per_step": 1e6 * median(times) / 2000, "loss_first": first, "loss_3000": last,
            "xor_solved": bool(solved), **cpu.per_call(10000), "note": f"{len(step.kernels)} kernels"}


# ------------------------------------------------------------------------- W5 softmax, logsumexp
W5_M, W5_N = 4096, 1000


def run_w5(backend):
    import numpy as np

    import graphc as gc
    rng = np.random.default_rng(SEED)
    xv = rng.standard_normal((W5_M, W5_N), dtype=np.float32) * np.float32(3)
    x = gc.placeholder((None, W5_N), "float32", name="x")
    xd = xv.astype(np.float64)
    m = xd.max(axis=1, keepdims=True)
    e = np.exp(xd - m)
    s = e.sum(axis=1, keepdims=True)
    refs = {"softmax": e / s, "logsumexp": (m + np.log(s))[:, 0]}
    nbytes = {"softmax": 2 * W5_M * W5_N * 4, "logsumexp": W5_M * W5_N * 4 + W5_M * 4}
    rows = []
    for op, node in (("softmax", gc.softmax(x, axis=1)), ("logsumexp", gc.logsumexp(x, axis=1))):
        f = gc.compile([x], node, backend=backend)
        err = float(np.max(np.abs(f(xv).astype(np.float64) - refs[op])))
        with CpuCounter() as cpu:
            ts = timeit(functools.partial(f, xv), 5, 30)
        t = median(ts)
        rows.append({"op": op, "ms": 1e3 * t, "gbps": nbytes[op] / t / 1e9, "max_abs_err": err,
                     **cpu.per_call(35), "note": f"{len(f.kernels)} kernel(s)"})
    return rows


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
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
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


def _torch_w8():
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import torch_gpt
    X, Y = w8_data()
    model = torch_gpt(W8)
    step = _torch_lm_step(model, torch.optim.AdamW(model.parameters(), lr=1e-3), X, Y, W8["vocab"], clip=1.0)
    first = float(step())
    t = median(timeit(step, 3, 10))
    return [{"system": "torch CPU eager", "ms": 1e3 * t, "steps_per_s": 1 / t, "check": first,
             "note": f"torch {torch.__version__}; its own initial weights"}]


def run_torch(workload):
    import torch
    torch.set_num_threads(THREADS)
    if workload == "w8":
        return _torch_w8()
    if workload == "w9":
        return _torch_w9()
    if workload.startswith("w10-"):
        return _torch_w10(int(workload[4:]))
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


def _torch_w9():
    import torch
    X, Y, weights = w9_data()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(512, 10))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    opt = torch.optim.SGD(model.parameters(), lr=W9["lr"], momentum=W9["momentum"])
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    step = _torch_step(lambda: torch.nn.functional.cross_entropy(model(tx), ty), opt)
    first = float(step())
    t = median(timeit(step, 3, 20))
    return [{"system": "torch CPU eager", "ms": 1e3 * t, "steps_per_s": 1 / t, "gflops": W9_FLOP / t / 1e9,
             "check": first, "note": f"torch {torch.__version__} (oneDNN convolutions); the same initial weights"}]


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
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
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


def _torch_w10(T):
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import torch_lstm_lm
    X, Y = w10_data(T)
    model = torch_lstm_lm(W10)
    step = _torch_lm_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), X, Y, W10["vocab"])
    t0 = time.perf_counter()
    first = float(step())
    first_s = time.perf_counter() - t0
    t = median(timeit(step, 3, 10))
    return [{"system": "torch CPU eager", "T": T, "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first_s,
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
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "onnx")
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


# ------------------------------------------------------------------- GPU workloads (backend cuda)
# G1: the W1 chain's kernel against the device's own copy bandwidth (goal >= 70 %); G2: a 2048^3
# float32 GEMM against cuBLAS (torch.matmul, TF32 off); G3: the W2 Adam step against PyTorch CUDA
# eager (goal <= 1.5x its time). Kernel times come from fn.profile (synchronised launches on
# device buffers); step times include copying the batch to the device and the loss back.
GPU_WORKLOADS = ("g1", "g2", "g3")
G2_N = 2048
# GRAPHC_BENCH_SMOKE=1: tiny sizes, the simulator allowed, G3 left out: checks the code paths
SMOKE = os.environ.get("GRAPHC_BENCH_SMOKE") == "1"
if SMOKE:
    G2_N = 8


def _gpu_or_reason():
    from numba import config, cuda
    if config.ENABLE_CUDASIM and not SMOKE:
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM): no GPU timing"
    if not cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


def _device_name():
    from numba import cuda
    name = getattr(cuda.get_current_device(), "name", "the CUDA simulator")
    return name.decode() if isinstance(name, bytes) else str(name)


def run_g1(backend):
    import numpy as np
    from numba import cuda

    import graphc as gc
    x, y = w1_inputs()
    if SMOKE:
        x, y = x[:64], y[:64]
    ins, out = w1_graph(gc, x.size)
    f = gc.compile(ins, out, backend=backend)
    r = f(x, y)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    ref = np.tanh(xd * 1.5 + yd) * (1 / (1 + np.exp(-xd))) + np.maximum(yd - 0.5, 0) * np.exp(-xd * xd)
    err = float(np.max(np.abs(r.astype(np.float64) - ref)))
    prof = f.profile(x, y, repeat=50)
    kern_s = sum(k.seconds for k in prof)
    a, b = cuda.to_device(x), cuda.device_array_like(x)
    b.copy_to_device(a)
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50):
        b.copy_to_device(a)
    cuda.synchronize()
    copy_s = (time.perf_counter() - t0) / 50
    copy_gbps = 2 * x.nbytes / copy_s / 1e9
    chain_gbps = 3 * x.nbytes / kern_s / 1e9
    call = median(timeit(lambda: f(x, y), 2, 7))
    return [{"system": f"graphc {backend} (kernel)", "ms": 1e3 * kern_s, "gbps": chain_gbps,
             "max_abs_err": err, "note": f"{100 * chain_gbps / copy_gbps:.0f}% of the device copy "
                                         f"bandwidth {copy_gbps:.0f} GB/s; {_device_name()}"},
            {"system": "device copy (cudaMemcpy D2D)", "ms": 1e3 * copy_s, "gbps": copy_gbps},
            {"system": f"graphc {backend} (call, host arrays)", "ms": 1e3 * call,
             "note": "includes copying x, y to the device and the result back"}]


def run_g2(backend):
    import numpy as np

    import graphc as gc
    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((G2_N, G2_N), dtype=np.float32)
    B = rng.standard_normal((G2_N, G2_N), dtype=np.float32)
    a, b = gc.placeholder(A.shape, name="a"), gc.placeholder(B.shape, name="b")
    f = gc.compile([a, b], a @ b, backend=backend)
    got = f(A, B)
    err = float(np.max(np.abs(got - A @ B)))
    kern_s = sum(k.seconds for k in f.profile(A, B, repeat=20))
    flop = 2 * G2_N ** 3
    rows = [{"system": f"graphc {backend} (tiled kernel)", "ms": 1e3 * kern_s, "gflops": flop / kern_s / 1e9,
             "max_abs_err": err, "note": _device_name()}]
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        ta, tb = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
        torch.matmul(ta, tb)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            torch.matmul(ta, tb)
        torch.cuda.synchronize()
        t = (time.perf_counter() - t0) / 20
        rows.append({"system": "cuBLAS (torch.matmul, TF32 off)", "ms": 1e3 * t, "gflops": flop / t / 1e9})
    except ImportError:
        rows.append({"system": "cuBLAS (torch.matmul)", "status": "not installed"})
    return rows


def run_g3(backend):
    if SMOKE:
        return [{"system": f"graphc {backend}", "status": "skipped", "note": "smoke run"}]
    step, xb, yb = w2_step(backend)
    losses = [float(step(xb, yb)) for _ in range(20)]
    times, _ = timed_loops(lambda: step(xb, yb), warmup=5, repeats=5, steps=50)
    t = median(times) / 50
    rows = [{"system": f"graphc {backend}", "steps_per_s": 1 / t, "ms": 1e3 * t, "loss_after_20": losses[-1],
             "note": f"{len(step.kernels)} kernels; batch copied in, loss copied out per step; {_device_name()}"}]
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        params, x, y = w2_problem()
        ps = [torch.tensor(p, device="cuda", requires_grad=True) for p in params]
        opt = torch.optim.Adam(ps, lr=1e-3)
        X, Y = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

        def tstep():
            h = X
            for k in range(3):
                h = h @ ps[2 * k] + ps[2 * k + 1]
                if k < 2:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(h, Y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        for _ in range(20):
            tloss = tstep()
        torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(50):
                tstep()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) / 50)
        tt = median(ts)
        rows.append({"system": "torch CUDA eager (Adam)", "steps_per_s": 1 / tt, "ms": 1e3 * tt,
                     "loss_after_20": float(tloss), "note": f"graphc / torch time: {t / tt:.2f}"})
    except ImportError:
        rows.append({"system": "torch CUDA eager", "status": "not installed"})
    return rows


def _gpu_run(fn):
    def run(backend):
        reason = _gpu_or_reason()
        if reason:
            return [{"system": f"graphc {backend}", "status": "skipped", "note": reason}]
        return fn(backend)
    return run


GRAPHC_RUNS = {"w1": run_w1, "w2": run_w2, "w3": run_w3, "w4": run_w4, "w5": run_w5, "w6": run_w6, "w7": run_w7,
               "w8": run_w8, "w9": run_w9, "w10": run_w10, "w11": run_w11,
               "g1": _gpu_run(run_g1), "g2": _gpu_run(run_g2), "g3": _gpu_run(run_g3)}


# ------------------------------------------------------------------------------------ orchestration
def child(spec: str) -> None:
    """--system wN:graphc_BACKEND: run one graphc system in this process; JSON lines on stdout."""
    workload, system = spec.split(":")
    if system == "torch_cpu":  # W6-W8's peer, run under the peers' Python
        try:
            for rec in run_torch(workload):
                print(json.dumps({"workload": workload.split("-")[0].upper(), "status": "ok", **rec}), flush=True)
        except ImportError:
            print(json.dumps({"workload": workload.upper(), "system": "torch CPU eager", "status": "not installed"}))
        return
    backend = system.split("_", 1)[1]
    workload, _, arg = workload.partition("-")  # w10-32: W10 at T = 32
    try:
        res = GRAPHC_RUNS[workload](backend, *([int(arg)] if arg else []))
        for rec in res if isinstance(res, list) else [res]:
            rec.setdefault("status", "ok")
            rec["versions"] = gc_versions()
            rec.setdefault("system", f"graphc {backend}")
            print(json.dumps({"workload": workload.upper(), **rec}), flush=True)
    except Exception as e:  # reported as data, like the peers' failures
        print(json.dumps({"workload": workload.upper(), "system": f"graphc {backend}", "status": "failed",
                          "error": f"{type(e).__name__}: {str(e)[:400]}"}), flush=True)


def spawn(cmd, env_extra=None, cwd=None, timeout=900, fields=None):
    """Run one benchmark process; its JSON lines as records (with the process's wall time)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
        out, err, code = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        out, err, code = "", f"timeout after {timeout} s", None
    wall = time.perf_counter() - t0
    recs = []
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            rec["process_wall_s"] = round(wall, 3)
            rec.update(fields or {})
            recs.append(rec)
    if not recs:
        recs.append({"status": "failed", "error": f"exit code {code}, no result line",
                     "stderr_tail": err.strip().splitlines()[-6:], **(fields or {})})
    print(f"# {' '.join(os.path.basename(c) for c in cmd[1:4])}: {wall:.1f} s", file=sys.stderr, flush=True)
    return recs


def peer_systems(py, peers, workload):
    """{key: label} of a peers script's systems, and the set of keys whose package is missing."""
    script = PEER_SCRIPTS[workload]
    code = (f"import sys, json, importlib.util as u; sys.path.insert(0, {peers!r}); m = __import__({script[:-3]!r}); "
            "print(json.dumps({k: v[0] for k, v in m.SYSTEMS.items()})); "
            f"print(json.dumps([p for p in {sorted(set(NEEDS.values()))!r} if u.find_spec(p) is None]))"
            )
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=peers, timeout=120,
                       env={**os.environ, "PEERS_CACHE": os.environ.get("PEERS_CACHE", "/tmp/peers-cache")})
    if p.returncode != 0:
        return {}, set()
    lines = p.stdout.strip().splitlines()
    systems, missing_pkgs = json.loads(lines[-2]), set(json.loads(lines[-1]))
    missing = {k for k in systems if any(k.startswith(pre) and pkg in missing_pkgs for pre, pkg in NEEDS.items())}
    return systems, missing


def w3_cache_env(key, folder):
    """Fresh on-disk caches for one cold/warm pair (the peers' W3 protocol)."""
    if key.startswith("graphc"):
        return {"GRAPHC_CACHE_DIR": os.path.join(folder, "graphc"), "NUMBA_CACHE_DIR": os.path.join(folder, "numba")}
    if key == "torch_compile":
        return {"TORCHINDUCTOR_CACHE_DIR": folder}
    if key.startswith("pytensor"):
        return {"PYTENSOR_FLAGS": f"floatX=float32,base_compiledir={folder}",
                "NUMBA_CACHE_DIR": os.path.join(folder, "numba")}
    if key == "jax_jit":
        return {"JAX_COMPILATION_CACHE_DIR": folder, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    return {}


def run_all(args) -> list[dict]:
    me = os.path.abspath(__file__)
    peers = args.peers if args.peers and os.path.isdir(args.peers) else None
    records = []
    for w in args.workloads:
        specs = [f"w10-{T}" for T in W10_T] if w == "w10" else [w]  # W10: one process per sequence length
        systems = [(f"graphc_{b}", [sys.executable, me, "--system", f"{spec}:graphc_{b}"], None)
                   for spec in specs for b in args.backends] if w != "w0" else []
        if w in ("w6", "w7", "w8", "w9", "w10") and args.peers_python:
            systems += [("torch_cpu", [args.peers_python, me, "--system", f"{spec}:torch_cpu"], None) for spec in specs]
        if peers and w in PEER_SCRIPTS:  # the GPU workloads measure their references themselves
            found, missing = peer_systems(args.peers_python, peers, w)
            for key in found:
                if key in missing:
                    records.append({"workload": w.upper(), "system": found[key], "status": "not installed"})
                elif not args.quick or key in QUICK_PEERS or w == "w0":
                    systems.append((key, [args.peers_python, PEER_SCRIPTS[w], "--system", key], peers))
        print(f"== {w}: {len(systems)} systems x {args.rounds} rounds", file=sys.stderr, flush=True)
        for rnd in range(1, args.rounds + 1):
            for key, cmd, cwd in systems:
                if w == "w10" and key.startswith("graphc"):  # cold: empty caches for every process
                    folder = tempfile.mkdtemp(prefix="w10-")
                    for rec in spawn(cmd, env_extra=w3_cache_env(key, folder), cwd=cwd, fields={"round": rnd}):
                        rec.setdefault("workload", "W10")
                        records.append(rec)
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                if w != "w3":
                    for rec in spawn(cmd, cwd=cwd, fields={"round": rnd}):
                        rec.setdefault("workload", w.upper())
                        rec.setdefault("system", key)
                        records.append(rec)
                    continue
                if key in ("numpy", "torch_eager"):
                    phases = [("n/a", {})]
                else:
                    folder = tempfile.mkdtemp(prefix=f"w3-{key}-")
                    env = w3_cache_env(key, folder)
                    phases = [("cold", env), ("warm", env)]
                    if key == "jax_jit":  # jax has no on-disk cache by default: both runs compile
                        phases = [("none (default)", {})] + [(f"persistent {c}", e) for c, e in phases]
                for cache, env in phases:
                    for rec in spawn(cmd, env_extra=env, cwd=cwd, fields={"round": rnd, "cache": cache}):
                        rec.setdefault("workload", "W3")
                        rec.setdefault("system", key)
                        records.append(rec)
                if key not in ("numpy", "torch_eager"):
                    shutil.rmtree(folder, ignore_errors=True)
    return records


# ---------------------------------------------------------------------------------------- tables
def _agg(recs, field):
    vals = [r[field] for r in recs if isinstance(r.get(field), (int, float))]
    if not vals:
        return None, None, None
    return median(vals), min(vals), max(vals)


def _fmt(recs, field, digits=2, rng=True):
    m, lo, hi = _agg(recs, field)
    if m is None:
        return "–"
    s = f"{m:,.{digits}f}"
    return s + (f" ({lo:,.{digits}f}–{hi:,.{digits}f})" if rng and len(recs) > 1 else "")


def _groups(records, workload, key=("system",)):
    out = {}
    for r in records:
        if r.get("workload") == workload and r.get("status") == "ok":
            out.setdefault(tuple(r.get(k) for k in key), []).append(r)
    return out


def _groups_any(records) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault((r["workload"], r["system"]), []).append(r)
    return out


def tables(records) -> str:
    lines = []
    add = lines.append
    g = _groups(records, "W0", ("system", "op"))
    if g:
        add("## W0 physical limits (peers' STREAM and GEMM)\n")
        add("| system | op | ms | GB/s or GFLOP/s |\n|---|---|---|---|")
        for (s, op), rs in g.items():
            rate = _fmt(rs, 'gbps', 1) if 'gbps' in rs[0] else _fmt(rs, 'gflops', 0)
            add(f"| {s} | {op} | {_fmt(rs, 'ms')} | {rate} |")
        add("")
    g = _groups(records, "W1")
    if g:
        add("## W1 fused elementwise chain (2**24 float32)\n")
        add("| system | ms/call | eff. GB/s | first call s | cores busy | minor faults/call | max abs err | note |")
        add("|---|---|---|---|---|---|---|---|")
        for (s,), rs in sorted(g.items(), key=lambda kv: _agg(kv[1], "ms")[0]):
            add(f"| {s} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gbps', 2, False)} | {_fmt(rs, 'first_call_s', 2, False)} | "
                f"{_fmt(rs, 'cores_busy', 2, False)} | {_fmt(rs, 'minflt_per_call', 0, False)} | "
                f"{rs[0].get('max_abs_err', float('nan')):.2e} | {rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W2")
    if g:
        add("## W2 MLP 784-512-256-10 training step (batch 256, Adam)\n")
        add("| system | steps/s | ms/step | GFLOP/s | loss 1 → 200 | cores busy | minor faults/step | "
            "traced peak over 50 steps | note |\n|---|---|---|---|---|---|---|---|---|")
        for (s,), rs in sorted(g.items(), key=lambda kv: -_agg(kv[1], "steps_per_s")[0]):
            loss = (f"{rs[0]['loss_first']:.4f} → {rs[0]['loss_200']:.3g}" if "loss_first" in rs[0] else "–")
            peak = f"{rs[0]['traced_peak_bytes']:,} B" if "traced_peak_bytes" in rs[0] else "–"
            add(f"| {s} | {_fmt(rs, 'steps_per_s', 1)} | {_fmt(rs, 'ms_per_step', 2, False)} | "
                f"{_fmt(rs, 'gflops', 0, False)} | {loss} | {_fmt(rs, 'cores_busy', 2, False)} | "
                f"{_fmt(rs, 'minflt_per_call', 0, False)} | {peak} | {rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W3", ("system", "cache"))
    if g:
        add("## W3 build → first step of W2 in a fresh process\n")
        add("| system | cache | build→first step s | import s | process wall s |\n|---|---|---|---|---|")
        for (s, cache), rs in g.items():
            add(f"| {s} | {cache} | {_fmt(rs, 'build_to_first_step_s')} | {_fmt(rs, 'import_s', 2, False)} | "
                f"{_fmt(rs, 'process_wall_s', 2, False)} |")
        add("")
    g = _groups(records, "W4")
    if g:
        add("## W4 XOR 2-8-1 SGD step, full batch of 4\n")
        add("| system | µs/step | loss 1 → 3000 | XOR solved | note |\n|---|---|---|---|---|")
        for (s,), rs in sorted(g.items(), key=lambda kv: _agg(kv[1], "us_per_step")[0]):
            loss = f"{rs[0]['loss_first']:.4f} → {rs[0]['loss_3000']:.3g}" if "loss_3000" in rs[0] else "–"
            add(f"| {s} | {_fmt(rs, 'us_per_step')} | {loss} | {'yes' if rs[0].get('xor_solved') else 'no'} | "
                f"{rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W5", ("system", "op"))
    if g:
        add("## W5 row softmax / logsumexp, (4096, 1000) float32\n")
        add("| system | op | ms | eff. GB/s | cores busy | max abs err | note |\n|---|---|---|---|---|---|---|")
        for (s, op), rs in sorted(g.items(), key=lambda kv: (kv[0][1], _agg(kv[1], "ms")[0])):
            add(f"| {s} | {op} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gbps', 1, False)} | "
                f"{_fmt(rs, 'cores_busy', 2, False)} | {rs[0].get('max_abs_err', float('nan')):.2e} | "
                f"{rs[0].get('note', '')} |")
        add("")
    for w, title in (("W6", "W6 conv2d 3x3 forward + backward, x (64, 16, 16, 16), 32 filters"),
                     ("W7", "W7 LSTM training step, 8 steps (one scan), batch 64, 32 -> 128, Adam"),
                     ("W8", "W8 GPT training step: 2 blocks, d_model 128, 4 heads, context 64, batch 32, AdamW"),
                     ("W9", "W9 LeNet CNN training step: 28x28 digits, conv 5x5 16 and 32, batch 64, SGD momentum")):
        g = _groups(records, w)
        if g:
            add(f"## {title}\n")
            add("| system | ms | GFLOP/s | steps/s | first call s | loss (or sum) 1 | note |\n"
                "|---|---|---|---|---|---|---|")
            for (s_,), rs in sorted(g.items(), key=lambda kv: _agg(kv[1], "ms")[0]):
                add(f"| {s_} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gflops', 1, False) if 'gflops' in rs[0] else '–'} | "
                    f"{_fmt(rs, 'steps_per_s', 1, False) if 'steps_per_s' in rs[0] else '–'} | "
                    f"{_fmt(rs, 'first_call_s', 2, False) if 'first_call_s' in rs[0] else '–'} | "
                    f"{rs[0].get('check', float('nan')):.6g} | {rs[0].get('note', '')} |")
            add("")
    g = _groups(records, "W10", ("system", "T"))
    if g:
        add("## W10 LSTM LM training step (vocab 100, embed 64, 2 layers of 128, batch 32, Adam), cold\n")
        add("| system | T | ms/step | steps/s | cold compile + first step s | loss 1 | note |")
        add("|---|---|---|---|---|---|---|")
        for (s_, T), rs in sorted(g.items(), key=lambda kv: (kv[0][1], _agg(kv[1], "ms")[0])):
            add(f"| {s_} | {T} | {_fmt(rs, 'ms')} | {_fmt(rs, 'steps_per_s', 1, False)} | "
                f"{_fmt(rs, 'first_call_s', 2)} | {rs[0].get('check', float('nan')):.4f} | {rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W11", ("system", "op"))
    if g:
        add(f"## W11 imported ONNX models, inference on a batch of {W11_BATCH}, beside onnxruntime\n")
        add("| model | system | ms | first call s | max abs err vs onnxruntime | note |\n|---|---|---|---|---|---|")
        for (s_, op), rs in sorted(g.items(), key=lambda kv: (kv[0][1], _agg(kv[1], "ms")[0])):
            add(f"| {op} | {s_} | {_fmt(rs, 'ms', 3)} | "
                f"{_fmt(rs, 'first_call_s', 2, False) if 'first_call_s' in rs[0] else '–'} | "
                f"{rs[0].get('max_abs_err', float('nan')):.1e} | {rs[0].get('note', '')} |")
        add("")
    gpu = [r for r in records if r.get("workload", "").startswith("G") and r.get("status") == "ok"]
    if gpu:
        add("## GPU (backend cuda): G1 W1 chain vs copy bandwidth, G2 GEMM 2048³ vs cuBLAS, G3 W2 step vs torch\n")
        add("| workload | system | ms | GB/s | GFLOP/s | steps/s | note |\n|---|---|---|---|---|---|---|")
        for (w, sys_), rs in _groups_any(gpu).items():
            add(f"| {w} | {sys_} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gbps', 1, False) if 'gbps' in rs[0] else '–'} | "
                f"{_fmt(rs, 'gflops', 0, False) if 'gflops' in rs[0] else '–'} | "
                f"{_fmt(rs, 'steps_per_s', 1, False) if 'steps_per_s' in rs[0] else '–'} | {rs[0].get('note', '')} |")
        add("")
    bad = [r for r in records if r.get("status") not in ("ok", None)]
    if bad:
        add("## Not measured\n")
        for r in bad:
            add(f"- {r.get('workload', '?')} {r.get('system', '?')}: {r.get('status')}"
                + (f" ({r.get('error') or r.get('note')})" if r.get("error") or r.get("note") else ""))
        add("")
    return "\n".join(lines)


def machine() -> str:
    import numpy as np
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numba
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {numba.__version__}; threads pinned to {THREADS}")


def main(argv=None) -> int:
    default_peers = os.path.join(os.path.dirname(ROOT), "shared", "peers")
    venv_py = os.path.join(os.environ.get("PEERS_VENV", os.path.expanduser("~/.cache/graphc-peers/venv")),
                           "bin", "python")
    ap = argparse.ArgumentParser(description="graphc's benchmarks beside the peers: W0 bandwidth/GEMM limits, "
                                 "W1 fused elementwise chain, W2 MLP training step, W3 first step in a fresh "
                                 "process, W4 XOR step overhead, W5 softmax/logsumexp.")
    ap.add_argument("-w", "--workloads", default=None,
                    help="comma-separated, e.g. w1,w4 (default: w0-w11; g1-g3 with --backend cuda)")
    ap.add_argument("--backends", default="numba,numpy", help="graphc backends to measure (numba,numpy,cuda)")
    ap.add_argument("--backend", help="one graphc backend (same as --backends NAME)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of separate processes")
    ap.add_argument("--quick", action="store_true", help="1 round, no W0/W3, a few peers")
    ap.add_argument("--peers", default=default_peers, help="folder of the peers' scripts ('' for none)")
    ap.add_argument("--peers-python", default=venv_py if os.path.exists(venv_py) else sys.executable,
                    help="the Python that runs the peers (needs their packages)")
    ap.add_argument("--json", default="bench_results.json", help="where to write every record")
    ap.add_argument("--system", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.system:
        child(args.system)
        return 0
    args.backends = [args.backend] if args.backend else [b for b in args.backends.split(",") if b]
    if args.workloads is None:  # the CPU workloads, or the GPU ones for the cuda backend alone
        args.workloads = ",".join(GPU_WORKLOADS if args.backends == ["cuda"] else WORKLOADS)
    args.workloads = [w.strip().lower() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS + GPU_WORKLOADS]
    if bad:
        ap.error(f"unknown workloads {bad}; choose from {', '.join(WORKLOADS + GPU_WORKLOADS)}")
    if args.quick:
        args.rounds = 1
        if args.workloads == list(WORKLOADS):
            args.workloads = ["w1", "w2", "w4", "w5"]
    t0 = time.time()
    records = run_all(args)
    head = (f"# graphc benchmarks\n\n{machine()}\n\ncommand: `python tools/bench.py "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}`, {args.rounds} round(s), "
            f"{(time.time() - t0) / 60:.1f} min; peers from {args.peers if args.peers else 'nowhere'} "
            f"run with {args.peers_python}\n")
    text = head + "\n" + tables(records)
    print(text)
    with open(args.json, "w") as f:
        json.dump({"machine": machine(), "records": records}, f, indent=1)
    print(f"(records in {args.json})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

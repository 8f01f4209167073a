"""The microbenchmarks W1-W5 (../shared/peers/README.md): graphc's side of each."""
from __future__ import annotations

import functools
import math
import time

from .measure import SEED, CpuCounter, median, timed_loops, timeit

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

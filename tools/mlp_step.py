"""Measure the MLP training step (784-512-256-10, ReLU, softmax cross-entropy, SGD, batch 256):
kernel count, compile time, and steps/s on the numpy and numba backends.

    python tools/mlp_step.py [--backend numba] [--steps 100]

Run it twice with the same GRAPHC_CACHE_DIR/NUMBA_CACHE_DIR to see cold then warm compile times.
Threads: set NUMBA_NUM_THREADS and OPENBLAS_NUM_THREADS as for the peers (2).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def build(backend: str):
    import graphc as gc
    rng = np.random.default_rng(0)
    sizes = [784, 512, 256, 10]
    x = gc.placeholder((None, 784), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    params, h = [], x
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = gc.parameter((rng.normal(size=(i, o)) * np.sqrt(2 / i)).astype(np.float32), name=f"W{k}")
        b = gc.parameter(np.zeros(o, np.float32), name=f"b{k}")
        params += [W, b]
        h = h @ W + b
        if k < len(sizes) - 2:
            h = gc.relu(h)
    loss = gc.cross_entropy(h, y)
    t0 = time.perf_counter()
    step = gc.compile([x, y], loss, updates=[(p, p - 0.05 * g) for p, g in zip(params, gc.grad(loss, params))],
                      backend=backend)
    return step, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args(argv)
    t_import = time.perf_counter()
    import graphc  # noqa: F401
    t_import = time.perf_counter() - t_import
    step, compile_s = build(args.backend)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 784)).astype(np.float32)
    Y = rng.integers(0, 10, 256)
    first = float(step(X, Y))
    for _ in range(10):
        step(X, Y)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        last = float(step(X, Y))
    dt = (time.perf_counter() - t0) / args.steps
    kernels = [k for k in step.kernels if k.kind != "view"]
    print(json.dumps({"backend": args.backend, "import_s": round(t_import, 3), "compile_s": round(compile_s, 3),
                      "kernels": len(kernels), "ms_per_step": round(dt * 1e3, 3),
                      "steps_per_s": round(1 / dt, 1), "loss_first": round(first, 4), "loss_last": round(last, 4),
                      "cache": {k: v for k, v in step.cache_info().items() if k in ("reused", "numba_cache_hits",
                                                                                    "numba_cache_misses")}}))


if __name__ == "__main__":
    main()

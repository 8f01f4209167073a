"""Run by tests/distributed/test_mpi.py: one training run, plain (--reference) or data parallel under
`mpiexec -n N python -m mpi4py mpi_worker.py`; writes every parameter and the history per rank."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import graphc as gc

OPTIMIZERS = {
    "sgd": lambda: gc.optim.SGD(0.1),
    "momentum": lambda: gc.optim.SGD(0.05, momentum=0.9),
    "adam": lambda: gc.optim.Adam(1e-3),
}


def data(n, dtype):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 5)).astype(dtype)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] > 0).astype(np.int64)
    return X, y


def trainer(opt, dtype, distributed):
    gc.seed(3)
    x = gc.placeholder((None, 5), dtype, name="x")
    y = gc.placeholder((None,), "int64", name="y")
    model = gc.nn.Sequential(gc.nn.Linear(5, 16, dtype=dtype), gc.nn.Tanh(), gc.nn.Dropout(0.25),
                             gc.nn.Linear(16, 2, dtype=dtype))
    logits = model(x)
    loss = gc.cross_entropy(logits, y)
    return gc.Trainer([x, y], loss, OPTIMIZERS[opt](), metrics={"accuracy": gc.accuracy(logits, y)},
                      model=model, backend=os.environ.get("GRAPHC_TEST_BACKEND", "numba"), distributed=distributed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--optimizers", default="sgd,momentum,adam")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--raise-on", type=int, default=-1, help="this rank raises after its first epoch")
    args = ap.parse_args()
    X, y = data(103, args.dtype)  # batch 16: the last batch has 7 samples (uneven shards)
    Xv, yv = data(41, args.dtype)
    rank = 0 if args.reference else gc.distributed.init().rank
    result = {}
    if not args.reference:  # broadcast: every rank ends with rank 0's values, whatever it had
        import numba
        p = gc.parameter(np.full((2, 3), float(rank)), name="p")
        q = gc.parameter(np.int64(10 * rank + 1), name="q", trainable=False)
        gc.distributed.broadcast({"p": p, "q": q})
        result["broadcast"] = [p.value.tolist(), int(q.value)]
        result["numba_threads"] = numba.get_num_threads()
    for opt in args.optimizers.split(","):
        t = trainer(opt, args.dtype, not args.reference)
        if args.raise_on == rank:
            t.fit(X, y, epochs=1, batch_size=args.batch, verbose=False)
            raise RuntimeError(f"rank {rank} fails on purpose")
        h = t.fit(X, y, epochs=args.epochs, batch_size=args.batch, validation_data=(Xv, yv), seed=5,
                  verbose=False)
        state = {k: p.value.copy() for k, p in t.named_state().items()}
        np.savez(f"{args.out}.{opt}.rank{rank}.npz", **state)
        result[opt] = h.history
        if not args.reference:
            gc.save(f"{args.out}.{opt}.ckpt.npz", t)
    with open(f"{args.out}.rank{rank}.json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    sys.exit(main())

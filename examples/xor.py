"""XOR with a 2-8-1 network, trained by full-batch SGD on a compiled step (NumPy backend).

The gradients come from gc.grad: the backward graph is built symbolically and compiled with the
forward pass and the updates into one step. Run: python examples/xor.py [--steps N] [--backend numpy]
"""
from __future__ import annotations

import argparse

import numpy as np

import graphc as gc


def build(lr: float = 2.0, seed: int = 0, backend: str = "numpy"):
    """The XOR network compiled: (train step, predict function). `graphc viz` draws the step."""
    rng = np.random.default_rng(seed)
    x = gc.placeholder((None, 2), "float32", name="x")
    t = gc.placeholder((None, 1), "float32", name="t")
    W1 = gc.parameter(rng.normal(0, 1, (2, 8)).astype(np.float32), name="W1")
    b1 = gc.parameter(np.zeros(8, np.float32), name="b1")
    W2 = gc.parameter(rng.normal(0, 1, (8, 1)).astype(np.float32), name="W2")
    b2 = gc.parameter(np.zeros(1, np.float32), name="b2")

    h = gc.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    loss = gc.binary_cross_entropy_with_logits(z, t)

    # plain gradient descent: p <- p - lr * dloss/dp (the same as [(p, p - lr * g) for p, g in
    # zip(params, gc.grad(loss, params))], with lr a run-time value)
    updates = gc.optim.SGD(lr).updates(loss, [W1, b1, W2, b2])
    step = gc.compile([x, t], loss, updates=updates, backend=backend)
    predict = gc.compile([x], gc.sigmoid(z), backend=backend)
    return step, predict


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args(argv)

    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    T = np.array([[0], [1], [1], [0]], np.float32)
    step, predict = build(backend=args.backend)

    for i in range(args.steps):
        value = float(step(X, T))
        if i % max(1, args.steps // 5) == 0:
            print(f"step {i:5d}  loss {value:.5f}")
    p = predict(X)
    print(f"final loss {float(step(X, T)):.5f}")
    print("predictions:", np.round(p.ravel(), 3), "targets:", T.ravel())
    acc = float(np.mean((p > 0.5) == (T > 0.5)))
    print(f"accuracy {acc:.2f}")
    return acc


if __name__ == "__main__":
    main()

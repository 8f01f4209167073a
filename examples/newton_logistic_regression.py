"""Logistic regression fitted two ways: Newton's method with the Hessian derived by the compiler,
and plain gradient descent, side by side (float64, NumPy backend).

Run: python examples/newton_logistic_regression.py [--iters N] [--backend numpy]
"""
from __future__ import annotations

import argparse

import numpy as np

import graphc as gc


def make_data(n: int = 400, seed: int = 0):
    """Two overlapping Gaussian classes in 3 features (a constant feature gives the bias)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.float64)
    X = rng.normal(size=(n, 3)) + np.where(y[:, None] > 0, 1.0, -1.0) * np.array([1.0, -0.5, 0.25])
    return np.hstack([X, np.ones((n, 1))]), y


def build(n_features: int = 4, l2: float = 1e-2):
    """Loss, gradient and Hessian of the L2-regularized mean logistic loss, as compiled functions."""
    x = gc.placeholder((None, n_features), "float64", name="x")
    y = gc.placeholder((None,), "float64", name="y")
    w = gc.placeholder((n_features,), "float64", name="w")
    loss = gc.binary_cross_entropy_with_logits(x @ w, y) + 0.5 * l2 * gc.sum(w * w)
    (g,) = gc.grad(loss, [w])
    H = gc.hessian(loss, w)
    return gc.compile([x, y, w], [loss, g, H]), gc.compile([x, y, w], [loss, g])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=8, help="Newton iterations (GD gets 25x as many)")
    ap.add_argument("--lr", type=float, default=1.0, help="gradient-descent step size")
    args = ap.parse_args(argv)

    X, Y = make_data()
    newton_fn, gd_fn = build(X.shape[1])

    w = np.zeros(X.shape[1])
    newton = []
    for _ in range(args.iters + 1):
        loss, g, H = newton_fn(X, Y, w)
        newton.append(float(loss))
        w = w - np.linalg.solve(H, g)  # the Newton step: H^-1 g
    w_newton = w

    w = np.zeros(X.shape[1])
    gd = []
    for _ in range(25 * args.iters + 1):
        loss, g = gd_fn(X, Y, w)
        gd.append(float(loss))
        w = w - args.lr * g

    best = newton[-1]
    print(f"{'iter':>5} {'Newton loss':>14} {'GD loss':>14}   (excess over the optimum {best:.10f})")
    for i in list(range(args.iters + 1)) + [5 * args.iters, 25 * args.iters]:
        nl = f"{newton[i] - best:14.3e}" if i < len(newton) else " " * 14
        print(f"{i:5d} {nl} {gd[i] - best:14.3e}")
    print("Newton weights:", np.round(w_newton, 4))
    print("GD weights:    ", np.round(w, 4))
    return newton, gd


if __name__ == "__main__":
    main()

"""Under- and over-fitting (Bishop, PRML 1.1): fit polynomials of degree 1, 4 and 20 to 15 noisy
samples of sin(2 pi x), compare training and test error, then tame degree 20 with an L2 penalty.

Each fit is full-batch Adam on a compiled step (features x^0..x^d of x in [-1, 1]).
Run: python examples/polynomial_fit.py [--steps 6000] [--backend numba|numpy]
"""
from __future__ import annotations

import argparse

import numpy as np

import graphc as gc


def data(n_train: int = 15, n_test: int = 200, noise: float = 0.2, seed: int = 1):
    rng = np.random.default_rng(seed)
    x_tr = np.sort(rng.uniform(-1, 1, n_train))
    x_te = np.linspace(-1, 1, n_test)
    f = lambda x: np.sin(np.pi * x)  # noqa: E731  - one period over [-1, 1]
    return (x_tr, f(x_tr) + noise * rng.normal(size=n_train)), (x_te, f(x_te) + noise * rng.normal(size=n_test))


def features(x, degree):
    return np.stack([x ** k for k in range(degree + 1)], 1)


def build(degree: int = 4, l2: float = 0.0, lr: float = 0.05, backend: str = "numba"):
    """Adam on the mean squared error of a degree-`degree` polynomial: (train step, error, weights)."""
    phi = gc.placeholder((None, degree + 1), "float64", name="phi")
    t = gc.placeholder((None,), "float64", name="t")
    w = gc.parameter(np.zeros(degree + 1), name="w")
    pred = phi @ w
    mse = gc.mse(pred, t)
    loss = mse + l2 * gc.l2_penalty([w[1:]])  # the bias is not penalized
    step = gc.compile([phi, t], mse, updates=gc.optim.Adam(lr).updates(loss, [w]), backend=backend)
    error = gc.compile([phi, t], mse, backend=backend)
    return step, error, w


def fit(degree: int, train, test, l2: float = 0.0, steps: int = 6000, lr: float = 0.05, backend: str = "numba"):
    """Train one polynomial; returns (train RMSE, test RMSE, weights)."""
    step, error, w = build(degree, l2, lr, backend)
    P_tr, P_te = features(train[0], degree), features(test[0], degree)
    for _ in range(steps):
        step(P_tr, train[1])
    return float(np.sqrt(error(P_tr, train[1]))), float(np.sqrt(error(P_te, test[1]))), w.value.copy()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--backend", default="numba")
    args = ap.parse_args(argv)

    train, test = data()
    rows = {}
    print(f"{'model':>22}  {'train RMSE':>10}  {'test RMSE':>9}  {'max |w|':>8}")
    for name, degree, l2 in [("degree 1", 1, 0.0), ("degree 4", 4, 0.0), ("degree 20", 20, 0.0),
                             ("degree 20 + L2 1e-3", 20, 1e-3)]:
        tr, te, w = fit(degree, train, test, l2, args.steps, backend=args.backend)
        rows[name] = (tr, te)
        print(f"{name:>22}  {tr:10.4f}  {te:9.4f}  {np.abs(w).max():8.2f}")
    print("degree 1 underfits (both errors high); degree 20 overfits (train error below the noise level 0.2, "
          "test error up); the L2 penalty brings degree 20 back")
    return rows


if __name__ == "__main__":
    main()

"""Logistic regression on the Wisconsin breast cancer data: one linear layer, sigmoid cross-entropy,
mini-batch SGD with momentum, 5-fold cross-validation, then a test-set score against the
majority-class baseline.

Run: python examples/logistic_regression.py [--epochs 30] [--backend numba|numpy] [--folds 5]
"""
from __future__ import annotations

import argparse

from datasets import breast_cancer

import graphc as gc


def build(n_features: int = 30, lr: float = 0.05, l2: float = 1e-3, backend: str = "numba", seed: int = 0):
    """A Trainer for p(y=1 | x) = sigmoid(x @ w + b), with a small L2 penalty on w."""
    gc.seed(seed)
    model = gc.nn.Linear(n_features, 1, init="zeros")
    x = gc.placeholder((None, n_features), "float32", name="x")
    t = gc.placeholder((None,), "float32", name="t")
    z = gc.reshape(model(x), (-1,))
    loss = gc.binary_cross_entropy_with_logits(z, t) + l2 / 2 * gc.l2_penalty([model.W])
    return gc.Trainer([x, t], loss, gc.optim.SGD(lr, momentum=0.9), model=model, backend=backend,
                      metrics={"accuracy": gc.binary_accuracy(z, t, threshold=0.0)}, predict=gc.sigmoid(z))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    (X, y), (X_test, y_test) = breast_cancer()
    fit = dict(epochs=args.epochs, batch_size=32, verbose=False)
    cv = gc.cross_validate(lambda: build(backend=args.backend), X, y, k=args.folds, **fit)
    print(f"{args.folds}-fold cross-validation accuracy {cv.mean('accuracy'):.4f} ± {cv.std('accuracy'):.4f}")
    trainer = build(backend=args.backend)
    trainer.fit(X, y, **{**fit, "verbose": None if not args.quiet else False})
    test = trainer.evaluate(X_test, y_test)
    baseline = max(y_test.mean(), 1 - y_test.mean())
    print(f"test accuracy {test['accuracy']:.4f} (majority-class baseline {baseline:.4f}), "
          f"test loss {test['loss']:.4f}")
    return {"cv_accuracy": cv.mean("accuracy"), "test_accuracy": test["accuracy"], "baseline": float(baseline)}


if __name__ == "__main__":
    main()

"""A linear softmax classifier on the 8x8 digits: logits = x @ W + b, cross-entropy, Adam.

Run: python examples/softmax_digits.py [--epochs 40] [--backend numba|numpy]
"""
from __future__ import annotations

import argparse

from datasets import digits

import graphc as gc


def build(lr: float = 0.01, backend: str = "numba", seed: int = 0):
    """A Trainer for the 64 -> 10 softmax regression."""
    gc.seed(seed)
    model = gc.nn.Linear(64, 10, init="zeros")
    x = gc.placeholder((None, 64), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    logits = model(x)
    return gc.Trainer([x, y], gc.cross_entropy(logits, y), gc.optim.Adam(lr), model=model, backend=backend,
                      metrics={"accuracy": gc.accuracy(logits, y)}, predict=gc.softmax(logits))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    train, val, test = digits()
    trainer = build(backend=args.backend)
    h = trainer.fit(*train, epochs=args.epochs, batch_size=64, validation_data=val,
                    verbose=False if args.quiet else None)
    result = trainer.evaluate(*test)
    print(f"{h.epochs} epochs in {h.seconds:.1f}s: validation accuracy {h['val_accuracy'][-1]:.4f}, "
          f"test accuracy {result['accuracy']:.4f}")
    return {"test_accuracy": result["accuracy"], "val_accuracy": h["val_accuracy"][-1]}


if __name__ == "__main__":
    main()

"""A small convolutional network on the 8x8 digits: two 3x3 convolutions and a max pool, a third
convolution and a pool, dropout and a linear classifier; Adam with a cosine schedule and early
stopping on a validation set. Convolutions run as im2col + one batched GEMM (gc.conv2d).

Run: python examples/cnn_digits.py [--epochs 40] [--backend numba|numpy|cuda] [--quiet]
"""
from __future__ import annotations

import argparse
import time

from datasets import digits

import graphc as gc


def images(X):
    """Flat 64-pixel rows as (N, 1, 8, 8) images."""
    return X.reshape(-1, 1, 8, 8)


def build(backend: str = "numba", seed: int = 0, lr: float = 2e-3, width: int = 16):
    """The CNN and its Trainer: x (N, 1, 8, 8) float32, y (N,) int64 labels."""
    gc.seed(seed)
    w = width
    model = gc.nn.Sequential(
        gc.nn.Conv2d(1, w, 3, padding=1), gc.nn.ReLU(),
        gc.nn.Conv2d(w, 2 * w, 3, padding=1), gc.nn.ReLU(), gc.nn.MaxPool2d(2),        # 8x8 -> 4x4
        gc.nn.Conv2d(2 * w, 4 * w, 3, padding=1), gc.nn.ReLU(), gc.nn.MaxPool2d(2),    # 4x4 -> 2x2
        gc.nn.Flatten(), gc.nn.Dropout(0.25),
        gc.nn.Linear(16 * w, 10))
    x = gc.placeholder((None, 1, 8, 8), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    logits = model(x)
    loss = gc.cross_entropy(logits, y)
    return gc.Trainer([x, y], loss, gc.optim.Adam(lr), model=model, backend=backend,
                      metrics={"accuracy": gc.accuracy(logits, y)}, predict=gc.softmax(logits))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--width", type=int, default=16, help="channels of the first convolution")
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (smoke runs)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    (Xtr, ytr), (Xva, yva), (Xte, yte) = digits()
    Xtr, Xva, Xte = images(Xtr), images(Xva), images(Xte)
    if args.limit:
        Xtr, ytr = Xtr[:args.limit], ytr[:args.limit]
    t0 = time.perf_counter()
    trainer = build(args.backend, width=args.width)
    compile_s = time.perf_counter() - t0
    print(f"compiled the training step for {args.backend} in {compile_s:.1f}s "
          f"({len(trainer.train_step.kernels)} kernels)")
    h = trainer.fit(Xtr, ytr, epochs=args.epochs, batch_size=64, validation_data=(Xva, yva),
                    schedule=gc.optim.cosine(2e-3, args.epochs), early_stopping=10,
                    verbose=False if args.quiet else True)
    result = trainer.evaluate(Xte, yte)
    print(f"trained {h.epochs} epochs in {h.seconds:.1f}s (best epoch "
          f"{None if h.best_epoch is None else h.best_epoch + 1}, validation accuracy {max(h['val_accuracy']):.4f})")
    print(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}")
    return {"test_accuracy": result["accuracy"], "epochs": h.epochs, "seconds": h.seconds,
            "compile_seconds": compile_s}


if __name__ == "__main__":
    main()

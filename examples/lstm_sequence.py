"""An LSTM predicting the next value of noisy sine waves, beside the baseline it must beat.

Each sequence is sin(w t + phase) plus Gaussian noise for T steps, with a frequency and phase of its
own; the target is the clean value at step T + 1. The persistence baseline predicts the last noisy
observation; the LSTM (gc.nn.LSTM: one gc.scan over the T steps, trained with Adam and gradients clipped to a global
norm of 1, as the course advises against exploding gradients) has to learn both to filter the
noise and to extrapolate the phase. Both are scored by mean squared error on held-out sequences.

Run: python examples/lstm_sequence.py [--epochs 30] [--steps 12] [--backend numba|numpy|cuda] [--quiet]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import graphc as gc


def waves(n: int, steps: int, noise: float = 0.2, seed: int = 0):
    """(inputs (n, steps, 1) float32, targets (n, 1) float32): noisy sine waves and their next
    clean value."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.3, 0.9, (1, n))
    phase = rng.uniform(0, 2 * np.pi, (1, n))
    t = np.arange(steps + 1)[:, None]
    clean = np.sin(freq * t + phase)
    x = clean[:steps] + noise * rng.standard_normal((steps, n))
    return x.T[:, :, None].astype(np.float32), clean[steps][:, None].astype(np.float32)


def build(backend: str = "numba", steps: int = 12, hidden: int = 32, seed: int = 0, lr: float = 1e-2):
    """The LSTM regressor and its Trainer: x (N, steps, 1) -> the next value (N, 1)."""
    gc.seed(seed)
    lstm = gc.nn.LSTM(1, hidden, batch_first=True, seed=seed)
    head = gc.nn.Linear(hidden, 1, seed=seed + 7)
    x = gc.placeholder((None, steps, 1), "float32", name="x")
    y = gc.placeholder((None, 1), "float32", name="y")
    _, (h, _) = lstm(x)  # h: (num_layers, N, hidden)
    pred = head(h[-1])
    loss = gc.mse(pred, y)
    opt = gc.optim.Adam(lr)
    opt.clip_norm = 1.0
    model = gc.nn.Sequential(lstm, head)  # for the Trainer: the parameters by path
    return gc.Trainer([x, y], loss, opt, model=model, backend=backend, predict=pred)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=12, help="sequence length")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--train", type=int, default=2000, help="training sequences")
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    Xtr, ytr = waves(args.train, args.steps, seed=0)
    Xte, yte = waves(500, args.steps, seed=1)
    t0 = time.perf_counter()
    trainer = build(args.backend, args.steps, args.hidden)
    compile_s = time.perf_counter() - t0
    print(f"compiled the training step ({args.steps} steps, one scan per layer) for {args.backend} in {compile_s:.1f}s "
          f"({len(trainer.train_step.kernels)} kernels)")
    h = trainer.fit(Xtr, ytr, epochs=args.epochs, batch_size=64, schedule=gc.optim.cosine(1e-2, args.epochs),
                    verbose=False if args.quiet else True)
    lstm_mse = float(trainer.evaluate(Xte, yte)["loss"])
    base_mse = float(np.mean((Xte[:, -1] - yte) ** 2))
    print(f"trained {h.epochs} epochs in {h.seconds:.1f}s")
    print(f"test MSE: LSTM {lstm_mse:.4f}   persistence baseline (last noisy value) {base_mse:.4f}   "
          f"({base_mse / lstm_mse:.1f}x lower error)")
    return {"lstm_mse": lstm_mse, "baseline_mse": base_mse, "seconds": h.seconds, "compile_seconds": compile_s}


if __name__ == "__main__":
    main()

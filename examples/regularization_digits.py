"""Regularization compared: the same 64-512-512-10 MLP trained on only 300 digits, plain, with dropout,
with weight decay (AdamW) and with batch normalization, scored on a held-out validation set.

With so few samples every variant fits its training set perfectly; the validation columns show
what each regularizer buys. The digits are an easy set, so the differences are small (a few
tenths of a percent of accuracy, a few hundredths of loss) and depend on the seed: read the table,
do not expect a winner.
Run: python examples/regularization_digits.py [--epochs 60] [--backend numpy|numba] [--train 300]
"""
from __future__ import annotations

import argparse

from datasets import digits

import graphc as gc

VARIANTS = ["plain", "dropout 0.5", "weight decay", "batch norm"]


def build(variant: str = "dropout", backend: str = "numpy", seed: int = 0):
    """A Trainer for one variant of the MLP."""
    gc.seed(seed)
    nn = gc.nn

    def block(n_in, n_out):
        layers = [nn.Linear(n_in, n_out, init="he_normal", bias=variant != "batch norm")]
        if variant == "batch norm":
            layers.append(nn.BatchNorm(n_out))
        layers.append(nn.ReLU())
        if variant.startswith("dropout"):
            layers.append(nn.Dropout(0.5))
        return layers
    model = nn.Sequential(*block(64, 512), *block(512, 512), nn.Linear(512, 10))
    x = gc.placeholder((None, 64), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    logits = model(x)
    opt = gc.optim.AdamW(1e-3, weight_decay=0.5) if variant == "weight decay" else gc.optim.Adam(1e-3)
    return gc.Trainer([x, y], gc.cross_entropy(logits, y), opt, model=model, backend=backend,
                      metrics={"accuracy": gc.accuracy(logits, y)})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--train", type=int, default=300, help="training samples used")
    # numpy by default: eight compiled functions cost ~90 s of cold numba compilation on 2 cores
    # (about 8 s in all once numba's cache is warm); `--backend numba` to compare
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args(argv)

    (X, y), val, _ = digits()
    X, y = X[:args.train], y[:args.train]
    results = {}
    print(f"{'variant':>13}  {'train acc':>9}  {'val acc':>7}  {'val loss':>8}")
    for variant in VARIANTS:
        trainer = build(variant, args.backend)
        trainer.fit(X, y, epochs=args.epochs, batch_size=32, verbose=False)
        tr, va = trainer.evaluate(X, y), trainer.evaluate(*val)
        results[variant] = {"train_accuracy": tr["accuracy"], "val_accuracy": va["accuracy"], "val_loss": va["loss"]}
        print(f"{variant:>13}  {tr['accuracy']:9.4f}  {va['accuracy']:7.4f}  {va['loss']:8.4f}")
    return results


if __name__ == "__main__":
    main()

"""A multilayer perceptron on the 8x8 digits: 64-256-128-10 with ReLU and dropout, Adam with a
cosine learning-rate schedule, early stopping on a validation set, a checkpoint of the best
weights, the training curves, a drawing of the compiled training step and its explorer page
(gc.explore). The main job of `make demo`.

Run: python examples/mlp_digits.py [--epochs 40] [--backend numba|numpy] [--out out] [--quiet]
Data parallel on N processes (the same model and accuracy): mpiexec -n N python -m mpi4py
examples/mlp_digits.py --distributed
"""
from __future__ import annotations

import argparse
import os
import time

from datasets import digits

import graphc as gc


def build(backend: str = "numba", seed: int = 0, lr: float = 2e-3, dropout: float = 0.1, hidden=(256, 128),
          distributed: bool = False):
    """The model, its placeholders and a Trainer; the graph is the one `graphc viz` draws.
    hidden: the two hidden widths (smaller for the CUDA simulator's reduced run in CI)."""
    gc.seed(seed)
    h1, h2 = hidden
    model = gc.nn.Sequential(
        gc.nn.Linear(64, h1, init="he_normal"), gc.nn.ReLU(), gc.nn.Dropout(dropout),
        gc.nn.Linear(h1, h2, init="he_normal"), gc.nn.ReLU(),
        gc.nn.Linear(h2, 10))
    x = gc.placeholder((None, 64), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    logits = model(x)
    loss = gc.cross_entropy(logits, y)
    return gc.Trainer([x, y], loss, gc.optim.Adam(lr), model=model, backend=backend,
                      metrics={"accuracy": gc.accuracy(logits, y)}, predict=gc.softmax(logits),
                      distributed=distributed)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--out", default="out", help="folder for the curves and the checkpoint ('' for none)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--distributed", action="store_true", help="data parallel over the MPI ranks (run under mpiexec)")
    args = ap.parse_args(argv)

    train, val, test = digits()
    t0 = time.perf_counter()
    trainer = build(args.backend, distributed=args.distributed)
    compile_s = time.perf_counter() - t0
    world = trainer.world
    root = world is None or world.is_root
    say = print if root else (lambda *a, **k: None)
    ranks = "" if world is None else f" on {world.size} ranks"
    say(f"compiled the training step for {args.backend}{ranks} in {compile_s:.1f}s "
        f"({len(trainer.step_function.kernels)} kernels)")
    h = trainer.fit(*train, epochs=args.epochs, batch_size=64, validation_data=val,
                    schedule=gc.optim.cosine(2e-3, args.epochs), early_stopping=10,
                    verbose=False if args.quiet else True)
    result = trainer.evaluate(*test)
    best = None if h.best_epoch is None else h.best_epoch + 1
    say(f"trained {h.epochs} epochs in {h.seconds:.1f}s (best epoch {best}, "
        f"validation accuracy {max(h['val_accuracy']):.4f})")
    say(f"test accuracy {result['accuracy']:.4f}  test loss {result['loss']:.4f}")
    if args.out:
        ckpt = gc.save(os.path.join(args.out, "mlp_digits.npz"), trainer)  # data parallel: rank 0 writes
    if args.out and root:
        curves = h.plot(os.path.join(args.out, "training_curves.png"),
                        title=f"MLP on digits ({args.backend}): test accuracy {result['accuracy']:.4f}")
        # the compiled training step: each fused kernel a cluster (DOT text if Graphviz is missing)
        graph = gc.render(gc.to_dot(trainer, stage="optimized"), os.path.join(args.out, "mlp_graph.svg"))
        # the explorer: every stage, each kernel's source and its share of a step on a batch of 64
        page = gc.explore(trainer, os.path.join(args.out, "mlp_digits.html"), feeds=(train[0][:64], train[1][:64]))
        print(f"wrote {curves}, {ckpt}, {graph} and {page}")
    return {"test_accuracy": result["accuracy"], "epochs": h.epochs, "seconds": h.seconds,
            "compile_seconds": compile_s}


if __name__ == "__main__":
    main()

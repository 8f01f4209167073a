"""Fine-tune a model exported from PyTorch: import the digits CNN that torch's dynamo exporter wrote
(tests/data/onnx/digits_cnn.onnx, its weights as external data; tools/export_onnx_models.py made
it), check it against onnxruntime, then train its last layer (head.weight, head.bias) on the
digits with Adam while the convolutions stay frozen, and compare test accuracy before and after.
The torch model was trained briefly (~80% on the digits); its head gets it further.

Run: python examples/onnx_finetune.py [--epochs 30] [--backend numba|numpy] [--quiet]
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from datasets import digits

import graphc as gc

MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "onnx", "digits_cnn.onnx")


def accuracy(fn, X, y) -> float:
    return float((fn(X)[0].argmax(1) == y).mean())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    (Xtr, ytr), _, (Xte, yte) = digits()
    Xtr, Xte = Xtr.reshape(-1, 1, 8, 8), Xte.reshape(-1, 1, 8, 8)
    model = gc.onnx.load(args.model, trainable=True)
    logits = model.outputs[0]
    predict = gc.compile(model.inputs, [logits], backend=args.backend, training=False)
    try:  # the import is exact: onnxruntime, where installed, gives the same logits
        import onnxruntime as ort
        sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
        diff = float(np.abs(sess.run(None, {model.input_names[0]: Xte})[0] - predict(Xte)[0]).max())
        print(f"imported {os.path.basename(args.model)}: max |graphc - onnxruntime| = {diff:.2e}")
    except ImportError:
        diff = None
    before = accuracy(predict, Xte, yte)
    head = [p for p in model.parameters if p.label.startswith("head.")]
    y = gc.placeholder((None,), "int64", name="y")
    loss = gc.cross_entropy(logits, y)
    step = gc.compile(model.inputs + [y], loss, gc.optim.Adam(1e-2).updates(loss, head), backend=args.backend)
    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        order = rng.permutation(len(Xtr))
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            last = float(step(Xtr[batch], ytr[batch]))
        if not args.quiet and (epoch % 5 == 4 or epoch == args.epochs - 1):
            print(f"epoch {epoch + 1:3d}  loss {last:.4f}  test accuracy {accuracy(predict, Xte, yte):.3f}")
    after = accuracy(predict, Xte, yte)
    print(f"test accuracy: {before:.3f} as exported -> {after:.3f} with the head fine-tuned "
          f"({len(head)} of {len(model.parameters)} tensors trained)")
    return {"before": before, "after": after, "onnxruntime_diff": diff}


if __name__ == "__main__":
    main()

"""A character-level GPT trained on the source of a dozen Python standard-library modules.

The text ships with every Python: argparse, textwrap, functools, heapq, random, string, typing,
dataclasses, collections, json, pathlib, shutil, tempfile and csv (~400k characters; the last
10% is held out). The vocabulary is Python's printable characters plus an unknown id. The model
is a GPT (token and learned position embeddings, pre-norm transformer blocks with causal
self-attention and a GELU feed-forward, a final layer norm and a linear head), trained with AdamW,
a cosine learning rate with linear warm-up, and gradients clipped to a global norm of 1. It
reports train and validation loss in nats and bits per character, samples text at the end, and
draws its curves, its compiled model and (as DOT text) its compiled training step.

Run: python examples/char_gpt.py [--steps 3000] [--backend numba|numpy|cuda] [--out DIR] [--quiet]
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from datasets import MODULES, VOCAB, batches, decode, stdlib_text

import graphc as gc


class GPT(gc.nn.Module):
    """Token and position embeddings, num_layers pre-norm TransformerBlocks (causal), a final
    LayerNorm and a linear head: ids (batch, context) -> logits (batch, context, vocab). Parameter
    names follow the torch module in tools/torch_reference.py (tok, pos, blocks.K.*, norm, head)."""

    def __init__(self, vocab: int, d_model: int = 128, num_heads: int = 4, num_layers: int = 2, context: int = 64,
                 d_ff: int | None = None, seed: int = 0):
        self.tok = gc.nn.Embedding(vocab, d_model, seed=seed, init=_normal_002)
        self.pos = gc.nn.Embedding(context, d_model, seed=seed + 1, init=_normal_002)
        self.blocks = gc.nn.Sequential(*(gc.nn.TransformerBlock(d_model, num_heads, d_ff or 4 * d_model, causal=True,
                                                                seed=seed + 100 * (k + 1))
                                         for k in range(num_layers)))
        self.norm = gc.nn.LayerNorm(d_model)
        self.head = gc.nn.Linear(d_model, vocab, seed=seed + 2)
        self.context = context
        self._name()

    def forward(self, ids):
        t = ids.shape[1]
        if t is None or t > self.context:
            raise gc.ShapeError(f"GPT: a sequence of length {t} does not fit the context {self.context}")
        x = self.tok(ids) + self.pos.table[:t]
        return self.head(self.norm(self.blocks(x)))


def _normal_002(shape, seed=None, dtype="float32"):
    """N(0, 0.02), GPT-2's embedding initialisation."""
    return (np.random.default_rng(seed).standard_normal(shape) * 0.02).astype(dtype)


def loss_of(logits, y):
    """Mean next-character cross-entropy over every position, in nats."""
    return gc.cross_entropy(gc.reshape(logits, (-1, logits.shape[-1])), gc.reshape(y, (-1,)))


def build(args, backend: str, model):
    """(optimizer, train step, eval loss, logits function) of a language model, compiled for backend."""
    x = gc.placeholder((args.batch, args.context), "int64", name="x")
    y = gc.placeholder((args.batch, args.context), "int64", name="y")
    loss = loss_of(model(x), y)
    opt = gc.optim.AdamW(args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    opt.clip_norm = 1.0
    step = gc.compile([x, y], loss, opt.updates(loss), backend=backend)
    evaluate = gc.compile([x, y], loss, backend=backend, training=False)
    one = gc.placeholder((1, args.context), "int64", name="prompt")
    predict = gc.compile([one], model(one), backend=backend, training=False)
    return opt, step, evaluate, predict


def sample(predict, prompt: np.ndarray, n: int, context: int, temperature: float = 0.8, seed: int = 0) -> str:
    """n characters after prompt (at least `context` ids), drawn from the model's softmax."""
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    for _ in range(n):
        z = predict(np.asarray(ids[-context:], np.int64)[None])[0, -1].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return decode(ids[len(prompt):])


def parser(doc: str, out: str, **defaults) -> argparse.ArgumentParser:
    """The options every character-level language model example takes (defaults overridable)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    d = dict(steps=3000, batch=32, context=64, lr=3e-3, warmup=100, weight_decay=0.1) | defaults
    for name in ("steps", "batch", "context", "warmup"):
        ap.add_argument(f"--{name}", type=int, default=d[name])
    ap.add_argument("--lr", type=float, default=d["lr"])
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--sample", type=int, default=400, help="characters to sample at the end")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--out", default=out, help="directory for curves and the drawings ('' for none)")
    ap.add_argument("--quiet", action="store_true")
    return ap


def run(args, model, describe: str, name: str) -> dict:
    """Train a language model on the stdlib text as the module docstring says; its results."""
    say = (lambda *a: None) if args.quiet else print
    data = stdlib_text()
    cut = int(len(data) * 0.9)
    train, val = data[:cut], data[cut:]
    say(f"corpus: {len(data):,} characters from {len(MODULES)} stdlib modules, vocabulary {VOCAB}; "
        f"train {len(train):,}, validation {len(val):,}")

    t0 = time.perf_counter()
    opt, step, evaluate, predict = build(args, args.backend, model)
    compile_s = time.perf_counter() - t0
    n_params = sum(p.value.size for p in model.parameters())
    say(f"{describe}, {n_params:,} parameters; compiled for {args.backend} in {compile_s:.1f}s "
        f"({len(step.kernels)} kernels in the training step)")

    schedule = gc.optim.cosine(args.lr, args.steps, min_lr=args.lr / 10, warmup=args.warmup)
    stream = batches(train, args.batch, args.context, args.seed)
    val_batches = [b for _, b in zip(range(args.eval_batches), batches(val, args.batch, args.context, 12345))]

    def val_loss():
        return float(np.mean([evaluate(x, y) for x, y in val_batches]))

    curve = {"step": [], "train": [], "val": []}
    recent, t_train = [], time.perf_counter()
    for s in range(args.steps):
        opt.lr = schedule(s)
        recent.append(float(step(*next(stream))))
        if (s + 1) % args.eval_every == 0 or s + 1 == args.steps:
            curve["step"].append(s + 1)
            curve["train"].append(float(np.mean(recent)))
            curve["val"].append(val_loss())
            recent = []
            say(f"step {s + 1:5d}  train {curve['train'][-1]:.4f}  val {curve['val'][-1]:.4f} nats "
                f"({curve['val'][-1] / math.log(2):.3f} bits/char)  lr {opt.lr:.2e}")
    seconds = time.perf_counter() - t_train
    final = curve["val"][-1] if curve["val"] else val_loss()
    say(f"trained {args.steps} steps in {seconds:.1f}s ({1000 * seconds / max(1, args.steps):.1f} ms/step); "
        f"validation {final:.4f} nats = {final / math.log(2):.3f} bits per character")
    text = sample(predict, val[:args.context], args.sample, args.context, seed=args.seed) if args.sample else ""
    if text:
        say("sample:\n" + text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        _plot(curve, os.path.join(args.out, f"{name}_curves.png"))
        # the compiled model (its kernels, drawn); the training step (hundreds of kernels) as DOT text:
        # Graphviz takes minutes to lay it out (dot -Tsvg NAME_step.dot -o step.svg)
        gc.render(gc.to_dot(predict, stage="optimized"), os.path.join(args.out, f"{name}_model.svg"))
        gc.render(gc.to_dot(step, stage="optimized", collapse=True), os.path.join(args.out, f"{name}_step.dot"))
    return {"val_loss": final, "n_parameters": n_params, "val_bpc": final / math.log(2), "curve": curve, "sample": text,
            "seconds": seconds, "compile_seconds": compile_s}


def main(argv=None) -> dict:
    ap = parser(__doc__, "out/char_gpt")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args(argv)
    model = GPT(VOCAB, args.d_model, args.heads, args.layers, args.context, seed=args.seed)
    return run(args, model, f"GPT: {args.layers} layers, d_model {args.d_model}, {args.heads} heads, context "
               f"{args.context}", "char_gpt")


def _plot(curve, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bpc = 1 / math.log(2)
    ax.plot(curve["step"], np.array(curve["train"]) * bpc, label="train")
    ax.plot(curve["step"], np.array(curve["val"]) * bpc, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

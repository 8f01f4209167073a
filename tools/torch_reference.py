"""Record PyTorch's losses for the models graphc must match, so `make test` compares without torch.

    python tools/torch_reference.py gpt        # writes tests/data/torch_gpt.npz
    python tools/torch_reference.py lstm       # writes tests/data/torch_lstm.npz
    python tools/torch_reference.py gpt-full   # examples/char_gpt.py's 3000-step run, in torch

Run where torch is installed (`make peers` makes a venv with it: ~/.cache/graphc-peers/venv). It
needs only NumPy and torch, not graphc. The file holds torch's initial weights (state_dict
names and layouts), the batches, the config and the loss of each of the training steps; the test
(tests/backends/test_torch_reference.py) loads the weights into the graphc model with
load_torch_state_dict, takes the same steps and compares the losses.
"""
from __future__ import annotations

import argparse
import math
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"

# a small GPT: examples/char_gpt.py's architecture at test size
GPT = dict(vocab=101, d_model=32, heads=2, layers=2, context=16, d_ff=64, batch=4, steps=20, lr=3e-3, warmup=5,
           weight_decay=0.1, betas=(0.9, 0.99), clip=1.0, seed=0)
# a small 2-layer LSTM LM: examples/char_lstm.py's architecture at test size
LSTM = dict(vocab=101, embed=16, hidden=32, layers=2, context=8, batch=4, steps=20, lr=3e-2, warmup=5,
            weight_decay=0.1, betas=(0.9, 0.99), clip=1.0, seed=0)


def cosine(lr, steps, min_lr, warmup):
    """graphc.optim.cosine, written again here so this script needs no graphc."""
    def schedule(s):
        if s < warmup:
            return lr * (s + 1) / warmup
        frac = min(1.0, (s - warmup) / max(1, steps - warmup))
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * frac))
    return schedule


def torch_gpt(c):
    """The torch twin of examples/char_gpt.py's GPT (the same parameter names: tok, pos, blocks.K.*,
    norm, head)."""
    import torch
    from torch import nn

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            d = c["d_model"]
            self.tok = nn.Embedding(c["vocab"], d)
            self.pos = nn.Embedding(c["context"], d)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(d, c["heads"], c["d_ff"], dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True) for _ in range(c["layers"]))
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, c["vocab"])

        def forward(self, ids):
            t = ids.shape[1]
            x = self.tok(ids) + self.pos.weight[:t]
            mask = nn.Transformer.generate_square_subsequent_mask(t)
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.head(self.norm(x))

    torch.manual_seed(c["seed"])
    return TorchGPT()


def train(model, c, stream, on_step=None):
    """c["steps"] AdamW steps with the cosine schedule and clipping; the losses."""
    import torch
    from torch import nn
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], betas=c["betas"], weight_decay=c["weight_decay"])
    schedule = cosine(c["lr"], c["steps"], c["lr"] / 10, c["warmup"])
    losses = []
    for s in range(c["steps"]):
        x, y = next(stream)
        for g in opt.param_groups:
            g["lr"] = schedule(s)
        logits = model(torch.from_numpy(x))
        loss = nn.functional.cross_entropy(logits.reshape(-1, c["vocab"]), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), c["clip"])
        opt.step()
        losses.append(loss.item())
        if on_step:
            on_step(s, losses)
    return losses


def torch_lstm_lm(c):
    """The torch twin of examples/char_lstm.py's LSTMLM (names emb, lstm, head)."""
    import torch
    from torch import nn

    class TorchLSTMLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(c["vocab"], c["embed"])
            self.lstm = nn.LSTM(c["embed"], c["hidden"], num_layers=c["layers"], batch_first=True)
            self.head = nn.Linear(c["hidden"], c["vocab"])

        def forward(self, ids):
            out, _ = self.lstm(self.emb(ids))
            return self.head(out)

    torch.manual_seed(c["seed"])
    return TorchLSTMLM()


def record(name: str, c: dict, model):
    """Train model for c["steps"] steps on seeded batches with a learnable target (so the loss
    falls) and write tests/data/torch_<name>.npz."""
    import torch
    init = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(c["seed"])
    xs = rng.integers(0, c["vocab"], (c["steps"], c["batch"], c["context"]))
    ys = (xs * 7 + 3) % c["vocab"]
    losses = train(model, c, iter(zip(xs, ys)))
    with torch.no_grad():
        final_logits = model(torch.from_numpy(xs[0])).numpy()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"torch_{name}.npz"
    np.savez_compressed(path, losses=np.array(losses), xs=xs, ys=ys, final_logits=final_logits,
                        config=np.array(repr(c)), torch_version=np.array(torch.__version__),
                        **{f"init/{k}": v for k, v in init.items()})
    print(f"wrote {path}: losses {losses[0]:.5f} .. {losses[-1]:.5f} (torch {torch.__version__})")


def gpt_full(steps: int):
    """examples/char_gpt.py's default run in torch: the same corpus, batches (seeded alike),
    validation batches, optimizer and schedule; prints the validation loss as the example does."""
    import sys
    import time

    import torch
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
    from datasets import VOCAB, batches, stdlib_text
    c = dict(vocab=VOCAB, d_model=128, heads=4, layers=2, context=64, d_ff=512, batch=32, steps=steps, lr=3e-3,
             warmup=100, weight_decay=0.1, betas=(0.9, 0.99), clip=1.0, seed=0)
    data = stdlib_text()
    cut = int(len(data) * 0.9)
    train_data, val = data[:cut], data[cut:]
    val_batches = [b for _, b in zip(range(20), batches(val, c["batch"], c["context"], 12345))]
    model = torch_gpt(c)

    def val_loss():
        with torch.no_grad():
            return float(np.mean([torch.nn.functional.cross_entropy(
                model(torch.from_numpy(x)).reshape(-1, c["vocab"]), torch.from_numpy(y).reshape(-1)).item()
                for x, y in val_batches]))

    def report(s, losses):
        if (s + 1) % 250 == 0 or s + 1 == steps:
            v = val_loss()
            print(f"step {s + 1:5d}  train {np.mean(losses[-250:]):.4f}  val {v:.4f} nats "
                  f"({v / math.log(2):.3f} bits/char)", flush=True)

    t0 = time.perf_counter()
    train(model, c, batches(train_data, c["batch"], c["context"], c["seed"]), report)
    seconds = time.perf_counter() - t0
    print(f"torch {torch.__version__}: {steps} steps in {seconds:.1f}s ({1000 * seconds / steps:.1f} ms/step) on "
          f"{torch.get_num_threads()} threads")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=["gpt", "lstm", "gpt-full"])
    ap.add_argument("--steps", type=int, default=3000, help="gpt-full: training steps")
    args = ap.parse_args(argv)
    if args.model == "gpt":
        record("gpt", GPT, torch_gpt(GPT))
    elif args.model == "lstm":
        record("lstm", LSTM, torch_lstm_lm(LSTM))
    else:
        gpt_full(args.steps)


if __name__ == "__main__":
    main()

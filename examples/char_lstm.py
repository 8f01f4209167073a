"""A character-level LSTM language model on the same stdlib text as examples/char_gpt.py.

Embedding, a num_layers LSTM (gc.nn.LSTM: PyTorch's gate order, two biases, batch first) and a
linear head predict the next character at every position; AdamW, cosine schedule with warm-up,
gradients clipped to 1, validation loss in nats and bits per character, a sample at the end. Each
LSTM layer is one gc.scan over the context (not unrolled): the compile time does not grow with it.

Run: python examples/char_lstm.py [--steps 2000] [--context 32] [--backend numba|numpy|cuda] [--out DIR]
"""
from __future__ import annotations

from char_gpt import parser, run
from datasets import VOCAB

import graphc as gc


class LSTMLM(gc.nn.Module):
    """ids (batch, T) -> logits (batch, T, vocab): embedding, LSTM, linear head. Parameter names
    follow the torch module in tools/torch_reference.py (emb, lstm, head)."""

    def __init__(self, vocab: int, embed: int = 64, hidden: int = 128, num_layers: int = 2, seed: int = 0):
        self.emb = gc.nn.Embedding(vocab, embed, seed=seed)
        self.lstm = gc.nn.LSTM(embed, hidden, num_layers=num_layers, batch_first=True, seed=seed + 1)
        self.head = gc.nn.Linear(hidden, vocab, seed=seed + 2)
        self._name()

    def forward(self, ids):
        out, _ = self.lstm(self.emb(ids))
        return self.head(out)


def main(argv=None) -> dict:
    ap = parser(__doc__, "out/char_lstm", steps=2000, context=32)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args(argv)
    model = LSTMLM(VOCAB, args.embed, args.hidden, args.layers, seed=args.seed)
    return run(args, model, f"LSTM LM: embedding {args.embed}, {args.layers} layers of {args.hidden}, "
               f"context {args.context}", "char_lstm")


if __name__ == "__main__":
    main()

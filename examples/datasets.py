"""Data sets the examples share: scikit-learn's bundled copies (no download), split and scaled, and
text from Python's own standard library, as character ids."""
from __future__ import annotations

import importlib
import string

import numpy as np


def digits(seed: int = 0, validation: float = 0.15, test: float = 0.25):
    """The 8x8 handwritten digits (1797 images, 10 classes) as float32 in [0, 1], int64 labels:
    (X_train, y_train), (X_val, y_val), (X_test, y_test), stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test, random_state=seed, stratify=y)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=validation, random_state=seed, stratify=y_tr)
    return (X_tr, y_tr), (X_va, y_va), (X_te, y_te)


def breast_cancer(seed: int = 0, test: float = 0.25):
    """Wisconsin breast cancer (569 samples, 30 features, binary), standardized with training statistics."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test, random_state=seed, stratify=y)
    mu, sd = X_tr.mean(0), X_tr.std(0)
    scale = lambda a: ((a - mu) / sd).astype(np.float32)  # noqa: E731
    return (scale(X_tr), y_tr.astype(np.float32)), (scale(X_te), y_te.astype(np.float32))


# ---------------------------------------------------------------- text that ships with every Python
MODULES = ["argparse", "textwrap", "functools", "heapq", "random", "string", "typing", "dataclasses",
           "collections", "json", "pathlib", "shutil", "tempfile", "csv"]
CHARS = string.printable  # 100 characters; id 0 is "unknown"


def _corpus() -> str:
    """The concatenated sources of MODULES (a package contributes its __init__.py)."""
    parts = []
    for name in MODULES:
        with open(importlib.import_module(name).__file__, encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


def _encode(text: str) -> np.ndarray:
    table = {c: i + 1 for i, c in enumerate(CHARS)}
    return np.fromiter((table.get(c, 0) for c in text), dtype=np.int64, count=len(text))


def decode(ids) -> str:
    return "".join("?" if i == 0 else CHARS[i - 1] for i in ids)


VOCAB = len(CHARS) + 1


def batches(data: np.ndarray, batch: int, context: int, seed: int):
    """An endless stream of (x, y) (batch, context) int64 windows at random offsets; y is x shifted
    by one character."""
    rng = np.random.default_rng(seed)
    while True:
        o = rng.integers(0, len(data) - context - 1, batch)
        idx = o[:, None] + np.arange(context)
        yield data[idx], data[idx + 1]


def stdlib_text() -> np.ndarray:
    """The sources of MODULES as int64 character ids (0: a character outside CHARS)."""
    return _encode(_corpus())

"""Training-time front-end functions: dropout, batch norm, weight penalties and accuracy metrics.

Dropout and batch norm mean one thing while training and another at inference; each returns a
train_switch of the two, and gc.compile(..., training=...) picks one. The state they keep between
steps (dropout's random key, batch norm's running statistics) lives in non-trainable parameters
whose `default_update` a training function applies after each call.
"""
from __future__ import annotations

import numpy as np

from . import api as F
from .errors import DTypeError, GraphError, ShapeError
from .ir import Node, user_location
from .ops.base import fmt_shape
from .rng import key_for


def dropout(x, rate: float, seed: int | None = None) -> Node:
    """Inverted dropout: while training, zero each entry with probability `rate` and scale the rest
    by 1 / (1 - rate); at inference the identity. Random numbers come from a key in the graph
    (seeded by `seed`, else by graphc's seed sequence) that advances by one every training step."""
    x = F.as_node(x)
    if x.dtype.kind != "f":
        raise DTypeError(f"dropout needs a float tensor, got {x.label} ({x.dtype})", user_location())
    if not 0.0 <= float(rate) <= 1.0:
        raise GraphError(f"dropout rate must be in [0, 1], got {rate}", user_location())
    if rate == 0:
        return x
    key = F.parameter(np.int64(key_for(seed)), name="dropout_key", trainable=False)
    key.data.default_update, key.data.role = key + 1, "rng"
    if rate == 1:
        train = F.mul(x, 0.0)
    else:
        keep = F.greater_equal(F.random_uniform(key, x), rate)
        train = F.where(keep, F.mul(x, 1.0 / (1.0 - float(rate))), 0.0)
    return F.train_switch(train, x)


def batch_norm(x, gamma=None, beta=None, running_mean=None, running_var=None, *, momentum: float = 0.1,
               eps: float = 1e-5, name: str = "bn") -> Node:
    """Batch normalization (Ioffe & Szegedy 2015) over every axis but the channel axis 1 of (N, C) or
    (N, C, H, W) input. Training: normalize with the batch's mean and (biased) variance and move the
    running averages (running = (1 - momentum) * running + momentum * batch, unbiased variance, as
    PyTorch); inference: normalize with the running averages. gamma/beta scale and shift (None: 1/0);
    running statistics are created (zeros/ones parameters) when not given."""
    x = F.as_node(x)
    if x.ndim < 2 or x.shape[1] is None:
        raise ShapeError(f"batch_norm needs (N, C, ...) input with a known C, got {x.label} "
                         f"{fmt_shape(x.shape)}", user_location())
    if x.dtype.kind != "f":
        raise DTypeError(f"batch_norm needs a float tensor, got {x.label} ({x.dtype})", user_location())
    c = x.shape[1]
    def stat(v, what):
        node = F.parameter(np.full(c, v, x.dtype), name=f"{name}.{what}", trainable=False)
        node.data.role = "statistics"
        return node

    running_mean = stat(0.0, "running_mean") if running_mean is None else F.as_node(running_mean)
    running_var = stat(1.0, "running_var") if running_var is None else F.as_node(running_var)
    for what, v in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if v is not None and F.as_node(v).shape != (c,):
            raise ShapeError(f"batch_norm {what} must have shape ({c},) for {x.label} {fmt_shape(x.shape)}, "
                             f"got {fmt_shape(F.as_node(v).shape)}", user_location())
    axes = tuple(a for a in range(x.ndim) if a != 1)
    per_channel = (1, c) + (1,) * (x.ndim - 2)

    def affine(xhat):
        y = xhat if gamma is None else F.mul(xhat, F.reshape(gamma, per_channel))
        return y if beta is None else F.add(y, F.reshape(beta, per_channel))

    mean_b = F.mean(x, axes)
    d = F.sub(x, F.reshape(mean_b, per_channel))
    var_b = F.mean(F.mul(d, d), axes)
    train = affine(F.div(d, F.sqrt(F.add(F.reshape(var_b, per_channel), eps))))
    test = affine(F.div(F.sub(x, F.reshape(running_mean, per_channel)),
                        F.sqrt(F.add(F.reshape(running_var, per_channel), eps))))
    if running_mean.op.name == "parameter" and running_var.op.name == "parameter":
        n = F.size_of(x, axes, x.dtype)
        m = float(momentum)
        running_mean.data.default_update = F.add(F.mul(running_mean, 1 - m), F.mul(mean_b, m))
        unbiased = F.div(F.mul(var_b, n), F.maximum(F.sub(n, 1), 1))
        running_var.data.default_update = F.add(F.mul(running_var, 1 - m), F.mul(unbiased, m))
    return F.train_switch(train, test)


def _total(terms: list[Node]) -> Node:
    out = terms[0]
    for t in terms[1:]:
        out = F.add(out, t)
    return out


def _params(params) -> list[Node]:
    ps = [params] if isinstance(params, Node) else list(params)
    for p in ps:
        if not isinstance(p, Node):
            raise GraphError(f"penalties take graph nodes, got {type(p).__name__}", user_location())
    return ps


def l2_penalty(params) -> Node:
    """Sum of squares of every entry of params: add (lambda / 2) * l2_penalty to a loss for SGD's
    weight_decay=lambda (the course's L2 regularization)."""
    ps = _params(params)
    return _total([F.sum(F.mul(p, p)) for p in ps]) if ps else F.constant(np.float32(0))


def l1_penalty(params) -> Node:
    """Sum of absolute values of every entry of params (L1 regularization: sparse weights)."""
    ps = _params(params)
    return _total([F.sum(F.abs(p)) for p in ps]) if ps else F.constant(np.float32(0))


def accuracy(logits, labels) -> Node:
    """Fraction of rows whose largest score (over the last axis) is at the integer label."""
    logits, labels = F.as_node(logits), F.as_node(labels)
    return F.mean(F.cast(F.equal(F.argmax(logits, -1), labels), logits.dtype))


def binary_accuracy(scores, targets, threshold: float = 0.5) -> Node:
    """Fraction of entries where (scores > threshold) equals the 0/1 target (threshold 0 for logits)."""
    scores, targets = F.as_node(scores), F.as_node(targets)
    hit = F.equal(F.greater(scores, threshold), F.greater(targets, 0.5))
    return F.mean(F.cast(hit, scores.dtype if scores.dtype.kind == "f" else "float64"))

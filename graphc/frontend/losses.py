"""Losses, each with PyTorch's meaning and reduction argument."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, user_location
from ..ops.base import fmt_shape
from ..ops.build import (
    abs,
    add,
    as_node,
    checked_axes,
    greater,
    log,
    log_softmax,
    mean,
    mul,
    neg,
    pair,
    relu,
    softplus,
    sub,
    sum,
    transpose,
    where,
)
from .indexing import check_index, one_hot

__all__ = [
    "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse", "l1_loss",
    "hinge",
]


def _reduce_loss(loss: Node, reduction: str, fn: str) -> Node:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, labels, reduction: str = "mean", axis: int = -1) -> Node:
    """Softmax cross-entropy: integer class labels (checked in range) or probability targets."""
    logits, labels = as_node(logits), as_node(labels)
    (axis,) = checked_axes(logits, axis)
    logp = log_softmax(logits, axis)
    n_classes = logits.shape[axis]
    if labels.dtype.kind in "iu":
        expect = logits.shape[:axis] + logits.shape[axis + 1:]
        if labels.ndim != len(expect):
            raise ShapeError(f"cross_entropy: integer labels of shape {fmt_shape(labels.shape)} do not "
                             f"fit logits {fmt_shape(logits.shape)} (expected {fmt_shape(expect)})",
                             user_location())
        if n_classes is None:
            raise ShapeError("cross_entropy: the class axis of the logits must have a known size",
                             user_location())
        oh = one_hot(check_index(labels, n_classes), n_classes, logits.dtype)
        target = oh if axis == logits.ndim - 1 else transpose(oh, _move_last_to(axis, logits.ndim))
    else:
        target = labels
    loss = neg(sum(mul(target, logp), axis))
    return _reduce_loss(loss, reduction, "cross_entropy")


def _move_last_to(axis, ndim):
    perm = list(range(ndim - 1))
    perm.insert(axis, ndim - 1)
    return perm


def _clamped_log(q: Node) -> Node:
    """max(log(q), -100) whose gradient is finite where q is 0: log reads 1 there (the double where),
    so no 0 * inf. A graph the stabilize pass leaves alone, so its value does not depend on
    optimize (log(1 - sigmoid(z)) would become -softplus(z) and skip the clamp)."""
    ok = greater(q, float(np.exp(np.float64(-100)).astype(q.dtype)) if q.dtype.kind == "f" else 0)
    return where(ok, log(where(ok, q, 1)), -100.0)


def binary_cross_entropy(probs, targets, reduction: str = "mean") -> Node:
    """-(t log p + (1-t) log(1-p)) with each log clamped at -100, as in PyTorch."""
    p, t = pair(probs, targets)
    loss = neg(add(mul(t, _clamped_log(p)), mul(sub(1, t), _clamped_log(sub(1, p)))))
    return _reduce_loss(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(logits, targets, reduction: str = "mean") -> Node:
    """softplus(z) - t z: binary cross-entropy of sigmoid(z), stable for any logit."""
    z, t = pair(logits, targets)
    loss = sub(softplus(z), mul(t, z))
    return _reduce_loss(loss, reduction, "binary_cross_entropy_with_logits")


def mse(pred, target, reduction: str = "mean") -> Node:
    """Squared error (pred - target)^2, reduced."""
    d = sub(*pair(pred, target))
    return _reduce_loss(mul(d, d), reduction, "mse")


def l1_loss(pred, target, reduction: str = "mean") -> Node:
    """Absolute error |pred - target|, reduced."""
    return _reduce_loss(abs(sub(*pair(pred, target))), reduction, "l1_loss")


def hinge(scores, targets, margin: float = 1.0, reduction: str = "mean") -> Node:
    """max(0, margin - t * s) for targets t in {-1, +1}."""
    s, t = pair(scores, targets)
    return _reduce_loss(relu(sub(margin, mul(t, s))), reduction, "hinge")

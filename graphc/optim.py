"""Optimizers: each builds its update rule as ordinary graph nodes, so a step compiles like any graph.

`opt.updates(loss, params)` returns (parameter, new value) pairs for gc.compile. The state the rule
keeps (momentum buffers, Adam's moments, the step count) lives in non-trainable parameters, so it
stays with the compiled function between calls and is saved with checkpoints. The learning rate
is a parameter too: `opt.lr = 0.01` takes effect on the next call with no recompiling. On the
compiled backends each parameter's update (new moments and new value) is one fused kernel.
"""
from __future__ import annotations

import math

import numpy as np

from .autodiff import clip_by_global_norm, grad
from .errors import GraphError
from .ir import Node, toposort, user_location
from .ops import build
from .ops.base import fmt_shape

__all__ = ["Optimizer", "SGD", "RMSProp", "Adam", "AdamW", "step_decay", "exponential_decay", "cosine"]


def trainable_parameters(loss: Node) -> list[Node]:
    """Every trainable parameter the loss depends on, in graph order."""
    return [n for n in toposort([build.as_node(loss)]) if n.op.name == "parameter" and n.attrs["trainable"]]


def _state(value, name: str) -> Node:
    node = build.parameter(value, name=name, trainable=False)
    node.data.role = "optimizer"
    return node


class Optimizer:
    """Base class: a learning rate held in the graph, per-parameter state, and the update builder."""

    def __init__(self, lr: float, weight_decay: float = 0.0):
        if lr < 0 or weight_decay < 0:
            raise GraphError(f"{type(self).__name__}: lr and weight_decay must be >= 0", user_location())
        self._lr = _state(np.float64(lr), f"{type(self).__name__.lower()}.lr")
        self.weight_decay = float(weight_decay)
        self.params: list[Node] = []
        self.slots: list[dict[str, Node]] = []  # per parameter: state name -> state parameter
        self.step: Node | None = None           # Adam's step count (float64 scalar parameter)
        # set before updates() are built: gradients clipped jointly to this global norm
        self.clip_norm: float | None = None

    @property
    def lr(self) -> float:
        """The learning rate of the next step (set it to change it without recompiling)."""
        return float(self._lr.value)

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr.value = np.float64(value)

    def _slot(self, p: Node, what: str, fill: float = 0.0) -> Node:
        return _state(np.full(p.shape, fill, p.dtype), f"{p.label}.{what}")

    def updates(self, loss, params=None, clip_norm: float | None = None) -> list[tuple[Node, Node]]:
        """(parameter, new value) pairs that take one step on loss; params defaults to every trainable
        parameter the loss depends on. clip_norm (or opt.clip_norm): the gradients are first clipped
        jointly to this global norm (gc.clip_by_global_norm), as torch's clip_grad_norm_. The same as
        apply_gradients(gc.grad(loss, params), params)."""
        self._unused()
        loss = build.as_node(loss)
        params = self._checked(trainable_parameters(loss) if params is None else list(params))
        return self.apply_gradients(grad(loss, params), params, clip_norm)

    def apply_gradients(self, grads, params, clip_norm: float | None = None) -> list[tuple[Node, Node]]:
        """(parameter, new value) pairs that take one step given the gradients (nodes of the
        parameters' shapes and dtypes: a gradient, or a placeholder a gradient is fed to), so a step
        may be a compiled gradient function and a compiled update function, with whatever the
        caller does between them (gc.Trainer's allreduce over MPI ranks). clip_norm as updates()."""
        self._unused()
        params = self._checked(list(params))
        grads = [build.as_node(g) for g in grads]
        if len(grads) != len(params):
            raise GraphError(f"apply_gradients: {len(grads)} gradients for {len(params)} parameters", user_location())
        for p, g in zip(params, grads):
            if g.shape != p.shape or g.dtype != p.dtype:
                raise GraphError(f"apply_gradients: the gradient of {p.label} {fmt_shape(p.shape)} {p.dtype} is "
                                 f"{fmt_shape(g.shape)} {g.dtype}", user_location())
        clip_norm = self.clip_norm if clip_norm is None else clip_norm
        if clip_norm is not None:
            grads, _ = clip_by_global_norm(grads, clip_norm)
        self.params = params
        self.slots = [{} for _ in params]
        out = self._prelude()
        for k, (p, g) in enumerate(zip(params, grads)):
            out += self._rule(k, p, g)
        return out

    def _unused(self) -> None:
        if self.params:
            raise GraphError(f"this {type(self).__name__} already built its updates (its state belongs to "
                             "those parameters); make a new optimizer for another model", user_location())

    def _checked(self, params: list) -> list[Node]:
        if not params:
            raise GraphError(f"{type(self).__name__}: no parameters to update", user_location())
        for p in params:
            if not isinstance(p, Node) or p.op.name != "parameter":
                raise GraphError(f"optimizers update parameters, got {p!r}", user_location())
            if p.dtype.kind != "f":
                raise GraphError(f"parameter {p.label} is {p.dtype}: only float parameters can be trained",
                                 user_location())
        return params

    def _prelude(self) -> list[tuple[Node, Node]]:
        return []

    def _rule(self, k: int, p: Node, g: Node) -> list[tuple[Node, Node]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def lr_as(self, p: Node) -> Node:
        """The learning rate in p's dtype."""
        return build.cast(self._lr, p.dtype)

    def state(self) -> dict[str, Node]:
        """Every state parameter by a stable name: lr, step, and '<index>.<slot>' per parameter."""
        out = {"lr": self._lr}
        if self.step is not None:
            out["step"] = self.step
        for k, slots in enumerate(self.slots):
            for what, node in slots.items():
                out[f"{k}.{what}"] = node
        return out

    def named_state(self) -> dict[str, Node]:
        """What a checkpoint of the optimizer holds: state()."""
        return self.state()

    def __repr__(self):
        return f"<{type(self).__name__} lr={self.lr:g} on {len(self.params)} parameters>"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD:
    b = momentum * b + g;  p -= lr * (g + momentum * b if nesterov else b)."""

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        if nesterov and momentum <= 0:
            raise GraphError("Nesterov momentum needs momentum > 0", user_location())
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _rule(self, k, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        lr = self.lr_as(p)
        if not self.momentum:
            return [(p, p - lr * g)]
        b = self.slots[k]["momentum"] = self._slot(p, "momentum")
        b_new = self.momentum * b + g
        d = g + self.momentum * b_new if self.nesterov else b_new
        return [(b, b_new), (p, p - lr * d)]


class RMSProp(Optimizer):
    """RMSProp (Hinton), as torch.optim.RMSprop: v = alpha v + (1 - alpha) g^2;
    p -= lr * g / (sqrt(v) + eps), or through a momentum buffer when momentum > 0."""

    def __init__(self, lr: float, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)

    def _rule(self, k, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        v = self.slots[k]["square_avg"] = self._slot(p, "square_avg")
        v_new = self.alpha * v + (1 - self.alpha) * (g * g)
        step = g / (build.sqrt(v_new) + self.eps)
        lr = self.lr_as(p)
        if not self.momentum:
            return [(v, v_new), (p, p - lr * step)]
        b = self.slots[k]["momentum"] = self._slot(p, "momentum")
        b_new = self.momentum * b + step
        return [(v, v_new), (b, b_new), (p, p - lr * b_new)]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as torch.optim.Adam: m = b1 m + (1 - b1) g,
    v = b2 v + (1 - b2) g^2, p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    weight_decay adds weight_decay * p to g (L2); AdamW decouples it."""

    decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise GraphError(f"Adam betas must be in [0, 1), got {betas}", user_location())
        self.betas, self.eps = (b1, b2), float(eps)

    def _prelude(self):
        self.step = _state(np.float64(0), f"{type(self).__name__.lower()}.step")
        t = self.step + 1.0
        b1, b2 = self.betas
        # bias corrections: scalars computed once per step, shared by every parameter's kernel
        self._c1 = 1.0 - build.pow(build.constant(np.float64(b1)), t)
        self._c2 = 1.0 - build.pow(build.constant(np.float64(b2)), t)
        return [(self.step, t)]

    def _rule(self, k, p, g):
        b1, b2 = self.betas
        lr = self.lr_as(p)
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * p
        m = self.slots[k]["m"] = self._slot(p, "m")
        v = self.slots[k]["v"] = self._slot(p, "v")
        m_new = b1 * m + (1 - b1) * g
        v_new = b2 * v + (1 - b2) * (g * g)
        c1, c2 = build.cast(self._c1, p.dtype), build.cast(self._c2, p.dtype)
        base = p * (1.0 - lr * self.weight_decay) if self.weight_decay and self.decoupled else p
        p_new = base - lr * (m_new / c1) / (build.sqrt(v_new / c2) + self.eps)
        return [(m, m_new), (v, v_new), (p, p_new)]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
    p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(lr, betas, eps, weight_decay)


# ---------------------------------------------------------------- learning-rate schedules
def step_decay(lr: float, step_size: int, gamma: float = 0.1):
    """epoch -> lr * gamma ** (epoch // step_size) (torch's StepLR)."""
    return lambda epoch: lr * gamma ** (epoch // step_size)


def exponential_decay(lr: float, gamma: float):
    """epoch -> lr * gamma ** epoch."""
    return lambda epoch: lr * gamma ** epoch


def cosine(lr: float, epochs: int, min_lr: float = 0.0, warmup: int = 0):
    """epoch -> linear warm-up over `warmup` epochs, then cosine annealing from lr to min_lr at `epochs`."""
    def schedule(epoch):
        if epoch < warmup:
            return lr * (epoch + 1) / warmup
        span = max(1, epochs - warmup)
        frac = min(1.0, (epoch - warmup) / span)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * frac))
    return schedule

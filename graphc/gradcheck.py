"""Gradient checking: a graph's symbolic gradients against float64 central differences.

Above the compiler in the pipeline (it compiles the graphs it checks), so autodiff stays below it."""
from __future__ import annotations

import numpy as np

from . import api as F
from .autodiff import grad
from .compiler import compile
from .errors import DTypeError, GraphError
from .ir import fmt_shape, user_location


class GradientCheckError(GraphError, AssertionError):
    """A symbolic gradient that disagrees with finite differences."""


def check_grad(f, inputs, *, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-10,
               seed: int = 0, backend: str = "numpy", placeholder_shapes=None, training: bool = False) -> float:
    """Check f's symbolic gradients against float64 central differences in a random direction.

    f maps placeholders to a node; a non-scalar result is contracted with a random cotangent.
    Integer and bool inputs are fed but not perturbed; placeholder_shapes may give the graph
    run-time (None) dims in place of the arrays' shapes. training=True checks the training meaning
    (batch statistics, dropout with the key held still: state parameters are restored after every
    evaluation). Returns the worst relative error
    (absolute for derivatives smaller than atol, where a ratio means nothing), and
    raises GradientCheckError naming the input when one exceeds atol + rtol * |derivative|.
    """
    def compile_graph(ins, outs, backend):
        fn = compile(ins, outs, backend=backend, training=training)
        state = [(q, q.value.copy()) for q in fn.program.parameters]

        def run(*args):
            try:
                return fn(*args)
            finally:  # default updates (random keys, running statistics) must not move between evaluations
                for q, v in state:
                    np.copyto(q.data.array, v)
        return run

    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a) for a in inputs]
    arrays = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    shapes = placeholder_shapes or [a.shape for a in arrays]
    phs = [F.placeholder(s, a.dtype, name=f"input{i}") for i, (s, a) in enumerate(zip(shapes, arrays))]
    out = F.as_node(f(*phs))
    if out.dtype.kind != "f":
        raise DTypeError(f"check_grad: f returned {out.dtype}, which has no gradient", user_location())
    if out.dtype != np.float64:
        out = F.cast(out, "float64")
    if out.shape != ():
        # contract with a random cotangent of the output's run-time shape
        size = compile_graph(phs, out, backend=backend)(*arrays).shape
        y = F.sum(F.mul(out, F.constant(rng.normal(size=size))))
    else:
        y = out
    wrt = [p for p, a in zip(phs, arrays) if a.dtype.kind == "f"]
    grads = grad(y, wrt) if wrt else []
    fn = compile_graph(phs, [y] + grads, backend=backend)
    value = compile_graph(phs, y, backend=backend)
    analytic = fn(*arrays)[1:]

    worst = 0.0
    k = 0
    for i, a in enumerate(arrays):
        if a.dtype.kind != "f":
            continue
        g = analytic[k]
        k += 1
        v = rng.normal(size=a.shape)
        plus, minus = list(arrays), list(arrays)
        plus[i], minus[i] = a + eps * v, a - eps * v
        numeric = (float(value(*plus)) - float(value(*minus))) / (2 * eps)
        exact = float(np.sum(g * v))
        err = abs(numeric - exact)
        scale = max(abs(numeric), abs(exact))
        # relative where the derivative is above the absolute floor atol, absolute below it
        rel = err / scale if scale > atol else err
        if err > atol + rtol * scale:
            raise GradientCheckError(
                f"gradient of input {i} {fmt_shape(a.shape)}: symbolic directional derivative {exact:.12g}, "
                f"central differences {numeric:.12g} (relative error {rel:.3g} > rtol {rtol:g})",
                user_location())
        worst = max(worst, rel)
    return worst

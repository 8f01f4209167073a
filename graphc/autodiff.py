"""Reverse-mode autodiff over the IR: the backward graph is ordinary Nodes, so grad of grad works.

The driver walks the forward graph backwards from y, asks each primitive's rule for its inputs'
cotangents, sums each one back to its input's shape (undoing broadcasting) and dtype, and adds up
the contributions of a node's several uses. Rules never see broadcasting.
"""
from __future__ import annotations

import numpy as np

from .errors import DTypeError, GraphError, ShapeError
from .ir import Node, new_uid, substitute, toposort, user_location
from .ops import build
from .ops.base import fmt_shape
from .ops.control import Scan, close_body, make_scan, output


def _differentiable(x: Node) -> bool:
    return x.dtype.kind == "f" or x.op.tuple_valued


def sum_to_shape(g: Node, x: Node) -> Node:
    """g, computed at a broadcast shape, summed back to x's shape and cast to x's dtype.

    A None (run-time) dim of x is assumed not to have been broadcast.
    """
    if g.shape != x.shape:
        lead = g.ndim - x.ndim
        axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(x.shape)
                                          if d == 1 and g.shape[lead + i] != 1)
        if axes:
            g = build.sum(g, axes, keepdims=True)
        if lead:
            g = build.squeeze(g, tuple(range(lead)))
        if g.shape != x.shape:  # a run-time dim of x met a known size: the gradient keeps x's shape
            g = build.broadcast_to(g, x.shape, like=x)  # (at run time the sizes are checked equal)
    if g.dtype != x.dtype:
        g = build.cast(g, x.dtype)
    return g


def _mark(new_nodes_from, since: int, fwd: Node) -> None:
    """Record fwd as the origin of every node built after serial `since` below new_nodes_from."""
    stack = [n for n in new_nodes_from if n is not None and n.serial > since]
    while stack:
        n = stack.pop()
        if n.origin is None:
            object.__setattr__(n, "origin", fwd)  # set once, right after the rule built n
            stack.extend(i for i in n.inputs if i.serial > since and i.origin is None)


def _per_result(n: Node, parts) -> list:
    """The cotangent of each result of the tuple-valued n (None where nothing reads it)."""
    cots = [None] * len(n.op.result_specs(n))
    for k, g in parts:
        cots[k] = g if cots[k] is None else build.add(cots[k], g)
    return cots


def vjp(y, xs, cotangent) -> list[Node]:
    """Vector-Jacobian products: for each x, sum over y's entries of cotangent * d y / d x."""
    y = build.as_node(y)
    single = isinstance(xs, Node)
    xs = [xs] if single else list(xs)
    for x in xs:
        if not isinstance(x, Node):
            raise GraphError(f"can only differentiate with respect to graph nodes, got {x!r}", user_location())
        if not _differentiable(x):
            raise DTypeError(f"{x.label} is {x.dtype}: integer and bool tensors have no gradient",
                             user_location())
    since = new_uid()
    ct = build.as_node(cotangent, like=y)
    try:
        ct = build.broadcast_to(ct, y.shape, like=y) if ct.shape != y.shape else ct
    except ShapeError:
        raise ShapeError(f"cotangent of shape {fmt_shape(ct.shape)} does not fit y {fmt_shape(y.shape)}",
                         user_location()) from None
    if ct.dtype != y.dtype:
        ct = build.cast(ct, y.dtype)

    _mark([ct], since, y)  # the seed (ones for grad) belongs to the backward graph
    order = toposort([y])
    targets = set(xs)
    # nodes on a path from some x to y: only they get cotangents
    reaches = set()
    for n in order:
        if n in targets or any(i in reaches for i in n.inputs):
            reaches.add(n)
    contribs: dict[Node, list[Node]] = {y: [ct]} if y in reaches else {}
    total: dict[Node, Node] = {}
    for n in reversed(order):
        parts = contribs.pop(n, None)
        if parts is None:
            continue
        since = new_uid()
        if n.op.tuple_valued:  # parts are (result index, cotangent) from its projections
            g = _per_result(n, parts)
        else:
            g = parts[0]
            for p in parts[1:]:  # n is used several times: its cotangent is the sum of the uses' parts
                g = build.add(g, p)
            total[n] = g
        _mark(g if n.op.tuple_valued else [g], since, n)
        if not n.inputs or not n.op.differentiable or not _differentiable(n):
            continue
        if not any(i in reaches and _differentiable(i) for i in n.inputs):
            continue
        since = new_uid()  # every node the rule builds has a larger serial
        if n.op.tuple_valued:
            grads = reverse_scan(n, g)
        elif n.op.composite_grad:  # its derivative is the composition's
            grads = vjp(n.op.composite(n), list(n.inputs), g)
        else:
            grads = n.op.grad(n, g)
        if len(grads) != len(n.inputs):
            raise GraphError(f"gradient rule of {n.op.name} returned {len(grads)} cotangents for "
                             f"{len(n.inputs)} inputs (a graphc bug)", n.loc)
        out = []
        for inp, gi in zip(n.inputs, grads):
            if gi is None or inp not in reaches or not _differentiable(inp):
                out.append(None)
                continue
            if inp.op.tuple_valued:  # a projection's cotangent: that of one result of inp
                contribs.setdefault(inp, []).append((n.attrs["index"], gi))
                out.append(gi)
                continue
            gi = sum_to_shape(build.as_node(gi, like=inp), inp)
            contribs.setdefault(inp, []).append(gi)
            out.append(gi)
        _mark(out, since, n)
    result = [total[x] if x in total else build.zeros_like(x) for x in xs]
    return result[0] if single else result


def grad(y, xs) -> list[Node]:
    """Gradients of the scalar y with respect to each x, as Nodes of x's shape and dtype.

    A gradient with respect to something y does not depend on is zeros. For a non-scalar y use
    vjp(y, xs, cotangent).
    """
    y = build.as_node(y)
    if y.shape != ():
        raise ShapeError(f"grad needs a scalar y, got {y.label} of shape {fmt_shape(y.shape)}; reduce it "
                         "(e.g. gc.sum) or use gc.vjp(y, xs, cotangent)", user_location())
    if not _differentiable(y):
        raise DTypeError(f"grad of {y.label} ({y.dtype}): only floating-point outputs have gradients",
                         user_location())
    return vjp(y, xs, build.constant(np.ones((), y.dtype)))


def _terms(g: Node) -> list[Node]:
    """g as the summands of its top-level chain of same-shaped adds."""
    if g.op.name == "add" and g.inputs[0].shape == g.inputs[1].shape == g.shape:
        return _terms(g.inputs[0]) + _terms(g.inputs[1])
    return [g]


def _outer_product(t: Node, per_step: set):
    """(a, b) when t is a^T @ b of 2-d values that both change per step (read one of `per_step`):
    summed over the steps that is one GEMM of the stacked values after the loop (a weight's
    gradient)."""
    if t.op.name != "matmul" or t.ndim != 2 or t.inputs[0].op.name != "transpose":
        return None
    a, b = t.inputs[0].inputs[0], t.inputs[1]
    if a.ndim != 2 or b.ndim != 2 or t.inputs[0].attrs["perm"] != (1, 0):
        return None
    if not all(any(n in per_step for n in toposort([v])) for v in (a, b)):
        return None
    return a, b


def _step_sum(t: Node, per_step: set):
    """The sum node when t is (a reshape of) a sum of a value that changes per step (a bias's
    gradient, the batch's sum of the gates' cotangent): summed over the steps that is one sum of
    the stacked value over the steps too, after the loop."""
    if None in t.shape:
        return None
    while t.op.name == "reshape":
        t = t.inputs[0]
    if t.op.name != "sum" or not any(n in per_step for n in toposort([t.inputs[0]])):
        return None
    return t


def reverse_scan(node: Node, cots) -> tuple:
    """The cotangents of a scan's inputs, as a scan running the other way.

    Carried: the cotangents of the carries, and the running sums of the captured values'
    gradients. Read per step: the carries and residuals (the body's products) the forward scan
    saved, the step's x slices and the ys' cotangents; the step's elementwise work is recomputed
    from them. Out per step: the x slices' cotangents. A captured value's gradient term of the form
    a^T @ b (a weight's, through h @ W) is not summed in the loop: a and b leave it stacked, and one
    GEMM over all steps follows it; a term that is a sum of a per-step value (a bias's) leaves it
    stacked too, summed over the steps and the same axes after it. cots: one cotangent (or None)
    per result of node."""
    body, reverse = node.attrs["body"], node.attrs["reverse"]
    nc, nx, nk, ny = len(body.carry), len(body.xs), len(body.captured), len(body.ys)
    xs, caps = node.inputs[nc:nc + nx], node.inputs[nc + nx:]
    dcar, dys, dsaved = cots[:nc], cots[nc:nc + ny], cots[nc + ny:2 * nc + ny]
    fc = [j for j in range(nc) if body.carry[j].dtype.kind == "f"]    # differentiable carries
    fx = [i for i in range(nx) if body.xs[i].dtype.kind == "f"]
    fk = [m for m in range(nk) if body.captured[m].dtype.kind == "f"]
    wy = [q for q in range(ny) if dys[q] is not None and body.ys[q].dtype.kind == "f"]
    ws = [j for j in fc if dsaved[j] is not None]
    dres = cots[2 * nc + ny:]  # the residuals' cotangents (a second derivative has them)
    wr = [r for r, d in enumerate(dres) if d is not None and body.residuals[r].dtype.kind == "f"]
    ph = build.placeholder

    def like(v):
        return ph(v.shape, v.dtype)
    p_dc = [like(body.carry[j]) for j in fc]
    p_x, p_c, p_k = [like(p) for p in body.xs], [like(p) for p in body.carry], [like(p) for p in body.captured]
    p_r = [like(r) for r in body.residuals]
    p_dy = [like(body.ys[q]) for q in wy]
    p_ds = [like(body.carry[j]) for j in ws]
    p_dr = [like(body.residuals[r]) for r in wr]
    c_out, y_out, r_out = body.instantiate(p_c, p_x, p_k)
    terms = [build.sum(build.mul(c_out[j], d)) for j, d in zip(fc, p_dc)]
    terms += [build.sum(build.mul(y_out[q], d)) for q, d in zip(wy, p_dy)]
    terms += [build.sum(build.mul(r_out[r], d)) for r, d in zip(wr, p_dr)]
    targets = [p_c[j] for j in fc] + [p_x[i] for i in fx] + [p_k[m] for m in fk]
    if not terms or not targets:
        return (None,) * len(node.inputs)
    if len({t.dtype for t in terms}) > 1:  # float32 and float64 carries: add in float64
        terms = [build.cast(t, "float64") for t in terms]
    loss = terms[0]
    for t in terms[1:]:
        loss = build.add(loss, t)
    g = grad(loss, targets)
    g_c, g_x, g_k = g[:len(fc)], g[len(fc):len(fc) + len(fx)], g[len(fc) + len(fx):]
    ds_of = dict(zip(ws, p_ds))
    new_dc = [build.add(gc_, ds_of[j]) if j in ds_of else gc_ for j, gc_ in zip(fc, g_c)]
    # each captured value's gradient: products a^T @ b after the loop, the rest summed in it
    per_step = set(p_dc + p_x + p_c + p_dy + p_ds + p_dr) | set(r_out)
    step_of = {}  # index among fk -> the terms summed in the loop
    products = []  # (index among fk, a, b)
    sums = []  # (index among fk, the term, the per-step sum it reshapes)
    for m, gk in enumerate(g_k):
        rest = []
        for t in _terms(gk):
            ab = _outer_product(t, per_step)
            if ab is not None:
                products.append((m, *ab))
                continue
            s = _step_sum(t, per_step)
            if s is not None:
                sums.append((m, t, s))
                continue
            rest.append(t)
        if rest:
            step_of[m] = rest
    p_dk = {m: like(body.captured[fk[m]]) for m in step_of}
    new_dk = []
    for m, rest in step_of.items():
        acc = p_dk[m]
        for t in rest:
            acc = build.add(acc, t)
        new_dk.append(acc)
    # the step's inputs the backward reads, and the values the products stack (the placeholders
    # among them are stacked already: the outer values they slice)
    outer_of = dict(zip(p_x, xs)) | dict(zip(p_c, [output(node, nc + ny + j) for j in range(nc)]))
    outer_of |= dict(zip(p_r, [output(node, 2 * nc + ny + r) for r in range(len(p_r))]))
    gx_of = {v: a for a, v in enumerate(g_x)}  # a value the backward outputs anyway is not stacked twice
    stacked_in = [v for _, a, b in products for v in (a, b)] + [s.inputs[0] for _, _, s in sums]
    stack = list(dict.fromkeys(v for v in stacked_in if v not in outer_of and v not in gx_of))
    nb = len(new_dc) + len(new_dk)
    # differentiated through the recomputed products, which the saved ones then replace
    outs = substitute(new_dc + new_dk + list(g_x) + stack, dict(zip(p_k, caps)) | dict(zip(r_out, p_r)))
    reads = set(toposort(outs))
    seq = [p for p in p_x + p_c + p_r if p in reads]
    bwd, captured = close_body(p_dc + [p_dk[m] for m in step_of], seq + p_dy + p_ds + p_dr, outs[:nb], outs[nb:])
    start = [dcar[j] if dcar[j] is not None else build.zeros_like(output(node, j)) for j in fc]
    start += [build.zeros_like(caps[fk[m]]) for m in step_of]
    bxs = [outer_of[p] for p in seq] + [dys[q] for q in wy] + [dsaved[j] for j in ws] + [dres[r] for r in wr]
    back = make_scan(bwd, start, bxs, captured, not reverse, Scan.steps(node), loc=node.loc)
    n_dc = len(fc)
    out = [None] * len(node.inputs)
    for a, j in enumerate(fc):
        out[j] = output(back, a)
    for a, m in enumerate(step_of):
        out[nc + nx + fk[m]] = output(back, n_dc + a)
    for a, i in enumerate(fx):
        out[nc + i] = output(back, n_dc + len(step_of) + a)
    stacked = dict(outer_of) | {v: output(back, n_dc + len(step_of) + a) for v, a in gx_of.items()}
    stacked |= {v: output(back, n_dc + len(step_of) + len(fx) + s) for s, v in enumerate(stack)}
    for m, a, b in products:
        A, B = stacked[a], stacked[b]
        prod = build.matmul(build.transpose(build.reshape(A, (-1, a.shape[-1]))), build.reshape(B, (-1, b.shape[-1])))
        k = nc + nx + fk[m]
        out[k] = prod if out[k] is None else build.add(out[k], prod)
    for m, t, s in sums:
        axes = (0,) + tuple(a + 1 for a in s.attrs["axes"])
        total = build.reshape(build.sum(stacked[s.inputs[0]], axes, keepdims=True), t.shape)
        k = nc + nx + fk[m]
        out[k] = total if out[k] is None else build.add(out[k], total)
    return tuple(out)


def hvp(y, x, v) -> Node:
    """Hessian-vector product (d^2 y / dx^2) v, as the gradient of <grad(y, x), v>."""
    (g,) = grad(y, [x])
    return grad(build.sum(build.mul(g, v)), [x])[0]


def hessian(y, x) -> Node:
    """The Hessian of the scalar y with respect to a vector x of static length n: an (n, n) node."""
    x = build.as_node(x)
    if x.ndim != 1 or x.shape[0] is None:
        raise ShapeError(f"hessian needs a vector x of known length, got {fmt_shape(x.shape)}",
                         user_location())
    (g,) = grad(y, [x])
    rows = [grad(g[i], [x])[0] for i in range(x.shape[0])]
    return build.stack(rows, 0)


def format_backward(y, xs) -> str:
    """Text dump of the backward graph of grad(y, xs): each derived node says which forward node's
    rule built it."""
    grads = grad(y, xs) if build.as_node(y).shape == () else vjp(y, xs, np.ones(1))
    names = {}
    for n in toposort(grads):
        o = n.origin
        if o is not None:
            names[n] = f"from {o.label} ({o.op.name})"
    for x, gx in zip(xs, grads):
        names[gx] = (names.get(gx, "") + f"  = d {build.as_node(y).label} / d {x.label}").strip()
    from .ir import format_graph
    return format_graph(grads, names)


def clip_by_global_norm(tensors, clip_norm):
    """(clipped tensors, global norm), as tf.clip_by_global_norm: with N = sqrt(sum of every
    tensor's squared entries), each tensor is scaled by clip_norm / max(N, clip_norm), so the
    list's joint norm is at most clip_norm and the directions are kept. The remedy the course gives
    for exploding gradients in recurrent networks; Optimizer(clip_norm=...) applies it to the
    gradients before the update rule. The norm is computed in float64 for float64 tensors, else
    in float32."""
    tensors = [build.as_node(t) for t in tensors]
    if not tensors:
        raise GraphError("clip_by_global_norm needs at least one tensor", user_location())
    bad = [t.label for t in tensors if t.dtype.kind != "f"]
    if bad:
        raise GraphError(f"clip_by_global_norm: float tensors only, got non-float {bad}", user_location())
    if not isinstance(clip_norm, Node) and not float(clip_norm) > 0:
        raise GraphError(f"clip_by_global_norm: clip_norm must be > 0, got {clip_norm}", user_location())
    wide = "float64" if any(t.dtype == np.float64 for t in tensors) else "float32"
    total = None
    for t in tensors:
        sq = build.sum(build.square(build.cast(t, wide)))
        total = sq if total is None else build.add(total, sq)
    norm = build.sqrt(total)
    c = (build.cast(build.as_node(clip_norm), wide) if isinstance(clip_norm, Node)
         else build.constant(np.asarray(clip_norm, wide)))
    scale = build.div(c, build.maximum(norm, c))
    return [build.mul(t, build.cast(scale, t.dtype)) for t in tensors], norm


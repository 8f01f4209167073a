"""Passes: rewrites keep meaning and shape, fusion groups are pinned, the verifier catches bugs."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.errors import CompileError
from graphc.frontend.nn import attention_weights
from graphc.ir import toposort
from graphc.passes import Graph, fuse, optimize, verify


def _opt(*outs):
    return optimize(Graph((), tuple(outs), ()), check=True).outputs


def _ops(node):
    return [n.op.name for n in toposort([node])]


def test_algebraic_identities():
    x = gc.placeholder((3,), name="x")
    (a, b, c, d, e) = _opt(x * 1.0 + 0.0, -(-x),  # noqa: B002 - the double negation is the case
                            x / 1.0, x ** 2, gc.where(x > 0, x, x))
    assert a is x and b is x and c is x and e is x
    assert _ops(d) == ["placeholder", "mul"]
    (f,) = _opt(x * 2.0 * 1.0 + gc.constant(np.zeros(3, np.float32)))
    assert _ops(f) == ["placeholder", "constant", "mul"]


def test_identities_keep_shape_and_dtype():
    x = gc.placeholder((1,), name="x")
    y = x + gc.constant(np.zeros(3, np.float32))  # broadcasts: not an identity
    (out,) = _opt(y)
    assert out.shape == (3,)
    i = gc.placeholder((2,), "int32")
    (z,) = _opt(i * 1.0)  # promotes to float64: not an identity
    assert z.dtype == np.float64


@pytest.mark.parametrize("backend", ["numpy", "numba", "cuda"])
def test_a_sum_of_unslices_tiling_an_axis_is_their_concat(backend):
    """The gradient of split pieces, a sum of unslices cutting one axis into disjoint blocks, is the
    blocks side by side (zeros in a gap, sized at run time from the batch) where nothing fuses the
    sum into a loop; overlapping blocks, blocks along two axes and a sum a reduction reads stay.
    Values equal the unoptimized graph's on every backend, batches of 1 and 0 too, and a -0.0 block
    stays -0.0."""
    x = gc.placeholder((None, 12), name="x")
    a, b, c = gc.split(x, 4, axis=1)
    whole = gc.grad(gc.sum(gc.sin(a) * gc.cos(b) + c * c), [x])[0]
    gap = gc.grad(gc.sum(gc.sin(a) - c * c), [x])[0]      # b's block is zeros
    over = gc.grad(gc.sum(gc.sin(x[:, :8])) + gc.sum(gc.cos(x[:, 4:])), [x])[0]
    two = gc.grad(gc.sum(gc.sin(x[:1, :4])) + gc.sum(gc.cos(x[1:, 4:])), [x])[0]
    got = optimize(Graph((x,), (whole, gap, over, two), ()), check=True).outputs
    for out in got[:2]:
        assert "concat" in _ops(out) and "unslice" not in _ops(out)
    for out in got[2:]:
        assert "concat" not in _ops(out) and _ops(out).count("unslice") == 2
    # read by a reduction (a bias gradient), the sum stays: it costs nothing in that loop kernel
    (summed,) = optimize(Graph((x,), (gc.sum(whole, axis=0),), ()), check=True).outputs
    assert "concat" not in _ops(summed) and _ops(summed).count("unslice") == 3
    X = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    X[:, 8:] = 0.0  # c * c's gradient there: +0.0 * ... and -(2c) -> -0.0 in gap's third block
    want = gc.compile([x], [whole, gap, over, two], backend="numpy", optimize=False)
    f = gc.compile([x], [whole, gap, over, two], backend=backend)
    for g, w in zip(f(X), want(X)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    assert np.signbit(f(X)[1][:, 8:]).all()  # -0.0 kept where the sum made it 0.0 + -0.0
    assert [g.shape for g in f(X[:0])] == [(0, 12)] * 4
    for g, w in zip(f(X[:1]), want(X[:1])):  # a run-time batch of 1
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_constant_folding():
    x = gc.placeholder((2,), name="x")
    c = gc.exp(gc.constant(np.array([0.0, 1.0]))) * 2 + 1
    (out,) = _opt(x + c)
    consts = [n for n in toposort([out]) if n.op.name == "constant"]
    assert len(consts) == 1 and np.allclose(consts[0].data, np.exp([0.0, 1.0]) * 2 + 1)


def test_stabilizing_rewrites():
    x = gc.placeholder((4,), "float32", name="x")
    (a, b, c, d) = _opt(gc.log(gc.softmax(x)), gc.log(gc.sigmoid(x)), gc.log(1 - gc.sigmoid(x)),
                        gc.log1p(gc.exp(x)))
    assert "exp" not in _ops(a) and "log_softmax" in _ops(a)
    assert "sigmoid" not in _ops(b) and "softplus" in _ops(b)
    assert "sigmoid" not in _ops(c) and "softplus" in _ops(c)
    assert _ops(d) == ["placeholder", "softplus"]
    big = np.array([-200.0, -50.0, 0.0, 120.0], np.float32)
    got = gc.compile([x], [gc.log(gc.softmax(x * 10)), gc.log(gc.sigmoid(x)), gc.log(1 - gc.sigmoid(x))])(big)
    raw = gc.compile([x], [gc.log(gc.softmax(x * 10)), gc.log(gc.sigmoid(x)), gc.log(1 - gc.sigmoid(x))],
                     optimize=False)(big)
    assert all(np.isfinite(g).all() for g in got)
    assert not all(np.isfinite(r).all() for r in raw)  # what the rewrites are for
    z = big.astype(np.float64) * 10
    np.testing.assert_allclose(got[0], z - z.max() - np.log(np.exp(z - z.max()).sum()), rtol=1e-6)
    np.testing.assert_allclose(got[1], -np.logaddexp(0, -big), rtol=1e-6)


def test_dead_code_and_cse():
    x = gc.placeholder((3,), name="x")
    unused = gc.exp(x) * 7  # noqa: F841 - never fetched
    a = gc.tanh(x) + 1.0
    (out,) = _opt(a * a)
    assert "exp" not in _ops(out)
    assert _ops(out).count("tanh") == 1


def test_verifier_catches_a_broken_graph():
    x = gc.placeholder((3,), name="x")
    y = gc.exp(x)
    object.__setattr__(y, "shape", (4,))  # simulate a pass that got a shape wrong
    try:
        with pytest.raises(CompileError, match=r"has \(4,\) float32 but its rule gives \(3,\) float32"):
            verify(Graph((x,), (y,), ()))
    finally:
        object.__setattr__(y, "shape", (3,))


def _groups(*outs, updates=()):
    g = fuse(optimize(Graph((), tuple(outs), tuple(updates)), check=True))
    return [grp for grp in g.groups if grp[0].op.name != "reshape"]


def test_elementwise_chain_is_one_kernel():
    x = gc.placeholder((None, 64), name="x")
    y = gc.placeholder((None, 64), name="y")
    z = gc.tanh(x * 1.5 + y) * gc.sigmoid(x) + gc.relu(y - 0.5) * gc.exp(-x * x)
    assert len(_groups(z)) == 1


def test_adam_update_of_one_parameter_is_one_kernel():
    g = gc.placeholder((300, 7), name="g")
    p = gc.parameter(np.zeros((300, 7), np.float32), name="p")
    m = gc.parameter(np.zeros((300, 7), np.float32), name="m")
    v = gc.parameter(np.zeros((300, 7), np.float32), name="v")
    lr, b1, b2, eps, t = 1e-3, 0.9, 0.999, 1e-8, 5
    m2 = b1 * m + (1 - b1) * g
    v2 = b2 * v + (1 - b2) * g * g
    p2 = p - lr * (m2 / (1 - b1 ** t)) / (gc.sqrt(v2 / (1 - b2 ** t)) + eps)
    groups = _groups(updates=[(p, p2), (m, m2), (v, v2)])
    assert len(groups) == 1


def _mlp():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 20), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    W1 = gc.parameter(rng.normal(size=(20, 16)).astype(np.float32), name="W1")
    b1 = gc.parameter(np.zeros(16, np.float32), name="b1")
    W2 = gc.parameter(rng.normal(size=(16, 5)).astype(np.float32), name="W2")
    b2 = gc.parameter(np.zeros(5, np.float32), name="b2")
    pre = x @ W1 + b1
    h = gc.relu(pre)
    loss = gc.cross_entropy(h @ W2 + b2, y)
    params = [W1, b1, W2, b2]
    ups = [(p, p - 0.1 * g) for p, g in zip(params, gc.grad(loss, params))]
    return loss, ups, pre, h


def test_bias_relu_is_one_kernel_and_backward_reuses_its_mask():
    loss, ups, pre, h = _mlp()
    groups = _groups(loss, updates=ups)
    fwd = [g for g in groups if any(n.op.name == "relu" for n in g)]
    assert len(fwd) == 1 and [n.op.name for n in fwd[0]] == ["add", "relu"]
    # the backward mask reads the pre-activation the forward kernel wrote, inside the kernel that
    # also reduces the bias gradient: no kernel passes over the activations just for the mask
    mask = [g for g in groups if any(n.op.name == "where" for n in g)]
    assert len(mask) == 1 and [n.op.name for n in mask[0]] == ["less", "where", "sum"]
    assert any(i is pre for n in mask[0] for i in n.inputs)
    # pinned: kernels of the whole SGD step (views excluded); the negated (N, 1) logsumexp is
    # recomputed inside the two kernels that read it, not a kernel of its own
    assert len(groups) == 25
    assert not any([n.op.name for n in g] == ["neg"] for g in groups)


def test_fusion_respects_dependencies():
    x = gc.placeholder((8, 8), name="x")
    a = gc.exp(x)
    s = a.sum(1, keepdims=True)  # a reduction over a, then elementwise with both
    out = a / s + a
    g = fuse(optimize(Graph((x,), (out,), ()), check=True))
    verify(g)
    pos = {n: k for k, grp in enumerate(g.groups) for n in grp}
    for grp in g.groups:
        for n in grp:
            for i in n.inputs:
                if i in pos:
                    assert pos[i] <= pos[n]


def test_kernels_are_capped_in_length():
    from graphc.passes.fuse import MAX_OPS
    x = gc.placeholder((4,), name="x")
    y = x
    for _ in range(3 * MAX_OPS):
        y = gc.tanh(y) * 1.0001
    groups = _groups(y)
    assert len(groups) >= 6 and max(len(g) for g in groups) <= MAX_OPS


def test_cheap_broadcast_values_are_recomputed_and_rows_fuse_only_when_asked():
    x = gc.placeholder((None, 6), name="x")
    lse = gc.logsumexp(x, 1, keepdims=True)
    sm = gc.exp(x - lse)
    graph = optimize(Graph((x,), (sm,), ()), check=True)
    plain = [[n.op.name for n in g] for g in fuse(graph).groups]
    assert plain == [["logsumexp"], ["neg", "add", "exp"]]  # the (N, 1) negation joins its reader
    rows = [[n.op.name for n in g] for g in fuse(graph, rows=True).groups]
    assert rows == [["logsumexp", "neg", "add", "exp"]]
    # fetched itself, the negation keeps its own kernel (its value leaves the graph)
    graph = optimize(Graph((x,), (sm, -lse), ()), check=True)
    assert ["neg"] in [[n.op.name for n in g] for g in fuse(graph).groups]
    # an elementwise consumer whose other input depends on the reduction is not merged into it (cycle)
    s = gc.sum(gc.exp(x - lse), 1, keepdims=True)
    out = gc.exp(x - lse) / s
    graph = optimize(Graph((x,), (out,), ()), check=True)
    for g in fuse(graph, rows=True).groups:
        if any(n.op.name == "logsumexp" for n in g):
            assert not any(n.op.name == "div" for n in g)


def _causal_nodes(out):
    return [n for n in toposort([out]) if n.op.name == "causal_log_softmax"]


@pytest.mark.parametrize("L, S", [(6, 6), (4, 7), (300, 300)])  # 300 x 300: the mask is too large to fold
def test_causal_mask_and_scale_fold_into_the_softmax_row_primitive(L, S):
    q = gc.placeholder((2, L, 4), name="q")
    k = gc.placeholder((2, S, 4), name="k")
    (w,) = _opt(attention_weights(q, k, causal=True, scale=0.25))
    (c,) = _causal_nodes(w)
    assert c.attrs["scale"] == 0.25 and c.attrs["diag"] == 0
    assert not {"where", "less_equal"} & set(_ops(w))  # no mask array, no masked copy
    assert c.inputs[0].op.name == "matmul"
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(p.shape).astype(np.float32) for p in (q, k)]
    ref = gc.compile([q, k], attention_weights(q, k, causal=True, scale=0.25), optimize=False)(*feeds)
    np.testing.assert_allclose(gc.compile([q, k], w, optimize=False)(*feeds), ref, rtol=1e-6, atol=1e-7)


def test_only_lower_triangles_fold():
    x = gc.placeholder((5, 5), name="x")
    ninf = gc.constant(np.float32(-np.inf))
    tri = np.tril(np.ones((5, 5), bool), 1)
    (lower,) = _opt(gc.log_softmax(gc.where(tri, x, ninf), -1))
    (c,) = _causal_nodes(lower)
    assert c.attrs["diag"] == 1 and c.attrs["scale"] == 1.0 and c.inputs[0] is x
    upper, rand, zero_fill, other_axis = _opt(
        gc.log_softmax(gc.where(np.triu(np.ones((5, 5), bool)), x, ninf), -1),
        gc.log_softmax(gc.where(np.random.default_rng(1).random((5, 5)) < 0.5, x, ninf), -1),
        gc.log_softmax(gc.where(tri, x, gc.constant(np.float32(0))), -1),
        gc.log_softmax(gc.where(tri, x, ninf), 0))
    for out in (upper, rand, zero_fill, other_axis):
        assert not _causal_nodes(out) and "where" in _ops(out)


def test_causal_row_with_no_key_is_nan_on_every_backend():
    x = gc.placeholder((2, 4, 4), name="x")
    y = gc.softmax(gc.where(np.tril(np.ones((4, 4), bool), -1), x, gc.constant(np.float32(-np.inf))), -1)
    (opt,) = _opt(y)
    assert _causal_nodes(opt)[0].attrs["diag"] == -1
    a = np.random.default_rng(2).standard_normal((2, 4, 4)).astype(np.float32)
    ref = gc.compile([x], y, optimize=False)(a)
    assert np.isnan(ref[:, 0]).all() and not np.isnan(ref[:, 1:]).any()
    np.testing.assert_allclose(gc.compile([x], y, backend="numba")(a), ref, rtol=1e-6, equal_nan=True)


def test_the_schedule_is_a_stage_made_by_the_fusion_policy():
    """compile()'s pipeline below the front end: passes, then kernels by the backend's policy."""
    from graphc.compiler import scheduled
    from graphc.protocol import NO_FUSION, Fusion
    x = gc.placeholder((None, 3, 4), name="x")
    w = gc.parameter(np.ones((3, 5, 4), np.float32), name="w")
    y = gc.relu(x @ gc.transpose(w, (0, 2, 1)) + 1.0)
    g = Graph((x,), (y,), ())
    assert scheduled(g, NO_FUSION).kernels is None  # no kernels: the numpy backend runs op by op
    kinds = [k.kind for k in scheduled(g, Fusion(kernels=True)).kernels]
    assert kinds == ["transpose", "matmul", "loop"]
    # a policy whose products read each batch's matrix strided: the transpose becomes a view
    kinds = [k.kind for k in scheduled(g, Fusion(kernels=True, batched_views=True)).kernels]
    assert kinds == ["view", "matmul", "loop"]


def test_elementwise_siblings_merge_unless_a_kernel_runs_between_them():
    """Elementwise kernels of one shape reading the same input merge into one loop (it reads the
    input once), unless a third kernel must run between them: tanh(x) feeds a matmul whose product
    the other loop reads, so it stays apart."""
    from graphc.compiler import scheduled
    from graphc.protocol import Fusion
    x = gc.placeholder((None, 6), name="x")
    W = gc.parameter(np.ones((6, 6), np.float32), name="W")
    a, b = gc.exp(x) * 2.0, gc.sin(x) + 1.0      # siblings: both outputs, both read x
    t = gc.tanh(x)
    c = (t @ W) * x                              # reads x too, after the matmul of tanh(x)
    prog = scheduled(Graph((x,), (a, b, c), ()), Fusion(kernels=True))
    loops = [k for k in prog.kernels if k.kind == "loop"]
    assert len(loops) == 2
    together = next(k for k in loops if any(o is a for o in k.outputs))
    assert all(any(o is v for o in together.outputs) for v in (a, b, c))
    assert "tanh" not in together.ops  # the matmul runs between tanh(x) and c
    kinds = [k.kind for k in prog.kernels]
    assert kinds.index("matmul") < kinds.index("loop", kinds.index("matmul"))
    f = gc.compile([x], [a, b, c], backend="numpy")
    v = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    ra, rb, rc = f(v)
    np.testing.assert_allclose(ra, np.exp(v) * 2, rtol=1e-6)
    np.testing.assert_allclose(rc, (np.tanh(v) @ np.ones((6, 6), np.float32)) * v, rtol=1e-5)

"""Transformer building blocks on every backend: closed forms of the norms, attention layers
against NumPy written from torch's formulas and state_dict layouts, torch weight loading."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _run(backend, inputs, outputs, *feeds, **kw):
    return gc.compile(inputs, outputs, backend=backend, **kw)(*feeds)


def test_layer_norm_gradient_sums_to_zero_and_output_is_standardised(backend, rng):
    x = gc.placeholder((None, 3, 8), "float64", name="x")
    g = gc.placeholder((None, 3, 8), "float64", name="g")
    y = gc.layer_norm(x, axis=-2, eps=0.0)
    (dx,) = gc.grad(gc.sum(y * g), [x])
    xv = rng.normal(3.0, 2.0, (4, 3, 8))
    yv, dxv = _run(backend, [x, g], [y, dx], xv, rng.normal(size=(4, 3, 8)))
    # shifting x along the normalised axes changes nothing: the gradient has no component there
    np.testing.assert_allclose(dxv.sum(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(yv.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(yv.var(axis=(1, 2)), 1, rtol=1e-12)


def test_rms_norm_is_scale_invariant(backend, rng):
    x = gc.placeholder((5, 6), "float64", name="x")
    y = gc.rms_norm(x, eps=0.0)
    xv = rng.normal(size=(5, 6))
    a, b = (_run(backend, [x], y, v) for v in (xv, 7.5 * xv))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(np.sqrt((a * a).mean(-1)), 1, rtol=1e-12)


def _mha_ref(sd, x, key, value, heads, causal):
    """torch.nn.MultiheadAttention's math, from its state_dict (weights (out, in))."""
    E = x.shape[-1]
    w, b = sd["in_proj_weight"], sd["in_proj_bias"]
    q, k, v = (t @ w[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E] for i, t in enumerate((x, key, value)))

    def heads_of(t):
        n, s, _ = t.shape
        return t.reshape(n, s, heads, E // heads).transpose(0, 2, 1, 3)
    q, k, v = heads_of(q), heads_of(k), heads_of(v)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(E // heads)
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    att = (p / p.sum(-1, keepdims=True)) @ v
    joined = att.transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], E)
    return joined @ sd["out_proj.weight"].T + sd["out_proj.bias"]


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_matches_torchs_formulas(backend, rng, causal):
    mha = gc.nn.MultiheadAttention(8, 2, causal=causal, seed=3, dtype="float64")
    sd = {k: rng.normal(size=v.shape) * 0.3 for k, v in mha.torch_state_dict().items()}
    mha.load_torch_state_dict(sd)
    x = gc.placeholder((None, 5, 8), "float64", name="x")
    kv = gc.placeholder((None, 5, 8), "float64", name="kv")
    xv, kvv = rng.normal(size=(3, 5, 8)), rng.normal(size=(3, 5, 8))
    self_att, cross = _run(backend, [x, kv], [mha(x), mha(x, kv, kv)], xv, kvv)
    np.testing.assert_allclose(self_att, _mha_ref(sd, xv, xv, xv, 2, causal), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cross, _mha_ref(sd, xv, kvv, kvv, 2, causal), rtol=1e-10, atol=1e-12)


def test_attention_dropout_only_while_training(backend, rng):
    mha = gc.nn.MultiheadAttention(4, 2, dropout=0.5, seed=1, dtype="float64")
    plain = gc.nn.MultiheadAttention(4, 2, seed=1, dtype="float64")
    plain.load_torch_state_dict(mha.torch_state_dict())
    x = gc.placeholder((2, 3, 4), "float64", name="x")
    xv = rng.normal(size=(2, 3, 4))
    ref = _run(backend, [x], plain(x), xv)
    np.testing.assert_allclose(_run(backend, [x], mha(x), xv, training=False), ref, rtol=1e-12)
    assert not np.allclose(_run(backend, [x], mha(x), xv, training=True), ref)


def test_fully_masked_query_is_nan_as_in_torch(backend, rng):
    q = gc.placeholder((3, 2), "float32", name="q")
    keep = np.array([[True, False, True], [False, False, False], [True, True, False]])
    out = _run(backend, [q], gc.scaled_dot_product_attention(q, q, q, mask=keep), rng.normal(size=(3, 2)).astype("f"))
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()


def test_linear_on_any_rank_is_one_gemm(rng):
    lin = gc.nn.Linear(4, 3, seed=0)
    lin.b.value = rng.normal(size=3)
    x = gc.placeholder((None, 5, 4), "float32", name="x")
    xv = rng.normal(size=(2, 5, 4)).astype("f")
    fn = gc.compile([x], lin(x), backend="numba")
    np.testing.assert_allclose(fn(xv), xv @ lin.W.value + lin.b.value, rtol=1e-6)
    assert sum(1 for k in fn.kernels if "matmul" in k.ops) == 1
    batched = [n for n in gc.toposort([lin(x)]) if n.op.name == "matmul"]
    assert [n.inputs[0].ndim for n in batched] == [2]  # leading dims flattened into the rows


def test_an_activation_times_a_matrix_is_one_gemm_forward_and_backward(backend, rng):
    # x (N, T, K) @ W (K, M) as the user writes it (attention's input projection): the rows of
    # every leading dim in one product, and the weight's gradient one product over all rows, not a
    # product per batch and a sum; run-time batches of 0, 1 and 3 give NumPy's values
    x = gc.placeholder((None, 5, 4), "float64", name="x")
    W = gc.parameter(rng.normal(size=(4, 3)), name="W")
    y = x @ W
    outs = [y] + gc.grad(gc.sum(gc.tanh(y)), [x, W])
    products = [n for n in gc.toposort(outs) if n.op.name == "matmul"]
    assert len(products) == 3 and all(n.inputs[0].ndim == 2 and n.inputs[1].ndim == 2 for n in products)
    fn = gc.compile([x], outs, backend=backend)
    for n in (0, 1, 3):
        xv = rng.normal(size=(n, 5, 4))
        got_y, got_dx, got_dW = fn(xv)
        t = 1 - np.tanh(xv @ W.value) ** 2
        np.testing.assert_allclose(got_y, xv @ W.value, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_dx, t @ W.value.T, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_dW, np.einsum("ntk,ntm->km", xv, t), rtol=1e-12, atol=1e-12)
    bad = gc.placeholder((None, 5, 3), "float64")
    with pytest.raises(gc.ShapeError, match=r"\(None, 5, 3\) @ \(4, 3\)"):  # the user's shapes, unflattened
        bad @ W


def test_a_transposed_batch_times_a_matrix_is_one_gemm_forward_and_backward(backend, rng):
    # an RNN's time-major outputs made batch-first, then a linear head: transpose(ys) @ W is one
    # product of the copied rows, and W's gradient one product too (not one per batch and a sum)
    ys = gc.placeholder((5, None, 4), "float64", name="ys")
    W = gc.parameter(rng.normal(size=(4, 3)), name="W")
    y = gc.transpose(ys, (1, 0, 2)) @ W
    outs = [y] + gc.grad(gc.sum(gc.tanh(y)), [ys, W])
    products = [n for n in gc.toposort(outs) if n.op.name == "matmul"]
    assert len(products) == 3 and all(n.inputs[0].ndim == 2 and n.inputs[1].ndim == 2 for n in products)
    assert not any(n.op.name == "sum" for n in gc.toposort(outs[2:]))
    fn = gc.compile([ys], outs, backend=backend)
    for n in (1, 3):
        v = rng.normal(size=(5, n, 4))
        xv = v.transpose(1, 0, 2)
        got_y, got_dys, got_dW = fn(v)
        t = 1 - np.tanh(xv @ W.value) ** 2
        np.testing.assert_allclose(got_y, xv @ W.value, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_dys, (t @ W.value.T).transpose(1, 0, 2), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_dW, np.einsum("ntk,ntm->km", xv, t), rtol=1e-12, atol=1e-12)


def test_load_torch_state_dict_checks_everything_before_writing(rng):
    block = gc.nn.TransformerBlock(8, 2, 16, seed=0)
    sd = block.torch_state_dict()
    assert "self_attn.in_proj_weight" in sd and sd["linear1.weight"].shape == (16, 8)  # torch's (out, in)
    before = {k: v.copy() for k, v in sd.items()}
    bad = {k: v + 1 for k, v in sd.items()}
    bad["norm2.bias"] = np.zeros(7, "f")
    with pytest.raises(gc.ShapeError, match="norm2.bias"):
        block.load_torch_state_dict(bad)
    missing = {k: v for k, v in sd.items() if k != "linear2.bias"}
    with pytest.raises(gc.GraphError, match="linear2.bias"):
        block.load_torch_state_dict(missing)
    with pytest.raises(gc.GraphError, match="extra"):
        block.load_torch_state_dict({**sd, "extra": np.zeros(1)})
    wrong_type = {**bad, "norm2.bias": np.array(["a"] * 8)}  # last in order: the others come first
    with pytest.raises(gc.DTypeError, match="norm2.bias"):
        block.load_torch_state_dict(wrong_type)
    block.load_torch_state_dict({**sd, "extra": np.zeros(1)}, strict=False)
    assert all(np.array_equal(block.torch_state_dict()[k], before[k]) for k in sd)  # nothing was written
    bn = gc.nn.BatchNorm(3)
    bn.load_torch_state_dict({"weight": np.full(3, 2.0), "bias": np.zeros(3), "running_mean": np.ones(3),
                              "running_var": np.ones(3), "num_batches_tracked": np.int64(4)})
    assert bn.gamma.value.tolist() == [2.0, 2.0, 2.0]


def test_post_norm_block_and_errors():
    block = gc.nn.TransformerBlock(4, 2, 8, norm_first=False, activation="relu", seed=0)
    x = gc.placeholder((2, 3, 4), "float32", name="x")
    y = gc.compile([x], block(x))(np.random.default_rng(0).normal(size=(2, 3, 4)).astype("f"))
    # post-norm: the output is norm2's, standardised per position
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-6)
    with pytest.raises(gc.GraphError, match="activation"):
        gc.nn.TransformerBlock(4, 2, 8, activation="swish")
    with pytest.raises(gc.GraphError, match="multiple"):
        gc.nn.MultiheadAttention(6, 4)
    with pytest.raises(gc.ShapeError, match="does not end in"):
        gc.nn.LayerNorm(5)(x)
    with pytest.raises(gc.ShapeError, match="sum to"):
        gc.split(x, [1, 1], axis=2)
    with pytest.raises(gc.ShapeError, match="list of ints"):
        gc.split(x, 2.5, axis=2)
    with pytest.raises(gc.ShapeError, match="repeated"):
        gc.einsum("ii->i", gc.placeholder((3, 3)))
    with pytest.raises(gc.ShapeError, match="causal needs known lengths"):
        q = gc.placeholder((None, 4))
        gc.scaled_dot_product_attention(q, q, q, causal=True)

"""W8-W10's jax.jit peers (issue 25): the same models written in JAX, one step = jax.jit of
value_and_grad and the optimizer's update, parameters and optimizer state donated (updated in
place), on the same batches; run under the peers' Python (tools/bench.py --system wN:jax_jit).

W9 starts from the same initial weights as graphc and torch (so its first loss agrees); W8 and W10
from their own (jax.random, torch's initializers' distributions), as the torch peers do. The
optimizers are written here, as torch defines them (no optax in the peers' venv): Adam, AdamW
(weight decay 0.01) with the gradient clipped to a global norm of 1, SGD with momentum.
"""
from __future__ import annotations

import os
import time

from .measure import SEED, median, timeit
from .models import W8, W9, W10, w8_data, w9_data, w10_data

# XLA's CPU intra-op pool is sized from the CPU affinity mask; the peers' scripts set the same flag
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")


def _adam(lr, weight_decay=0.0, clip=None, b1=0.9, b2=0.999, eps=1e-8):
    """(init, update) of torch's Adam (weight_decay 0) or AdamW (decoupled decay), over pytrees."""
    import jax
    import jax.numpy as jnp

    def init(params):
        return (jax.tree_util.tree_map(jnp.zeros_like, params), jax.tree_util.tree_map(jnp.zeros_like, params),
                jnp.zeros((), jnp.float32))  # two trees: donated buffers must be distinct

    def update(grads, state, params):
        m, v, t = state
        if clip is not None:
            norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(grads)))
            grads = jax.tree_util.tree_map(lambda g: g * jnp.minimum(1.0, clip / (norm + 1e-6)), grads)
        t = t + 1
        m = jax.tree_util.tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t

        def step(p, a, b):
            p = p * (1 - lr * weight_decay)
            return p - lr * (a / c1) / (jnp.sqrt(b / c2) + eps)
        return jax.tree_util.tree_map(step, params, m, v), (m, v, t)
    return init, update


def _sgd(lr, momentum):
    """(init, update) of torch's SGD with momentum (the first step's buffer is the gradient)."""
    import jax
    import jax.numpy as jnp

    def init(params):
        return jax.tree_util.tree_map(jnp.zeros_like, params), jnp.zeros((), jnp.float32)

    def update(grads, state, params):
        buf, t = state
        buf = jax.tree_util.tree_map(lambda b, g: jnp.where(t > 0, momentum * b + g, g), buf, grads)
        return jax.tree_util.tree_map(lambda p, b: p - lr * b, params, buf), (buf, t + 1)
    return init, update


def _cross_entropy(logits, labels):
    import jax
    import jax.numpy as jnp
    lp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(lp, labels[:, None], axis=-1))


def _uniform(key, shape, fan_in):
    import jax
    b = 1.0 / fan_in ** 0.5
    return jax.random.uniform(key, shape, minval=-b, maxval=b)


def _measure(loss_fn, opt, params, batch, repeats):
    """jit(value_and_grad + update) with donated state: first call (compile + step) and median
    step time; the first loss."""
    import jax
    init, update = opt

    def _step(params, state, *batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        params, state = update(grads, state, params)
        return loss, params, state
    step_fn = jax.jit(_step, donate_argnums=(0, 1))
    box = [params, init(params)]

    def step():
        loss, box[0], box[1] = step_fn(box[0], box[1], *batch)
        return loss.block_until_ready()
    t0 = time.perf_counter()
    first = float(step())
    first_s = time.perf_counter() - t0
    return first, first_s, median(timeit(step, 3, repeats))


def _lstm_lm(T):
    """W10: embedding, a 2-layer LSTM (the input projection of all steps one product before the
    lax.scan over time, torch's gate order i, f, g, o), a linear head, cross-entropy, Adam."""
    import jax
    import jax.numpy as jnp
    V, E, H, L, N = W10["vocab"], W10["embed"], W10["hidden"], W10["layers"], W10["batch"]
    keys = iter(jax.random.split(jax.random.PRNGKey(SEED), 4 * L + 3))
    params = {"emb": jax.random.normal(next(keys), (V, E)), "layers": [],
              "head_w": _uniform(next(keys), (V, H), H), "head_b": _uniform(next(keys), (V,), H)}
    for layer in range(L):
        i = E if layer == 0 else H
        params["layers"].append({"w_ih": _uniform(next(keys), (4 * H, i), H),
                                 "w_hh": _uniform(next(keys), (4 * H, H), H),
                                 "b_ih": _uniform(next(keys), (4 * H,), H), "b_hh": _uniform(next(keys), (4 * H,), H)})

    def loss_fn(p, x, y):
        h_seq = jnp.transpose(p["emb"][x], (1, 0, 2))  # (T, N, E)
        for lp in p["layers"]:
            proj = h_seq @ lp["w_ih"].T + (lp["b_ih"] + lp["b_hh"])

            def cell(carry, xp, w_hh=lp["w_hh"]):
                h, c = carry
                g = xp + h @ w_hh.T
                i, f, gg, o = jnp.split(g, 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), h
            zero = jnp.zeros((N, H), jnp.float32)
            _, h_seq = jax.lax.scan(cell, (zero, zero), proj)
        logits = jnp.transpose(h_seq, (1, 0, 2)) @ p["head_w"].T + p["head_b"]
        return _cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    X, Y = w10_data(T)
    return loss_fn, _adam(1e-3), params, (jnp.asarray(X, jnp.int32), jnp.asarray(Y, jnp.int32))


def _lenet():
    """W9: LeNet from the same torch-named initial weights, NCHW, SGD with momentum."""
    import jax
    import jax.numpy as jnp
    X, Y, w = w9_data()
    params = {k: jnp.asarray(v) for k, v in w.items()}

    def conv(x, wt, b):
        y = jax.lax.conv_general_dilated(x, wt, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(p, x, y):
        h = pool(jax.nn.relu(conv(x, p["0.weight"], p["0.bias"])))
        h = pool(jax.nn.relu(conv(h, p["3.weight"], p["3.bias"])))
        logits = h.reshape(h.shape[0], -1) @ p["7.weight"].T + p["7.bias"]
        return _cross_entropy(logits, y)
    return loss_fn, _sgd(W9["lr"], W9["momentum"]), params, (jnp.asarray(X), jnp.asarray(Y, jnp.int32))


def _gpt():
    """W8: token and position embeddings, pre-norm blocks (causal multi-head attention, a GELU
    (erf) MLP), a final LayerNorm and head, as torch's TransformerEncoderLayer(norm_first=True);
    AdamW with the gradient clipped to norm 1."""
    import jax
    import jax.numpy as jnp
    V, d, nh, L, T, F = W8["vocab"], W8["d_model"], W8["heads"], W8["layers"], W8["context"], W8["d_ff"]
    keys = iter(jax.random.split(jax.random.PRNGKey(SEED), 6 * L + 4))

    def norm_params():
        return {"g": jnp.ones((d,)), "b": jnp.zeros((d,))}
    params = {"tok": jax.random.normal(next(keys), (V, d)), "pos": jax.random.normal(next(keys), (T, d)),
              "blocks": [], "norm": norm_params(),
              "head_w": _uniform(next(keys), (V, d), d), "head_b": _uniform(next(keys), (V,), d)}
    for _ in range(L):
        params["blocks"].append({
            "n1": norm_params(), "n2": norm_params(),
            "qkv_w": _uniform(next(keys), (3 * d, d), d), "qkv_b": jnp.zeros((3 * d,)),
            "out_w": _uniform(next(keys), (d, d), d), "out_b": jnp.zeros((d,)),
            "ff1_w": _uniform(next(keys), (F, d), d), "ff1_b": _uniform(next(keys), (F,), d),
            "ff2_w": _uniform(next(keys), (d, F), F), "ff2_b": _uniform(next(keys), (d,), F)})

    def layer_norm(x, p):
        mu = jnp.mean(x, -1, keepdims=True)
        var = jnp.mean((x - mu) ** 2, -1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + 1e-5) * p["g"] + p["b"]

    causal = jnp.tril(jnp.ones((T, T), bool))

    def attention(x, p):
        n = x.shape[0]
        qkv = (x @ p["qkv_w"].T + p["qkv_b"]).reshape(n, T, 3, nh, d // nh)
        q, k, v = (jnp.transpose(qkv[:, :, j], (0, 2, 1, 3)) for j in range(3))
        s = jnp.where(causal, q @ jnp.swapaxes(k, -1, -2) / (d // nh) ** 0.5, -jnp.inf)
        o = jnp.transpose(jax.nn.softmax(s, axis=-1) @ v, (0, 2, 1, 3)).reshape(n, T, d)
        return o @ p["out_w"].T + p["out_b"]

    def loss_fn(p, x, y):
        h = p["tok"][x] + p["pos"][None]
        for b in p["blocks"]:
            h = h + attention(layer_norm(h, b["n1"]), b)
            f = jax.nn.gelu(layer_norm(h, b["n2"]) @ b["ff1_w"].T + b["ff1_b"], approximate=False)
            h = h + f @ b["ff2_w"].T + b["ff2_b"]
        logits = layer_norm(h, p["norm"]) @ p["head_w"].T + p["head_b"]
        return _cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    X, Y = w8_data()
    return loss_fn, _adam(1e-3, weight_decay=0.01, clip=1.0), params, \
        (jnp.asarray(X, jnp.int32), jnp.asarray(Y, jnp.int32))


def run_jax(workload: str) -> list[dict]:
    """One workload's jax.jit record(s): ms per step, first call (compile + step), first loss."""
    import jax
    if workload == "w8":
        built, note, repeats = _gpt(), "its own initial weights", 10
    elif workload == "w9":
        built, note, repeats = _lenet(), "the same initial weights", 20
    elif workload.startswith("w10-"):
        built, note, repeats = _lstm_lm(int(workload[4:])), "lax.scan per layer; its own initial weights", 10
    else:
        raise ValueError(f"no jax peer for {workload}")
    first, first_s, t = _measure(*built, repeats)
    rec = {"system": "jax.jit", "ms": 1e3 * t, "steps_per_s": 1 / t, "first_call_s": first_s, "check": first,
           "note": f"jax {jax.__version__}; {note}"}
    if workload.startswith("w10-"):
        rec["T"] = int(workload[4:])
    if workload == "w9":
        from .models import W9_FLOP
        rec["gflops"] = W9_FLOP / t / 1e9
    return [rec]

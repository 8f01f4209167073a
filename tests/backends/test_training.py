"""Training on every backend: optimizers against hand-written NumPy loops, run-time learning rate,
fused updates, penalties, dropout, batch norm, train/eval compiles, checkpoints and the Trainer.

Graphs are shared per backend (module-scoped fixtures): numba compiles dominate the suite's time.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

# ---------------------------------------------------------------- optimizers vs NumPy references
CONFIGS = [
    ("sgd", lambda: gc.optim.SGD(0.05)),
    ("sgd_momentum", lambda: gc.optim.SGD(0.05, momentum=0.9)),
    ("sgd_nesterov_wd", lambda: gc.optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("rmsprop", lambda: gc.optim.RMSProp(0.01)),
    ("rmsprop_momentum_wd", lambda: gc.optim.RMSProp(0.01, alpha=0.9, momentum=0.5, weight_decay=0.01)),
    ("adam", lambda: gc.optim.Adam(0.05)),
    ("adam_l2", lambda: gc.optim.Adam(0.05, betas=(0.8, 0.99), weight_decay=0.01)),
    ("adamw", lambda: gc.optim.AdamW(0.05, weight_decay=0.1)),
]


def reference_step(name, p, g, s, lr, t):
    """One step of each optimizer written from its published formula (torch.optim's docs)."""
    if name.startswith("sgd"):
        mu = 0.0 if name == "sgd" else 0.9
        if name == "sgd_nesterov_wd":
            g = g + 0.01 * p
        if mu == 0:
            return p - lr * g
        s["b"] = mu * s.get("b", 0 * p) + g
        d = g + mu * s["b"] if "nesterov" in name else s["b"]
        return p - lr * d
    if name.startswith("rmsprop"):
        alpha, mu, wd = (0.99, 0.0, 0.0) if name == "rmsprop" else (0.9, 0.5, 0.01)
        g = g + wd * p
        s["v"] = alpha * s.get("v", 0 * p) + (1 - alpha) * g * g
        step = g / (np.sqrt(s["v"]) + 1e-8)
        if mu == 0:
            return p - lr * step
        s["b"] = mu * s.get("b", 0 * p) + step
        return p - lr * s["b"]
    b1, b2 = (0.8, 0.99) if name == "adam_l2" else (0.9, 0.999)
    if name == "adam_l2":
        g = g + 0.01 * p
    if name == "adamw":
        p = p * (1 - lr * 0.1)
    s["m"] = b1 * s.get("m", 0 * p) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0 * p) + (1 - b2) * g * g
    mhat, vhat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
    return p - lr * mhat / (np.sqrt(vhat) + 1e-8)


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(5)
    return rng.normal(size=(16, 3)), rng.normal(size=(16, 2)), rng.normal(size=(3, 2)), rng.normal(size=2)


@pytest.fixture(scope="module")
def optimizer_run(request, regression):
    """Every optimizer config trained in one compiled function (one compile per backend)."""
    backend = request.param
    X, Y, W0, b0 = regression
    x = gc.placeholder((None, 3), "float64", name="x")
    y = gc.placeholder((None, 2), "float64", name="y")
    losses, updates, params, opts = [], [], {}, {}
    for name, make in CONFIGS:
        W = gc.parameter(W0.copy(), name=f"{name}.W")
        b = gc.parameter(b0.copy(), name=f"{name}.b")
        loss = gc.mean((x @ W + b - y) ** 2)
        opts[name] = make()
        updates += opts[name].updates(loss, [W, b])
        losses.append(loss)
        params[name] = (W, b)
    fn = gc.compile([x, y], losses, updates=updates, backend=backend)
    trace = {name: [] for name, _ in CONFIGS}
    for step in range(6):
        if step == 3:  # the learning rate is a run-time value: halve it mid-run, same function
            for o in opts.values():
                o.lr = o.lr * 0.5
        fn(X, Y)
        for name, (W, b) in params.items():
            trace[name].append((W.value.copy(), b.value.copy()))
    return backend, fn, opts, params, trace


@pytest.mark.parametrize("optimizer_run", ["numpy", "numba"], indirect=True)
@pytest.mark.parametrize("name", [c[0] for c in CONFIGS])
def test_optimizer_matches_reference_loop(optimizer_run, regression, name):
    _, _, opts, _, trace = optimizer_run
    X, Y, W0, b0 = regression
    W, b, sw, sb = W0.copy(), b0.copy(), {}, {}
    lr = {c[0]: c[1]().lr for c in CONFIGS}[name]
    for t in range(1, 7):
        if t == 4:
            lr *= 0.5
        r = X @ W + b - Y
        d = 2 * r / r.size
        gW, gb = X.T @ d, d.sum(0)
        W, b = reference_step(name, W, gW, sw, lr, t), reference_step(name, b, gb, sb, lr, t)
        np.testing.assert_allclose(trace[name][t - 1][0], W, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {t}")
        np.testing.assert_allclose(trace[name][t - 1][1], b, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {t}")
    if opts[name].step is not None:
        assert opts[name].step.value == 6


@pytest.mark.parametrize("optimizer_run", ["numba"], indirect=True)
def test_each_parameter_update_is_one_fused_kernel(optimizer_run):
    _, fn, opts, params, _ = optimizer_run
    new = dict(fn.updates)
    kernel_of = {}
    for k in fn.kernels:
        for n in k.outputs:
            kernel_of[n] = k.index
    for name, o in opts.items():
        for i, p in enumerate(o.params):
            targets = [p] + list(o.slots[i].values())
            kernels = {kernel_of[new[q]] for q in targets}
            assert len(kernels) == 1, f"{name}: update of {p.label} spans kernels {kernels}"
    # the learning rate is read at run time, never baked into the source
    assert "0.025" not in fn.source() and "0.05)" not in fn.source()


def test_l2_penalty_equals_sgd_weight_decay_and_l1_value(backend, regression):
    X, Y, W0, b0 = regression
    x = gc.placeholder((None, 3), "float64")
    y = gc.placeholder((None, 2), "float64")
    Wa, Wb = gc.parameter(W0.copy()), gc.parameter(W0.copy())
    lam = 0.3
    la = gc.mean((x @ Wa - y) ** 2)
    lb = gc.mean((x @ Wb - y) ** 2) + lam / 2 * gc.l2_penalty([Wb])
    ups = gc.optim.SGD(0.1, weight_decay=lam).updates(la, [Wa]) + gc.optim.SGD(0.1).updates(lb, [Wb])
    fn = gc.compile([x, y], [gc.l1_penalty([Wa, Wb]), gc.l2_penalty(Wa)], updates=ups, backend=backend)
    for _ in range(3):
        l1, l2 = fn(X, Y)
    np.testing.assert_allclose(Wa.value, Wb.value, rtol=1e-12)
    # outputs are computed before the step's updates
    np.testing.assert_allclose(l2, np.sum(Wa.value ** 2), rtol=0.5)  # sanity: same magnitude
    fn2 = gc.compile([], [gc.l1_penalty([Wa, Wb]), gc.l2_penalty(Wa)], backend=backend)
    l1, l2 = fn2()
    np.testing.assert_allclose(l1, 2 * np.abs(Wa.value).sum(), rtol=1e-12)
    np.testing.assert_allclose(l2, (Wa.value ** 2).sum(), rtol=1e-12)


# ---------------------------------------------------------------- dropout
@pytest.fixture(scope="module")
def dropout_fns(request):
    backend = request.param
    x = gc.placeholder((None, 500), "float32", name="x")
    y = gc.dropout(x, 0.3, seed=7)
    train = gc.compile([x], y, backend=backend, training=True)
    infer = gc.compile([x], y, backend=backend)  # no updates: inference
    return train, infer, y


@pytest.mark.parametrize("dropout_fns", ["numpy", "numba"], indirect=True)
def test_dropout_train_mean_eval_identity_and_fresh_masks(dropout_fns):
    train, infer, _ = dropout_fns
    X = np.ones((200, 500), np.float32)
    a, b = train(X), train(X)
    n = X.size
    for out in (a, b):
        dropped = (out == 0).mean()
        assert abs(dropped - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
        np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)  # inverted: the survivors scaled
        assert abs(out.mean() - 1) < 5 * np.sqrt(0.3 / 0.7 / n)           # so the expectation is kept
    assert (a != b).mean() > 0.3        # the key advanced: a new mask every step
    Z = np.random.default_rng(0).normal(size=(3, 500)).astype(np.float32)
    np.testing.assert_array_equal(infer(Z), Z)


def test_dropout_masks_are_reproducible_and_equal_across_backends():
    def masks(backend):
        x = gc.placeholder((None, 40), "float64")
        fn = gc.compile([x], gc.dropout(x, 0.5, seed=123), backend=backend, training=True)
        return [fn(np.ones((5, 40))) for _ in range(2)]
    a, b = masks("numpy"), masks("numpy")
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a[0], a[1])
    c = masks("numba")
    for p, q in zip(a, c):
        np.testing.assert_array_equal(p, q)


def test_dropout_gradient_uses_the_same_mask(backend):
    x = gc.placeholder((None, 30), "float64")
    w = gc.parameter(np.linspace(-1, 1, 30))
    y = gc.dropout(x * w, 0.4, seed=2)
    (g,) = gc.grad(gc.sum(y), [w])
    fn = gc.compile([x], [y, g], backend=backend, training=True)
    X = np.ones((4, 30))
    out, grad_w = fn(X)
    kept = out != 0
    np.testing.assert_allclose(grad_w, (kept * X / 0.6).sum(0), rtol=1e-12)


# ---------------------------------------------------------------- batch norm
@pytest.fixture(scope="module")
def bn_fns(request):
    backend = request.param
    bn = gc.nn.BatchNorm(3, momentum=0.2)
    x = gc.placeholder((None, 3, 2, 2), "float32", name="x")
    y = bn(x)
    train = gc.compile([x], y, backend=backend, training=True)
    infer = gc.compile([x], y, backend=backend, training=False)
    return bn, train, infer


@pytest.mark.parametrize("bn_fns", ["numpy", "numba"], indirect=True)
def test_batch_norm_train_uses_batch_stats_and_moves_running_averages(bn_fns):
    bn, train, infer = bn_fns
    bn.gamma.value = np.array([1.0, 2.0, 0.5], np.float32)
    bn.beta.value = np.array([0.0, -1.0, 3.0], np.float32)
    bn.running_mean.value = np.zeros(3, np.float32)
    bn.running_var.value = np.ones(3, np.float32)
    rng = np.random.default_rng(3)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        X = (rng.normal(size=(6, 3, 2, 2)) * np.array([1, 2, 3])[None, :, None, None] + 5).astype(np.float32)
        out = train(X)
        mu = X.mean((0, 2, 3))
        var = X.var((0, 2, 3))
        want = (X - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5) \
            * bn.gamma.value[None, :, None, None] + bn.beta.value[None, :, None, None]
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
        n = X.size / 3
        rm = 0.8 * rm + 0.2 * mu
        rv = 0.8 * rv + 0.2 * var * n / (n - 1)
        np.testing.assert_allclose(bn.running_mean.value, rm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.running_var.value, rv, rtol=1e-5)
    before = bn.running_mean.value.copy()
    Z = rng.normal(size=(2, 3, 2, 2)).astype(np.float32)
    got = infer(Z)
    want = (Z - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5) \
        * bn.gamma.value[None, :, None, None] + bn.beta.value[None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.value, before)  # inference updates nothing


def test_batch_norm_training_gradients_match_finite_differences():
    gamma = np.array([1.5, -0.5, 2.0])
    beta = np.array([0.1, 0.2, 0.3])

    rng = np.random.default_rng(0)
    weights = gc.constant(rng.normal(size=(4, 3, 2)))

    def f(x, g, b):
        return gc.sum(gc.batch_norm(x, g, b) * weights)
    gc.check_grad(f, [rng.normal(size=(4, 3, 2)), gamma, beta], training=True, rtol=1e-5)
    gc.check_grad(f, [rng.normal(size=(4, 3, 2)), gamma, beta], training=False, rtol=1e-5)


def test_train_switch_gradient_in_both_modes():
    w = np.random.default_rng(1).normal(size=(3, 4))

    def f(x):
        return gc.sum(gc.train_switch(x * x, gc.sin(x)) * w)
    x = np.random.default_rng(2).normal(size=(3, 4))
    gc.check_grad(f, [x], training=True)
    gc.check_grad(f, [x], training=False)
    p = gc.placeholder((3, 4), "float64")
    (g,) = gc.grad(f(p), [p])
    np.testing.assert_allclose(gc.compile([p], g, training=True)(x), 2 * x * w, rtol=1e-12)
    np.testing.assert_allclose(gc.compile([p], g, training=False)(x), np.cos(x) * w, rtol=1e-12)


def test_training_graph_drops_the_inference_branch_of_gradients():
    x = gc.placeholder((None, 4), "float32")
    bn = gc.nn.BatchNorm(4)
    loss = gc.sum(bn(x) ** 2)
    updates = gc.optim.SGD(0.1).updates(loss, bn.parameters())
    fn = gc.compile([x], loss, updates=updates, backend="numpy")
    ops = [n.op.name for n in fn.program.order]
    assert "train_switch" not in ops
    # the running statistics feed only their own moving averages: the loss and the gradients
    # (whose inference branch the switch turned into symbolic zeros) never read them
    stats = {bn.running_mean, bn.running_var}
    rest = gc.toposort(fn.outputs + [u for p, u in fn.updates if p not in stats])
    assert not stats & set(rest)
    assert {p.name for p, _ in fn.updates} >= {"running_mean", "running_var", "gamma", "beta"}


# ---------------------------------------------------------------- a failed call changes nothing
def test_failed_training_step_changes_no_parameter(backend):
    x = gc.placeholder((None, 3), "float32")
    y = gc.placeholder((None,), "int64")
    model = gc.nn.Sequential(gc.nn.Linear(3, 4, seed=0), gc.nn.BatchNorm(4), gc.nn.ReLU(), gc.nn.Linear(4, 2, seed=1))
    logits = model(x)
    opt = gc.optim.Adam(0.1)
    fn = gc.compile([x, y], gc.cross_entropy(logits, y), updates=opt.updates(gc.cross_entropy(logits, y)),
                    backend=backend)
    X = np.ones((5, 3), np.float32)
    fn(X, np.zeros(5, np.int64))
    state = {k: v.value.copy() for k, v in {**model.named_state(), **opt.state()}.items()}
    with pytest.raises(gc.GraphIndexError):
        fn(X, np.array([0, 1, 2, 0, 1]))  # label 2 is out of range for 2 classes
    for k, v in {**model.named_state(), **opt.state()}.items():
        np.testing.assert_array_equal(v.value, state[k], err_msg=k)

"""gc.scan: one graph node whose body is compiled once and run per step, against the unrolled
graph (values and gradients), closed forms and float64 finite differences, on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def _close(got, want, tol=1e-6):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("cell_type", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_scan_matches_the_unrolled_graph(backend, cell_type):
    """A cell's scan over T = 3 steps gives the unrolled graph's outputs, final state and gradients
    (every weight, the initial state and the inputs) to 1e-6, in float64 (the unrolled graph run on
    the NumPy backend, which interprets it op by op)."""
    rng = np.random.default_rng(1)
    cell = getattr(gc.nn, cell_type)(2, 3, seed=0, dtype="float64")
    for p in cell.parameters():
        p.value = rng.normal(size=p.shape) * 0.5
    xs = gc.placeholder((3, None, 2), "float64")
    h0 = gc.placeholder((None, 3), "float64")
    state = (h0, gc.tanh(h0)) if cell_type == "LSTMCell" else h0
    ys, fin = cell.scan(xs, state)
    ys_u, fin_u = gc.nn.unroll(cell, xs, state)
    fin, fin_u = (fin, fin_u) if isinstance(fin, tuple) else ((fin,), (fin_u,))
    wy = gc.constant(rng.normal(size=(3, 1, 3)))

    def loss_of(ys, fin):
        return gc.sum(ys * wy) + sum(gc.sum(f * f) for f in fin)
    wrt = cell.parameters() + [h0, xs]
    a = [ys, *fin, *gc.grad(loss_of(ys, fin), wrt)]
    b = [ys_u, *fin_u, *gc.grad(loss_of(ys_u, fin_u), wrt)]
    f = gc.compile([xs, h0], a, backend=backend)
    ref = gc.compile([xs, h0], b)  # the unrolled graph on the NumPy reference
    feeds = rng.normal(size=(3, 2, 2)), rng.normal(size=(2, 3))
    _close(f(*feeds), ref(*feeds))
    assert any(n.op.name == "scan" for n in f.program.order)


def test_reverse_scan_and_a_carry_of_several_tensors(backend):
    """reverse=True runs the steps last to first (ys in the order of xs); a carry of three tensors
    of different shapes and dtypes (an int counter among them) comes back in init's structure."""
    xs = gc.placeholder((None, 2), "float64")

    def step(carry, x):
        s, (m, k) = carry
        s2 = s + x * gc.cast(k, "float64")
        return (s2, (gc.maximum(m, gc.max(x)), k + 1)), s2 * 2.0
    init = (gc.constant(np.zeros(2)), (gc.constant(np.array(-np.inf)), gc.constant(np.array(1, np.int64))))
    (s, (m, k)), ys = gc.scan(step, init, xs, reverse=True)
    f = gc.compile([xs], [s, m, k, ys], backend=backend)
    X = np.arange(8, dtype=np.float64).reshape(4, 2)
    got = f(X)
    weights = np.arange(4, 0, -1)[:, None]  # the last row is step 1
    want_ys = 2 * np.cumsum((X * weights)[::-1], axis=0)[::-1]
    _close(got, [(X * weights).sum(0), X.max(), 5, want_ys])
    assert got[2].dtype == np.int64


def test_length_zero_one_and_run_time_lengths(backend):
    """One compiled function runs T = 0 (final carry = init, ys empty), 1 and 5; the gradient of
    sum(w * cumsum(x)) is the reversed cumulative sum of w (a closed form)."""
    xs = gc.placeholder((None, 3), "float64")
    w = gc.placeholder((None, 3), "float64")
    c0 = gc.placeholder((3,), "float64")
    fin, ys = gc.scan(lambda c, x: (c + x, c + x), c0, xs)
    loss = gc.sum(ys * w) + gc.sum(fin)
    f = gc.compile([xs, w, c0], [fin, ys] + gc.grad(loss, [xs, c0]), backend=backend)
    rng = np.random.default_rng(2)
    C0 = rng.normal(size=3)
    for T in (0, 1, 5):
        X, W = rng.normal(size=(T, 3)), rng.normal(size=(T, 3))
        fin_v, ys_v, dx, dc0 = f(X, W, C0)
        assert ys_v.shape == (T, 3) and dx.shape == (T, 3)
        _close([fin_v, ys_v], [C0 + X.sum(0), C0 + np.cumsum(X, 0)])
        _close([dx, dc0], [np.cumsum(W[::-1], 0)[::-1] + 1, W.sum(0) + 1])


def test_scan_without_xs_and_captured_values(backend):
    """length= without xs: x_{t+1} = A x_t + b read A and b from outside (captured, fed every
    step); the gradients to A, b and x0 match the unrolled graph."""
    rng = np.random.default_rng(3)
    A = gc.parameter(rng.normal(size=(3, 3)) * 0.4, dtype="float64")
    b = gc.parameter(rng.normal(size=3), dtype="float64")
    x0 = gc.placeholder((3,), "float64")
    fin, ys = gc.scan(lambda c, _: (gc.tanh(A @ c + b),) * 2, x0, length=4)
    u = x0
    for _ in range(4):
        u = gc.tanh(A @ u + b)
    f = gc.compile([x0], [fin, ys[-1]] + gc.grad(gc.sum(fin * fin), [A, b, x0])
                   + gc.grad(gc.sum(u * u), [A, b, x0]), backend=backend)
    out = f(rng.normal(size=3))
    _close([out[0]] + out[2:5], [out[1]] + out[5:])


def _recurrence(W, xs, h0):
    """A scan whose body reads an input W from outside, with two ys and a non-linear carry."""
    fin, (ys, zs) = gc.scan(lambda c, x: (gc.sin(c @ W) + x, (gc.exp(c), c * x)), h0, xs)
    return gc.sum(ys * ys) + gc.sum(fin) + gc.sum(zs)


def test_scan_gradients_against_finite_differences(backend):
    """The reverse scan's gradients (to a captured W, the xs and the initial carry) against float64
    central differences, and a second derivative (the gradient of the reverse scan, itself a scan)."""
    rng = np.random.default_rng(4)
    W, X, H = rng.normal(size=(2, 2)) * 0.5, rng.normal(size=(3, 2)), rng.normal(size=2)
    assert gc.check_grad(_recurrence, [W, X, H], backend=backend) < 1e-6
    if backend != "cuda":  # the simulator runs the nested loops' kernels slowly
        def first(W, X, H):
            return gc.sum(gc.grad(_recurrence(W, X, H), [W])[0] * gc.constant(np.array([[1.0, -2.0], [0.5, 3.0]])))
        assert gc.check_grad(first, [W, X, H], backend=backend) < 1e-6


def test_build_time_errors_name_the_users_line():
    """A carry that changes shape, dtype or structure, and xs of disagreeing lengths, are errors at
    build time naming the carry and the line that called gc.scan."""
    xs = gc.placeholder((4, 3))
    c0 = gc.placeholder((3,))
    cases = [
        (lambda: gc.scan(lambda c, x: (gc.reshape(c, (1, 3)), None), c0, xs), gc.ShapeError, "carry 0 of shape"),
        (lambda: gc.scan(lambda c, x: (gc.cast(c, "float64"), None), c0, xs), gc.DTypeError, "keeps its dtype"),
        (lambda: gc.scan(lambda c, x: ((c, c), None), c0, xs), gc.ShapeError, "structure"),
        (lambda: gc.scan(lambda c, x: (c, x), c0, [xs, gc.placeholder((5, 3))]), gc.ShapeError, r"\[4, 5\]"),
        (lambda: gc.scan(lambda c, x: (c, x), c0, xs, length=3), gc.ShapeError, "disagree"),
        (lambda: gc.scan(lambda c, x: (c, None), c0), gc.ShapeError, "length="),
        (lambda: gc.scan(lambda c, x: c, c0, xs), gc.GraphError, "pair"),
    ]
    for build, kind, pattern in cases:
        with pytest.raises(kind, match=pattern) as e:
            build()
        assert e.value.loc is not None and e.value.loc[0] == __file__, (pattern, e.value.loc)


def test_run_time_length_mismatch_changes_no_parameter(backend):
    """xs fed with different numbers of steps: a ShapeError naming the scan, and the training step
    that failed updated nothing."""
    W = gc.parameter(np.eye(2, dtype=np.float32))
    a, b = gc.placeholder((None, 2)), gc.placeholder((None, 2))
    fin, _ = gc.scan(lambda c, x: (gc.tanh(c @ W + x[0] * x[1]), None), gc.constant(np.zeros(2, np.float32)), [a, b])
    loss = gc.sum(fin * fin) + gc.sum(W)
    step = gc.compile([a, b], loss, gc.optim.SGD(0.1).updates(loss, [W]), backend=backend)
    step(np.ones((3, 2), np.float32), np.ones((3, 2), np.float32))
    before = W.value.copy()
    with pytest.raises(gc.ShapeError, match=r"scan .*different numbers of steps \(\(3, 2\), \(4, 2\)\)") as e:
        step(np.ones((3, 2), np.float32), np.ones((4, 2), np.float32))
    assert e.value.loc[0] == __file__
    np.testing.assert_array_equal(W.value, before)


def test_nested_scan():
    """A scan inside a scan's body (the body is staged in turn): a running sum of row sums."""
    xs = gc.placeholder((3, 4), "float64")

    def outer(c, row):
        inner, _ = gc.scan(lambda s, v: (s + v, None), gc.constant(np.array(0.0)), row)
        return c + inner, c + inner
    fin, ys = gc.scan(outer, gc.constant(np.array(0.0)), xs)
    loss = gc.sum(ys * ys)
    f = gc.compile([xs], [fin, ys] + gc.grad(loss, [xs]), backend="numba")
    X = np.arange(12.0).reshape(3, 4)
    fin_v, ys_v, dx = f(X)
    cs = np.cumsum(X.sum(1))
    _close([fin_v, ys_v, dx], [cs[-1], cs, np.repeat(np.cumsum((2 * cs)[::-1])[::-1][:, None], 4, 1)])


def test_drawings_show_the_body_as_a_cluster():
    """Each stage draws a scan's body as a cluster beside the scan node, its placeholders named by
    role; the backward stage also draws the reverse scan's body."""
    W = gc.parameter(np.eye(3, dtype=np.float32), name="W")
    xs, h0 = gc.placeholder((None, 2, 3), name="xs"), gc.placeholder((2, 3), name="h0")
    fin, ys = gc.scan(lambda c, x: (gc.tanh(c @ W + x), c * 2.0), h0, xs)
    loss = gc.sum(fin) + gc.sum(ys)
    step = gc.compile([xs, h0], loss, gc.optim.SGD(0.1).updates(loss, [W]))
    fwd, bwd = gc.to_dot(step, "forward").source, gc.to_dot(step, "backward").source
    assert fwd.count('class="scan-body"') == 1 and bwd.count('class="scan-body"') == 2
    for text in ("carry 0", "x 0", "captured W", "new carry 0", "y 0", "? steps", "final carry 0"):
        assert text in fwd, text
    assert "? steps, reverse" in bwd and "saved carries 0" in bwd


def test_the_numpy_meaning_of_scan_matches_the_staged_loop(backend):
    """Scan.impl (the loop in NumPy, node by node with each op's meaning: the reference) against
    the compiled parts and host loop, reverse=True."""
    from graphc.ir import toposort
    xs, h = gc.placeholder((4, 3, 2), "float64"), gc.placeholder((3, 2), "float64")
    W = gc.placeholder((2, 2), "float64")
    fin, ys = gc.scan(lambda c, x: (gc.tanh(c @ W + x), c * x), h, xs, reverse=True)
    out = gc.sum(ys, 0) + fin
    rng = np.random.default_rng(5)
    vals = {xs: rng.normal(size=(4, 3, 2)), h: rng.normal(size=(3, 2)), W: rng.normal(size=(2, 2))}
    for n in toposort([out]):
        if n not in vals:
            vals[n] = n.data if n.op.name == "constant" else n.op.impl(*(vals[i] for i in n.inputs), **n.attrs)
    got = gc.compile([xs, h, W], out, backend=backend)(vals[xs], vals[h], vals[W])
    np.testing.assert_allclose(got, vals[out], rtol=1e-12, atol=1e-12)


def test_the_reverse_scan_reads_saved_products_and_sums_weight_gradients_after_the_loop():
    """The backward body does not recompute h @ W_hh (the forward scan saved it: a residual), and
    W_hh's gradient, a sum over steps of h^T dz, is one GEMM of the stacked values after the loop."""
    from graphc.ir import toposort
    cell = gc.nn.RNNCell(2, 3, seed=0)
    ys, _ = cell.scan(gc.placeholder((4, 5, 2)))
    (gW,) = gc.grad(gc.sum(ys * ys), [cell.W_hh])
    fwd, bwd = sorted((n for n in toposort([gW]) if n.op.name == "scan"), key=lambda n: n.attrs["reverse"])
    body = fwd.attrs["body"]
    first_residual = 2 * len(body.carry) + len(body.ys)
    assert [n.op.name for n in bwd.attrs["body"].nodes].count("matmul") == 1  # dz @ W_hh^T only
    assert any(x.op.name == "scan_output" and x.inputs[0] is fwd and x.attrs["index"] >= first_residual
               for x in bwd.inputs)
    assert gW.op.name == "matmul" and all(i.op.name in ("transpose", "reshape") for i in gW.inputs)


def test_a_bias_gradient_is_summed_after_the_loop_and_the_gates_sum_is_the_residual(backend):
    """In h' = tanh(x + h @ W + b) (b inside the step), b's gradient, a per-step sum over the batch,
    is no carry of the backward scan: the stacked per-step values are summed over the steps and the
    batch after it. The forward scan saves x + h @ W + b (what the backward reads), not h @ W. The
    gradients match the unrolled graph."""
    from graphc.ir import toposort
    rng = np.random.default_rng(5)
    W = gc.parameter(rng.normal(size=(3, 3)) * 0.5, dtype="float64")
    b = gc.parameter(rng.normal(size=3), dtype="float64")
    xs = gc.placeholder((4, 2, 3), "float64")
    h0 = gc.placeholder((2, 3), "float64")
    fin, ys = gc.scan(lambda h, x: (gc.tanh(x + h @ W + b),) * 2, h0, xs)
    grads = gc.grad(gc.sum(ys * ys), [W, b, h0])
    fwd, bwd = sorted((n for n in toposort(grads) if n.op.name == "scan"), key=lambda n: n.attrs["reverse"])
    assert len(bwd.attrs["body"].carry) == 1  # dh only: no running sum for b (nor for W)
    assert [r.op.name for r in fwd.attrs["body"].residuals] == ["add"]
    u, want_ys = h0, []
    for t in range(4):
        u = gc.tanh(xs[t] + u @ W + b)
        want_ys.append(u)
    want = gc.grad(gc.sum(gc.stack(want_ys, 0) ** 2), [W, b, h0])
    f = gc.compile([xs, h0], grads + want, backend=backend)
    got = f(rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 3)))
    for g, w in zip(got[:3], got[3:]):
        _close(g, w, 1e-10)


def test_an_lstm_backward_step_reads_the_gates_its_forward_saved(backend):
    """An LSTM step's sigmoid and tanh values are residuals (their gradients read them): the
    backward step computes no transcendental again, and the gate pre-activations it no longer
    reads are not stacked. A tanh that is a new carry is not saved twice. The gradients, the
    outputs and the final carries equal the unrolled graph's (float64)."""
    from graphc.ir import toposort
    rng = np.random.default_rng(11)
    Wi = gc.parameter(rng.normal(size=(3, 16)) * 0.5, dtype="float64")
    Wh = gc.parameter(rng.normal(size=(4, 16)) * 0.5, dtype="float64")
    xs = gc.placeholder((5, 2, 3), "float64")
    h0, c0 = gc.placeholder((2, 4), "float64"), gc.placeholder((2, 4), "float64")

    def cell(h, c, x):
        i, f, g, o = gc.split(x @ Wi + h @ Wh, 4, axis=1)
        c2 = gc.sigmoid(f) * c + gc.sigmoid(i) * gc.tanh(g)
        return gc.sigmoid(o) * gc.tanh(c2), c2

    def step(carry, x):
        h2, c2 = cell(*carry, x)
        return (h2, c2), h2
    (hT, cT), ys = gc.scan(step, (h0, c0), xs)
    loss = gc.sum(ys * ys) + gc.sum(cT)
    grads = gc.grad(loss, [Wi, Wh, xs, h0, c0])
    fwd, bwd = sorted((n for n in toposort(grads) if n.op.name == "scan"), key=lambda n: n.attrs["reverse"])
    saved = [r.op.name for r in fwd.attrs["body"].residuals]
    assert sorted(saved) == ["add", "sigmoid", "sigmoid", "sigmoid", "tanh", "tanh"], saved
    back_ops = {n.op.name for n in toposort(list(bwd.attrs["body"].outputs))}
    assert not back_ops & {"sigmoid", "tanh", "exp"}, back_ops
    read = {n.attrs["index"] for n in bwd.inputs if n.op.projection and n.inputs[0] is fwd}
    first = 2 * 2 + 1  # final carries, ys, saved carries
    # the backward reads the saved gates, not the pre-activations (so the forward does not stack them)
    assert {saved[k - first] for k in read if k >= first} == {"sigmoid", "tanh"}
    h, c, want_ys = h0, c0, []
    for t in range(5):
        h, c = cell(h, c, xs[t])
        want_ys.append(h)
    wys = gc.stack(want_ys, 0)
    want = gc.grad(gc.sum(wys * wys) + gc.sum(c), [Wi, Wh, xs, h0, c0])
    f = gc.compile([xs, h0, c0], [hT, cT, ys] + grads + [h, c, wys] + want, backend=backend)
    got = f(rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4)))
    for g, w in zip(got[:8], got[8:]):
        _close([g], [w], 1e-10)


def test_an_lstm_scan_adds_b_hh_to_the_input_gates_before_the_loop():
    """gc.nn.LSTM's loop body reads x @ W_ih + b_ih + b_hh for its step (one bias add over the whole
    sequence before the loop) and h @ W_hh: b_hh is not captured by the body; a GRU's b_hh stays in
    it (r * (h @ W_hn + b_hn))."""
    from graphc.ir import toposort
    for cls, inside in ((gc.nn.LSTM, False), (gc.nn.RNN, False), (gc.nn.GRU, True)):
        layer = cls(3, 4, seed=0)
        out, _ = layer(gc.placeholder((5, 2, 3)))
        (scan,) = [n for n in toposort([out]) if n.op.name == "scan"]
        body = scan.attrs["body"]
        captured = scan.inputs[len(body.carry) + len(body.xs):]
        assert any(c is layer.l0.b_hh for c in captured) is inside, cls.__name__


def test_a_batch_first_rnn_moves_each_sequence_between_layouts_once():
    """A batch-first LSTM with a linear head, trained: the embedded input made time-major, the
    outputs made batch-first, their gradient made time-major and the input's gradient made
    batch-first are one copy each in the whole staged step. The weight gradients after the loops
    read the copies the forward parts made; they do not transpose the stacked values again."""
    emb = gc.nn.Embedding(7, 3, seed=0)
    lstm = gc.nn.LSTM(3, 4, batch_first=True, seed=1)
    head = gc.nn.Linear(4, 7, seed=2)
    ids = gc.placeholder((2, 5), "int64")
    out, _ = lstm(emb(ids))
    loss = gc.cross_entropy(gc.reshape(head(out), (-1, 7)), gc.reshape(ids, (-1,)))
    fn = gc.compile([ids], loss, gc.optim.SGD(0.1).updates(loss), backend="numba")
    moves = [k for k in fn.kernels for n in k.nodes
             if n.op.name == "transpose" and n.ndim == 3 and tuple(n.attrs["perm"]) == (1, 0, 2)]
    assert len(moves) == 4, moves
    assert np.isfinite(fn(np.arange(10).reshape(2, 5) % 7))


def test_a_reverse_scans_saved_carries_give_the_unrolled_gradients(backend):
    """reverse=True with a carry the backward needs (each step's input state, saved in its slot as
    the step before computes it) and a second carry fetched too: gradients equal the unrolled
    graph's, the final carries and ys too."""
    rng = np.random.default_rng(7)
    w = gc.parameter(rng.normal(size=(3, 3)) * 0.5, dtype="float64")
    xs = gc.placeholder((5, 2, 3), "float64")
    h0 = gc.placeholder((2, 3), "float64")

    def step(carry, x):
        h, s = carry
        h2 = gc.tanh(h @ w + x)
        return (h2, s + h2 * h2), h2
    (hT, sT), ys = gc.scan(step, (h0, gc.zeros_like(h0)), xs, reverse=True)
    loss = gc.sum(ys * gc.sin(ys)) + gc.sum(sT)
    h, s, want_ys = h0, gc.zeros_like(h0), [None] * 5
    for t in range(4, -1, -1):
        h = gc.tanh(h @ w + xs[t])
        s = s + h * h
        want_ys[t] = h
    wys = gc.stack(want_ys, 0)
    want = gc.sum(wys * gc.sin(wys)) + gc.sum(s)
    f = gc.compile([xs, h0], [hT, sT, ys] + gc.grad(loss, [w, xs, h0]) + [h, s, wys] + gc.grad(want, [w, xs, h0]),
                   backend=backend)
    got = f(rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 3)))
    for g, v in zip(got[:6], got[6:]):
        _close(g, v, 1e-10)


def test_a_bad_index_in_a_later_step_names_the_node_and_changes_no_parameter(backend):
    """A gather in the body reads an index out of range at step 3 of 5: a GraphIndexError naming the
    take and the user's line, on every backend (numba runs the steps in one native call), and the
    training step that failed updated nothing."""
    table = gc.parameter(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
    ids = gc.placeholder((5, 2), "int64")
    h0 = gc.placeholder((2, 3))
    fin, ys = gc.scan(lambda h, i: (gc.tanh(h + gc.take(table, i, axis=0)),) * 2, h0, ids)
    loss = gc.sum(ys * ys)
    step = gc.compile([ids, h0], loss, gc.optim.SGD(0.1).updates(loss, [table]), backend=backend)
    good = np.array([[0, 1], [2, 3], [1, 1], [0, 2], [3, 0]])
    step(good, np.zeros((2, 3), np.float32))
    before = table.value.copy()
    bad = good.copy()
    bad[3, 1] = 7
    with pytest.raises(gc.GraphIndexError, match=r"take") as e:
        step(bad, np.zeros((2, 3), np.float32))
    assert e.value.loc[0] == __file__
    np.testing.assert_array_equal(table.value, before)


def _bias_recurrence(W, b, xs, h0):
    """h' = tanh(x + h @ W + b): b's gradient is summed after the loop, over the stacked steps."""
    fin, ys = gc.scan(lambda h, x: (gc.tanh(x + h @ W + b),) * 2, h0, xs)
    return gc.sum(ys * gc.sin(ys)) + gc.sum(fin * fin)


@pytest.mark.parametrize("T, N", [(0, 2), (1, 1), (3, 1), (2, 0)])
def test_a_bias_summed_after_the_loop_at_lengths_and_batches_of_0_and_1(backend, T, N):
    """The gradients of W, b, xs and h0 against float64 central differences when the scan has no
    step, one step, or a batch of one or none (b's gradient then the sum over nothing: zeros)."""
    rng = np.random.default_rng(11)
    vals = [rng.normal(size=(3, 3)) * 0.5, rng.normal(size=3), rng.normal(size=(T, N, 3)), rng.normal(size=(N, 3))]
    assert gc.check_grad(_bias_recurrence, vals, backend=backend) < 1e-6
    if T == 0 or N == 0:
        b = gc.placeholder((3,), "float64")
        W, xs, h0 = (gc.placeholder(v.shape, "float64") for v in (vals[0], vals[2], vals[3]))
        (gb,) = gc.grad(_bias_recurrence(W, b, xs, h0), [b])
        np.testing.assert_array_equal(gc.compile([W, b, xs, h0], gb, backend=backend)(*vals), np.zeros(3))

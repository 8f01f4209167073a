"""Cross-backend fuzzing: random graphs (elementwise ops with broadcasting, run-time dims fed as 0, 1
and n, reductions, reshapes, transposes, indexing, matmul, softmax and the nn losses), forward and
gradients, on numba and the cuda simulator with optimize on and off, against the NumPy backend with
optimize off. A graph the reference refuses at run time must raise the same GraphError class on
every backend.

Seeded (hypothesis derandomized) and bounded for CI; GRAPHC_FUZZ_EXAMPLES=N runs N graphs (and
GRAPHC_FUZZ_CUDA=N of them on the simulator too) for a long local run: `make fuzz`."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import graphc as gc

EXAMPLES = int(os.environ.get("GRAPHC_FUZZ_EXAMPLES", "10"))
CUDA_EVERY = max(1, EXAMPLES // int(os.environ.get("GRAPHC_FUZZ_CUDA", "4")))  # 1 graph in CUDA_EVERY on cuda
RUN_TIME_SIZES = {"a": (0, 1, 3), "b": (1, 2)}  # what each run-time dim is fed, drawn per graph

UNARY = {
    "tanh": gc.tanh, "sigmoid": gc.sigmoid, "relu": gc.relu, "abs": gc.abs, "neg": lambda x: -x,
    "square": lambda x: x * x, "exp_tanh": lambda x: gc.exp(gc.tanh(x)), "log1p_sq": lambda x: gc.log(x * x + 1),
    "sin": gc.sin, "softplus": gc.softplus, "gelu": gc.gelu, "sqrt": lambda x: gc.sqrt(x * x + 0.5),
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "max": gc.maximum,
    "where": lambda a, b: gc.where(a > b, a, b * 2.0), "div": lambda a, b: a / (b * b + 1.0),
    "mse": lambda a, b: gc.mse(a, b), "pow": lambda a, b: gc.abs(a) ** 1.5 + b,
}


class _Graph:
    """One random graph: its placeholders, outputs (the value and the gradients) and feeds."""

    def __init__(self, data, dtype):
        draw = data.draw
        self.dtype = dtype
        rank = draw(st.integers(1, 3), label="rank")
        base, sizes = [], {}
        for q in range(rank):
            sym = draw(st.sampled_from(["a", "b", 2, 3, 4]), label=f"dim{q}")
            if isinstance(sym, str) and sym not in [b for b in base if isinstance(b, str)]:
                sizes[sym] = draw(st.sampled_from(RUN_TIME_SIZES[sym]), label=f"size_{sym}")
                base.append(sym)
            else:
                base.append(sym if isinstance(sym, int) else 3)
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 16), label="seed"))
        self.rng = rng
        self.inputs, self.feeds = [], []
        for k in range(draw(st.integers(1, 3), label="inputs")):
            drop = draw(st.integers(0, rank - 1), label=f"drop{k}")  # fewer leading dims: broadcasts
            dims = base[drop:]
            ones = [draw(st.booleans(), label=f"one{k}_{q}") and isinstance(d, int) for q, d in enumerate(dims)]
            static = tuple(1 if o else (None if isinstance(d, str) else d) for d, o in zip(dims, ones))
            fed = tuple(1 if o else (sizes[d] if isinstance(d, str) else d) for d, o in zip(dims, ones))
            self.inputs.append(gc.placeholder(static, dtype, name=f"x{k}"))
            self.feeds.append(rng.uniform(-2, 2, fed).astype(dtype))
        pool = list(self.inputs)
        self.ops = []
        for step in range(draw(st.integers(2, 6), label="ops")):
            kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "softmax", "transpose",
                                         "reshape", "index", "matmul", "loss"]), label=f"op{step}")
            try:
                node = self._apply(kind, draw, pool)
            except gc.GraphError:  # a combination graphc refuses when it is built: draw another
                continue
            if node is not None:
                pool.append(node)
                self.ops.append(kind)
        out = pool[-1]
        weights = gc.tanh(out) * 1.5
        self.loss = gc.sum(weights * weights)
        self.outputs = [out, self.loss] + gc.grad(self.loss, self.inputs)

    def _pick(self, draw, pool, label):
        return pool[draw(st.integers(0, len(pool) - 1), label=label)]

    def _axis(self, draw, x, label):
        return draw(st.integers(-x.ndim, x.ndim - 1), label=label) if x.ndim else None

    def _apply(self, kind, draw, pool):
        x = self._pick(draw, pool, "operand")
        if kind == "unary":
            return UNARY[draw(st.sampled_from(sorted(UNARY)), label="unary")](x)
        if kind == "binary":
            y = self._pick(draw, pool, "second")
            return BINARY[draw(st.sampled_from(sorted(BINARY)), label="binary")](x, y)
        if x.ndim == 0:
            return None
        axis = self._axis(draw, x, "axis")
        if kind == "reduce":
            fn = draw(st.sampled_from([gc.sum, gc.mean, gc.max, gc.logsumexp]), label="reduction")
            return fn(x, axis, keepdims=draw(st.booleans(), label="keepdims"))
        if kind == "softmax":
            return draw(st.sampled_from([gc.softmax, gc.log_softmax]), label="softmax")(x, axis)
        if kind == "transpose":
            perm = draw(st.permutations(range(x.ndim)), label="perm")
            return gc.transpose(x, perm)
        if kind == "reshape":
            return gc.flatten(x) if draw(st.booleans(), label="flatten") else gc.expand_dims(x, 0)
        if kind == "index":
            q = axis % x.ndim
            d = x.shape[q]
            how = draw(st.sampled_from(["reverse", "tail", "take", "pair"]), label="index")
            key = [slice(None)] * x.ndim
            if how == "reverse":
                key[q] = slice(None, None, -1)
            elif how == "tail":
                key[q] = slice(1, None)
            elif how == "take" and d is not None:
                return gc.take(x, [0, d - 1, -1], q)
            elif how == "pair" and x.ndim >= 2 and d is not None and x.shape[(q + 1) % x.ndim] is not None:
                r = (q + 1) % x.ndim
                key[q] = np.array([0, d - 1, -d])
                key[r] = np.array([-1, 0, x.shape[r] - 1])
            else:
                return None
            return x[tuple(key)]
        if kind == "matmul":
            k = x.shape[-1]
            if k is None:
                return None
            w = gc.constant(self.rng.uniform(-1, 1, (k, 3)).astype(self.dtype))
            return x @ w
        if kind == "loss" and x.ndim >= 1 and x.shape[-1] is not None:
            target = gc.softmax(self._pick(draw, pool, "target"), -1)
            return gc.cross_entropy(x, gc.broadcast_to(target, x.shape, like=x) if target.shape != x.shape
                                    else target)
        return None

    def run(self, backend, optimize):
        """Each output's array, or the GraphError class the call raised."""
        try:
            f = gc.compile(self.inputs, self.outputs, backend=backend, optimize=optimize)
            return f(*self.feeds)
        except gc.GraphError as e:
            return type(e)


def _same(got, want, dtype, what):
    if isinstance(want, type) or isinstance(got, type):
        assert got is want, f"{what}: {got} where the reference gives {want}"
        return
    rtol, atol = (2e-3, 2e-4) if dtype == "float32" else (1e-7, 1e-9)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, \
            f"{what}: output {k} {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
        finite = np.abs(w[np.isfinite(w)])
        scale = max(1.0, float(finite.max(initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, equal_nan=True, err_msg=f"{what}: output {k}")


_counter = {"n": 0, "cuda": 0}
_seen: list = []  # (ops, reference result or error class) per graph, for GRAPHC_FUZZ_REPORT=1


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if os.environ.get("GRAPHC_FUZZ_REPORT") == "1" and _seen:
        from collections import Counter
        ops = Counter(op for o, _ in _seen for op in o)
        errors = Counter(w.__name__ for _, w in _seen if isinstance(w, type))
        print(f"\nfuzz: {len(_seen)} graphs, {sum(len(o) for o, _ in _seen)} ops {dict(ops)}; "
              f"refused at run time by every backend alike: {dict(errors)}; on cuda: {_counter['cuda']}")


# no shrinking: every step compiles graphs, and the failure message already describes the graph
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), dtype=st.sampled_from(["float64", "float32"]))
def test_random_graphs_agree_across_backends(data, dtype):
    g = _Graph(data, dtype)
    what = f"ops {g.ops}, inputs {[p.shape for p in g.inputs]} fed {[f.shape for f in g.feeds]}, {dtype}"
    want = g.run("numpy", optimize=False)
    _same(g.run("numpy", optimize=True), want, dtype, "numpy optimized: " + what)
    _same(g.run("numba", optimize=True), want, dtype, "numba: " + what)
    _same(g.run("numba", optimize=False), want, dtype, "numba unoptimized: " + what)
    _counter["n"] += 1
    if _counter["n"] % CUDA_EVERY == 0:
        _same(g.run("cuda", optimize=True), want, dtype, "cuda: " + what)
        _counter["cuda"] += 1
    _seen.append((g.ops, want))


@pytest.mark.parametrize("feed", [0, 1, 5])
def test_run_time_dims_fed_zero_one_and_n_agree(backend, feed):
    """The run-time dims the fuzzer draws, on one fixed graph with every kind of op."""
    x = gc.placeholder((None, 3), "float64", name="x")
    b = gc.placeholder((1, 3), "float64", name="b")
    h = gc.tanh(x * b + 0.5) @ gc.constant(np.linspace(-1, 1, 12).reshape(3, 4))
    out = gc.log_softmax(h, -1) + gc.sum(h, 0, keepdims=True) + gc.transpose(h)[::-1].T
    loss = gc.sum(out * out)
    outs = [out, loss] + gc.grad(loss, [x, b])
    feeds = [np.linspace(-1, 1, 3 * feed).reshape(feed, 3), np.array([[0.5, -1.0, 2.0]])]
    want = gc.compile([x, b], outs, backend="numpy", optimize=False)(*feeds)
    _same(gc.compile([x, b], outs, backend=backend)(*feeds), want, "float64", f"{backend} fed {feed}")

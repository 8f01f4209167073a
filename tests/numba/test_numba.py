"""The Numba backend: generated source, the disk cache, run-time errors, profiles, random graphs."""
from __future__ import annotations

import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.frontend.nn import attention_weights

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"


def _chain():
    x = gc.placeholder((None, 4), name="x")
    y = gc.placeholder((None, 4), name="y")
    return [x, y], gc.tanh(x * 1.5 + y) * gc.sigmoid(x) + gc.relu(y - 0.5) * gc.exp(-x * x)


def _softmax_rows():
    z = gc.placeholder((None, 10), name="z")
    return [z], [gc.softmax(z), gc.sum(z, 0)]


@pytest.mark.parametrize("name,build", [("fused_chain", _chain), ("softmax_rows", _softmax_rows)])
def test_generated_source_matches_golden_file(name, build, monkeypatch):
    # exp_f32 is the host's variant (AVX-512 or not): the golden files hold the AVX-512 one
    from graphc.backends.numba import vmath
    monkeypatch.setattr(vmath, "exp_f32", vmath.exp_f32_scalef)
    ins, outs = build()
    src = gc.compile(ins, outs, backend="numba").source()
    path = GOLDEN / f"{name}.py"
    if os.environ.get("GRAPHC_UPDATE_GOLDEN") == "1":
        path.write_text(src)
    assert src == path.read_text(), "generated source changed; if intended, rerun with GRAPHC_UPDATE_GOLDEN=1"


def test_float32_stays_float32_in_generated_code():
    ins, out = _chain()
    src = gc.compile(ins, out, backend="numba").source()
    assert "float64" not in src and "np.float32(1.5)" in src


SCRIPT = textwrap.dedent("""
    import json, numpy as np, graphc as gc
    x = gc.placeholder((None, 3), name="x")
    f = gc.compile([x], gc.sum(gc.exp(x) * 2.0 + 1.0, 1), backend="numba")
    assert np.allclose(f(np.zeros((2, 3), np.float32)), 9.0)
    print(json.dumps(f.cache_info()))
""")


def test_second_process_hits_the_cache(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "graphc"), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    first, second = runs
    assert first["reused"] is False and first["numba_cache_misses"] > 0 and first["numba_cache_hits"] == 0
    assert second["reused"] is True and second["numba_cache_hits"] > 0 and second["numba_cache_misses"] == 0
    assert first["module"] == second["module"]


def _helped_step(backend, scale):
    # an MLP step with Adam: more kernel functions than cache.PARALLEL_MIN; `scale` makes its source
    # (so its module) new to this process
    rng = np.random.default_rng(3)
    x = gc.placeholder((None, 12), name="x")
    ps = [gc.parameter(rng.normal(size=s).astype(np.float32) * 0.3, name=f"p{i}")
          for i, s in enumerate([(12, 20), (20,), (20, 3), (3,)])]
    h = gc.tanh(x @ ps[0] + ps[1])
    loss = gc.mean(gc.logsumexp(h @ ps[2] + ps[3], axis=1) * scale)
    return gc.compile([x], loss, updates=gc.optim.Adam(1e-2).updates(loss, ps), backend=backend), ps


@pytest.fixture
def fresh_caches(tmp_path, monkeypatch):
    """Empty graphc and numba caches for modules made from here on in this process."""
    import numba
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "graphc"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    return tmp_path


def test_compile_jobs_comes_from_the_environment(monkeypatch):
    from graphc.backends.numba.cache import compile_jobs
    monkeypatch.setenv("GRAPHC_COMPILE_JOBS", "3")
    assert compile_jobs() == 3
    monkeypatch.delenv("GRAPHC_COMPILE_JOBS")
    assert 1 <= compile_jobs() <= 4
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("GRAPHC_COMPILE_JOBS", bad)
        with pytest.raises(ValueError, match="GRAPHC_COMPILE_JOBS"):
            compile_jobs()


@pytest.mark.parametrize("dies", [False, True])
def test_a_new_module_compiles_in_helper_processes(fresh_caches, monkeypatch, dies):
    # a cold compile is shared with a forked helper that writes numba's cache; this process loads
    # what it compiled. A helper that dies after one kernel costs only time: the rest is compiled here
    from graphc.backends.numba import cache
    monkeypatch.setenv("GRAPHC_COMPILE_JOBS", "2")
    if dies:
        parent, compile_one = os.getpid(), cache._compile

        def compile_then_die(disp):
            compile_one(disp)
            if os.getpid() != parent:  # in the helper (forked: it runs this too)
                os._exit(3)
        monkeypatch.setattr(cache, "_compile", compile_then_die)
    f, ps = _helped_step("numba", 1.25 if dies else 1.0)
    info = f.cache_info()
    functions = len(re.findall(r"^def (k\d+\w*)\(", f.source(), re.M)) + 1  # the kernels' and the driver
    assert info["reused"] is False and info["numba_cache_hits"] == 0 and info["numba_cache_misses"] == functions
    assert (info["compiled_by_helpers"] == 1) if dies else (1 <= info["compiled_by_helpers"] < functions)
    ref, ref_ps = _helped_step("numpy", 1.0 + 0.25 * dies)
    rng = np.random.default_rng(4)
    for _ in range(3):
        a = rng.normal(size=(6, 12)).astype(np.float32)
        np.testing.assert_allclose(float(f(a)), float(ref(a)), rtol=1e-5)
    for p, q in zip(ps, ref_ps):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-5, atol=1e-6)


def test_index_error_names_kernel_fused_ops_and_line():
    x = gc.placeholder((None, 3), name="x")
    y = gc.placeholder((None,), "int64", name="y")
    line = inspect.currentframe().f_lineno + 1
    loss = gc.cross_entropy(x * 2.0, y)
    f = gc.compile([x, y], loss, backend="numba")
    with pytest.raises(gc.GraphIndexError) as e:
        f(np.zeros((2, 3), np.float32), np.array([0, 5]))
    msg = str(e.value)
    assert "check_index" in msg and "in kernel k" in msg and f"{__file__}:{line}" in msg


def test_take_out_of_range_at_run_time():
    x = gc.placeholder((4,), name="x")
    i = gc.placeholder((2,), "int64", name="i")
    f = gc.compile([x, i], gc.take(x, i) * 2.0, backend="numba")
    np.testing.assert_array_equal(f(np.arange(4, dtype=np.float32), np.array([3, -4])), [6.0, 0.0])
    with pytest.raises(gc.GraphIndexError, match="take .* in kernel"):
        f(np.arange(4, dtype=np.float32), np.array([0, 4]))


def test_check_numerics_names_the_first_bad_kernel():
    x = gc.placeholder((3,), name="x")
    line = inspect.currentframe().f_lineno + 1
    y = gc.log(x) * 2.0
    f = gc.compile([x], gc.exp(y), backend="numba", check_numerics=True)
    np.testing.assert_allclose(f(np.ones(3, np.float32)), 1.0)
    with pytest.raises(gc.GraphRuntimeError, match="check_numerics") as e:
        f(np.array([1.0, -1.0, 2.0], np.float32))
    assert f"{__file__}:{line}" in str(e.value)
    plain = gc.compile([x], gc.exp(y), backend="numba")
    assert np.isnan(plain(np.array([1.0, -1.0, 2.0], np.float32))[1])


def test_debug_prints_kernels_as_they_compile(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_DEBUG", "1")
    ins, out = _chain()
    gc.compile(ins, out * 3.0, backend="numba")
    text = capsys.readouterr().out
    assert "graphc: compiling <Kernel k0_" in text and "ready in" in text


def test_kernels_and_profile():
    x = gc.placeholder((None, 64), name="x")
    w = gc.parameter(np.ones((64, 32), np.float32), name="w")
    f = gc.compile([x], gc.sum(gc.relu(x @ w + 1.0), 1), updates=[(w, w * 0.5)], backend="numba")
    names = [k.name for k in f.kernels]
    assert [k.ops for k in f.kernels] == [["matmul"], ["add", "relu", "sum"], ["mul"]]
    # the schedule is a stage of compile(): the backend built the kernels the program carries
    assert all(a is b for a, b in zip(f.kernels, f.program.kernels)) and len(f.program.kernels) == 3
    assert names[0].startswith("k0_matmul")
    assert f.kernels[0].inputs[1] is w and f.kernels[1].outputs[0].shape == (None,)
    prof = f.profile(np.ones((8, 64), np.float32), repeat=3)
    assert [p.name for p in prof] == names
    assert prof[0].flops == 2 * 8 * 64 * 32 and prof[0].bytes == (8 * 64 + 64 * 32 + 8 * 32) * 4
    assert all(p.seconds > 0 for p in prof) and "GFLOP/s" in str(prof)
    np.testing.assert_array_equal(w.value, 1.0)  # profiling applies no update
    np.testing.assert_allclose(f(np.ones((2, 64), np.float32)), 32 * 65.0)
    np.testing.assert_array_equal(w.value, 0.5)


def test_workspaces_are_reused_and_steady_state_allocates_only_outputs():
    import tracemalloc
    x = gc.placeholder((None, 256), name="x")
    h = x
    for _ in range(6):
        h = gc.tanh(h @ gc.constant(np.eye(256, dtype=np.float32)) + 1.0)
    f = gc.compile([x], gc.sum(h), backend="numba")
    data = np.ones((64, 256), np.float32)
    exe = f._exe
    plan = exe.plan([data.shape])
    act = 64 * 256 * 4
    views = [v for v in plan.work.values() if v.shape == (64, 256)]
    assert len(views) == 11  # six matmul and five add/tanh outputs (the last is summed in its kernel)
    assert len({v.ctypes.data for v in views}) == 2  # liveness: two activations are ever alive at once
    (arena,) = [a for a in plan.arrays if a is not None and a.ndim == 1]
    assert 2 * act <= arena.nbytes < 3 * act
    assert all(v.ctypes.data % 64 == 0 and np.shares_memory(v, arena) for v in views)
    f(data)
    tracemalloc.start()
    for _ in range(5):
        f(data)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 256 * 4  # far less than one activation: nothing big is allocated per call


def test_xor_example_trains_the_same_on_numba():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples"))
    import runpy
    mod = runpy.run_path(str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "xor.py"))
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    T = np.array([[0], [1], [1], [0]], np.float32)
    losses = {}
    for backend in ("numpy", "numba"):
        step, _ = mod["build"](backend=backend)
        losses[backend] = [float(step(X, T)) for _ in range(300)]
    np.testing.assert_allclose(losses["numba"], losses["numpy"], rtol=2e-4, atol=1e-6)
    assert losses["numba"][-1] < 0.05 * losses["numba"][0]


# ---------------------------------------------------------------- random graphs: numba vs numpy
UNARY = [gc.exp, gc.tanh, gc.sigmoid, gc.softplus, gc.relu, gc.abs, gc.neg, gc.sin,
         lambda v: gc.log(gc.abs(v) + 1.0), lambda v: gc.sqrt(gc.abs(v))]
BINARY = [gc.add, gc.sub, gc.mul, gc.maximum, gc.minimum, lambda a, b: a / (gc.abs(b) + 0.5),
          lambda a, b: gc.where(a > b, a, b * 2.0)]


@st.composite
def random_graph(draw):
    base = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    def shape():
        # a broadcastable variant of base: some dims 1, maybe fewer leading dims
        s = [d if draw(st.booleans()) else 1 for d in base]
        return tuple(s[draw(st.integers(0, len(s))):])
    n_in = draw(st.integers(1, 3))
    shapes = [shape() for _ in range(n_in)] + [tuple(base)]
    ops = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 20), st.integers(0, 20), st.integers(0, 9)),
                        min_size=1, max_size=8))
    reduce_axis = draw(st.one_of(st.none(), st.integers(0, len(base) - 1)))
    seed = draw(st.integers(0, 2**31))
    return shapes, ops, reduce_axis, seed


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_graph())
def test_random_graphs_agree_with_numpy(spec):
    shapes, ops, reduce_axis, seed = spec
    phs = [gc.placeholder(s, "float32") for s in shapes]
    vals = list(phs)
    for kind, i, j, f in ops:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        vals.append(UNARY[f % len(UNARY)](a) if kind == 0 or (kind == 2 and a.ndim == 0)
                    else BINARY[f % len(BINARY)](a, b) if kind == 1
                    else gc.sum(a, axis=-1, keepdims=True) * 0.5 + b)
    out = vals[-1] + vals[len(shapes) - 1]
    outs = [out, gc.sum(out, reduce_axis), gc.max(out, reduce_axis, keepdims=True)]
    rng = np.random.default_rng(seed)
    feeds = [rng.normal(size=s).astype(np.float32) for s in shapes]
    want = gc.compile(phs, outs, backend="numpy", optimize=False)(*feeds)
    got = gc.compile(phs, outs, backend="numba")(*feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-5)


def test_large_outputs_are_recycled_only_once_released():
    x = gc.placeholder((None,), name="x")
    f = gc.compile([x], gc.exp(x) + 1.0, backend="numba")
    a = np.zeros(1 << 19, np.float32)  # 2 MiB outputs: new pages would cost page faults every call
    r = f(a)
    p = r.ctypes.data
    del r
    r = f(a)
    assert r.ctypes.data == p  # the caller let go: the same memory again
    held = f(a)
    assert held.ctypes.data != r.ctypes.data  # r is still held: a new array
    view = held[10:]
    del held
    again = f(a)
    assert again.ctypes.data != view.base.ctypes.data  # a view keeps its base from being reused
    np.testing.assert_array_equal(view, np.full(len(a) - 10, 2, np.float32))
    np.testing.assert_array_equal(again, np.full(len(a), 2, np.float32))
    small = gc.compile([x], x * 2.0, backend="numba")
    s1 = small(np.ones(4, np.float32))
    s1_id = s1.ctypes.data
    s2 = small(np.ones(4, np.float32))
    assert s1.ctypes.data == s1_id and s2 is not s1  # small outputs are always fresh


def test_matmuls_read_transposes_as_views_without_copying():
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 5), name="x")
    W = gc.parameter(rng.normal(size=(5, 4)).astype(np.float32), name="W")
    V = gc.parameter(rng.normal(size=(4, 3)).astype(np.float32), name="V")
    loss = gc.sum(gc.tanh(x @ W) @ V)
    gW, gV = gc.grad(loss, [W, V])  # x.T @ ..., ... @ V.T, h.T @ ...: transposes only matmuls read
    xt = gc.transpose(x)  # a transpose that is also an output keeps its own kernel
    f = gc.compile([x], [gW, gV, xt], backend="numba")
    kinds = [k.kind for k in f.kernels]
    assert kinds.count("transpose") == 1 and "view" in kinds
    assert "transposed(" in f.source()
    ref = gc.compile([x], [gW, gV, xt], backend="numpy")
    a = rng.normal(size=(7, 5)).astype(np.float32)
    for got, want in zip(f(a), ref(a)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_attention_head_transposes_are_views_the_batched_products_read():
    # (B, T, H, D) -> (B, H, T, D) and -> (B, H, D, T): every matrix keeps the input's last axis, so
    # the products read strided views (permuted) and no kernel copies them, forward and backward;
    # a transpose moving the last axis out of the matrices, or read by a product of more dims (a
    # broadcast batch), stays a copy; numpy's values, with a run-time batch of 0, 1 and 3
    rng = np.random.default_rng(6)
    q = gc.placeholder((None, 8, 2, 16), name="q")
    k = gc.placeholder((None, 8, 2, 16), name="k")
    z = gc.placeholder((5, 3, 16, 8), name="z")
    w = gc.placeholder((4, 3, 5, 8, 16), name="w")
    qh, kt = gc.transpose(q, (0, 2, 1, 3)), gc.transpose(k, (0, 2, 3, 1))
    att = qh @ kt
    moved = gc.transpose(z, (0, 3, 1, 2)) @ gc.constant(np.ones((5, 8, 16, 4), np.float32))  # z's last axis: batch
    wide = w @ gc.transpose(z, (1, 0, 2, 3))  # a view of 4 dims read by a product of 5: a copy
    loss = gc.sum(att * att) + gc.sum(moved) + gc.sum(wide)
    outs = [att, moved, wide] + gc.grad(loss, [q, k, z])
    f = gc.compile([q, k, z, w], outs, backend="numba")
    ref = gc.compile([q, k, z, w], outs, backend="numpy")
    copies = [x for x in f.kernels if x.kind == "transpose"]
    assert f.source().count("permuted(") >= 4
    # copied: the two above, and q's and k's gradients (outputs: transposes of products, in (B, T, H, D))
    assert sorted((tuple(x.nodes[0].attrs["perm"]), any(x.nodes[0] is o for o in f.outputs)) for x in copies) == \
        [((0, 2, 1, 3), True), ((0, 3, 1, 2), False), ((0, 3, 1, 2), True), ((1, 0, 2, 3), False)]
    zv, wv = rng.normal(size=(5, 3, 16, 8)).astype(np.float32), rng.normal(size=(4, 3, 5, 8, 16)).astype(np.float32)
    for n in (0, 1, 3):
        a, b = (rng.normal(size=(n, 8, 2, 16)).astype(np.float32) for _ in range(2))
        for got, want in zip(f(a, b, zv, wv), ref(a, b, zv, wv)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    prof = f.profile(a, b, zv, wv, repeat=1)  # profile makes the same views
    assert [p.name for p in prof] == [x.name for x in f.kernels if x.kind != "view"]


def test_a_batch_of_products_blas_runs_on_one_thread_is_cut_among_the_threads():
    # attention's per-head products: each (64, 32) @ (32, 64) is one OpenBLAS call it runs on the
    # calling thread, so the batch's outer axis is split among the threads (pcall); the batch
    # known or not, of 0, 1 and more, broadcast over a batch of 1, transposed operands; numpy's values
    rng = np.random.default_rng(5)
    q = gc.placeholder((None, 4, 64, 32), name="q")
    k = gc.placeholder((None, 4, 64, 32), name="k")
    s = gc.placeholder((3, 4, 64, 32), name="s")
    w = gc.placeholder((1, 4, 32, 64), name="w")
    kt = gc.transpose(k, (0, 1, 3, 2))
    outs = [q @ kt, gc.transpose(q, (0, 1, 3, 2)) @ k, s @ w, gc.transpose(s, (0, 1, 3, 2)) @ s]
    f = gc.compile([q, k, s, w], outs, backend="numba")
    ref = gc.compile([q, k, s, w], outs, backend="numpy")
    mm = [x for x in f.kernels if x.kind == "matmul"]
    calls = re.findall(r"\b([pk])call\(k\d+_matmul\b", f.source())
    assert len(mm) == 4 and calls == ["p"] * 4
    sv, wv = rng.normal(size=(3, 4, 64, 32)).astype(np.float32), rng.normal(size=(1, 4, 32, 64)).astype(np.float32)
    for n in (0, 1, 5):
        a, b = (rng.normal(size=(n, 4, 64, 32)).astype(np.float32) for _ in range(2))
        for got, want in zip(f(a, b, sv, wv), ref(a, b, sv, wv)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batched_matmuls_read_transposes_of_their_matrices_as_views(dtype):
    # x (N, K, L) swapped to (N, L, K) is a strided view each of whose matrices BLAS reads
    # transposed: products per batch, broadcast over a batch of 1, with a 2-D weight, sizes of 1
    # (leading dimensions BLAS must accept), and by loops when small; numpy's values
    rng = np.random.default_rng(1)
    x = gc.placeholder((None, 40, 30), dtype, name="x")
    y = gc.placeholder((None, 40, 30), dtype, name="y")
    c = gc.placeholder((None, 1, 30), dtype, name="c")
    one = gc.placeholder((1, 40, 30), dtype, name="one")
    W = rng.normal(size=(40, 20)).astype(dtype)
    xt, yt = gc.transpose(x, (0, 2, 1)), gc.transpose(y, (0, 2, 1))
    outs = [xt @ y, x @ yt, xt @ W, gc.transpose(c, (0, 2, 1)) @ c, gc.transpose(one, (0, 2, 1)) @ y,
            gc.transpose(x[:, :3, :2], (0, 2, 1)) @ y[:, :3, :4]]
    f = gc.compile([x, y, c, one], outs, backend="numba")
    ref = gc.compile([x, y, c, one], outs, backend="numpy")
    assert not [k for k in f.kernels if k.kind == "transpose"] and "transposed(" in f.source()
    for n in (3, 1):
        a, b = (rng.normal(size=(n, 40, 30)).astype(dtype) for _ in range(2))
        cc, o = rng.normal(size=(n, 1, 30)).astype(dtype), rng.normal(size=(1, 40, 30)).astype(dtype)
        for got, want in zip(f(a, b, cc, o), ref(a, b, cc, o)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    prof = f.profile(a, b, cc, o, repeat=1)  # profile makes the same views
    assert [k.name for k in prof] == [k.name for k in f.kernels if k.kind != "view"]


def _row_graphs(dtype):
    x = gc.placeholder((None, 5), dtype, name="x")
    y = gc.placeholder((None, 5), dtype, name="y")
    return {  # softmax alone (the store-and-scale row kernel), with its logsumexp fetched too, and
        "softmax": ([x], [gc.softmax(x, axis=1)]),  # epilogues of other forms (generic row kernels)
        "lse_softmax": ([x], [gc.logsumexp(x, axis=1), gc.softmax(x, axis=1), gc.logsumexp(x, axis=0)]),
        # log_softmax with an epilogue (a row kernel), and over axis 0 (its own kernel)
        "log_softmax": ([x], [gc.log_softmax(x, axis=1) * 2.0, gc.log_softmax(x, axis=0)]),
        "weighted": ([x, y], [y * gc.softmax(x, axis=1) + gc.maximum(y, 0.5)]),
    }


SPECIAL_ROWS = [[1, 2, 3, 4, 5], [-np.inf] * 5, [1, np.inf, 2, 3, 4], [1, np.nan, np.inf, 2, 3],
                [-np.inf, 0, -np.inf, 1, 2], [80, 85, 88, 30, -20], [-100, -101, -102, -103, -104],
                [np.nan, -np.inf, -np.inf, -np.inf, -np.inf], [np.nan] * 5, [np.inf, np.inf, 1, 2, 3],
                [-np.inf, np.nan, 1, 2, 3], [-np.inf, -np.inf, np.inf, np.nan, 0], [3, 3, 3, 3, 3]]


@pytest.mark.parametrize("graph", ["softmax", "lse_softmax", "log_softmax", "weighted"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_kernels_special_rows_match_numpy(dtype, graph):
    ins, nodes = _row_graphs(dtype)[graph]
    f = gc.compile(ins, nodes, backend="numba")
    assert "rows" in [k.kind for k in f.kernels]
    ins64, nodes64 = _row_graphs("float64")[graph]  # the oracle: NumPy in float64 on the same values
    ref = gc.compile(ins64, nodes64, backend="numpy")
    rng = np.random.default_rng(0)
    a = np.array(SPECIAL_ROWS, dtype)
    big = rng.normal(size=(64, 5)).astype(dtype) * 30
    for feed in (a, big):
        feeds = [feed] + [rng.normal(size=feed.shape).astype(dtype) for _ in ins[1:]]
        # float32 exp(x - logsumexp) is off by up to |x| * eps relatively (logsumexp's rounding), and
        # x - logsumexp by |x| * eps absolutely; y * softmax summed: |y| (< 4 here) times that
        top = np.max(np.abs(feed[np.isfinite(feed)]))
        tol = 2 * np.finfo(np.float32).eps * max(1.0, top)
        for got, want in zip(f(*feeds), ref(*[v.astype(np.float64) for v in feeds])):
            assert got.dtype == np.dtype(dtype)
            if dtype == "float32":
                np.testing.assert_allclose(got, want, rtol=tol, atol=4 * tol)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_softmax_is_one_row_kernel_and_log_softmax_too():
    x = gc.placeholder((None, 7), name="x")
    for node in (gc.softmax(x, axis=1), gc.log_softmax(x, axis=1) * 2.0):
        f = gc.compile([x], node, backend="numba")
        assert [k.kind for k in f.kernels] == ["rows"], f.kernels
    # log_softmax alone is its own kernel (per row: max, sum, then each element)
    f = gc.compile([x], gc.log_softmax(x, axis=1), backend="numba")
    assert [k.kind for k in f.kernels] == ["log_softmax"], f.kernels
    # the row reduction over a leading axis is not a row kernel: log_softmax, then the elementwise loop
    f = gc.compile([x], gc.softmax(x, axis=0), backend="numba")
    assert [k.kind for k in f.kernels] == ["log_softmax", "loop"], f.kernels


def test_small_matmuls_are_loops_large_ones_blas_both_match_numpy():
    rng = np.random.default_rng(3)
    x = gc.placeholder((None, 24), name="x")
    w = gc.parameter(rng.normal(size=(24, 40)).astype(np.float32), name="w")
    v = gc.parameter(rng.normal(size=(3, 5)).astype(np.float32), name="v")
    small = gc.placeholder((4, 3), name="s")
    outs = [x @ w, small @ v, gc.transpose(x) @ (x @ w)]
    f, ref = gc.compile([x, small], outs, backend="numba"), gc.compile([x, small], outs, backend="numpy")
    src = f.source()
    # decided per call: the batch is known at run time
    assert "gemm(" in src and "np.dot" not in src and "if rows * inner * cols <= 4096:" in src
    s = rng.normal(size=(4, 3)).astype(np.float32)
    for batch in (2, 300):  # 2*24*40 multiply-adds: the loop nest; 300*24*40: BLAS
        a = rng.normal(size=(batch, 24)).astype(np.float32)
        for got, want in zip(f(a, s), ref(a, s)):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-4)


def test_wide_products_over_a_long_inner_axis_are_computed_transposed_and_match_numpy():
    # (rows < cols) over an inner axis 8 times cols or more: BLAS computes the transposed product
    # into a scratch; a weight gradient's x.T @ g over a run-time batch (decided per call: the
    # loops, plain BLAS, transposed) and one known when built; operands that are views
    rng = np.random.default_rng(5)
    x = gc.placeholder((None, 9), name="x")
    g = gc.placeholder((None, 40), name="g")
    a = gc.placeholder((9, 500), name="a")
    b = gc.placeholder((40, 500), name="b")
    outs = [gc.transpose(x) @ g, a @ gc.transpose(b)]
    f, ref = gc.compile([x, g, a, b], outs, backend="numba"), gc.compile([x, g, a, b], outs, backend="numpy")
    assert f.source().count("gemm(a1.T, a0.T, t)") == 2 and "if inner >= 320:" in f.source()
    A, B = rng.normal(size=(9, 500)).astype(np.float32), rng.normal(size=(40, 500)).astype(np.float32)
    for n in (5, 100, 400, 0):
        X, G = rng.normal(size=(n, 9)).astype(np.float32), rng.normal(size=(n, 40)).astype(np.float32)
        for got, want in zip(f(X, G, A, B), ref(X, G, A, B)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_products_over_a_very_long_inner_axis_are_dot_products_on_every_thread(dtype):
    # a convolution's weight gradient G (O, N*L) @ cols.T (N*L, C*k*k): at most DOT_OUT outputs
    # over DOT_K or more inner entries are chunked dot products (odd row and column counts, a
    # last partial chunk); shorter inner axes (0 included) take BLAS, as before
    from graphc.backends.numba.codegen import DOT_K
    rng = np.random.default_rng(6)
    a = gc.placeholder((7, None), dtype, name="a")
    b = gc.placeholder((5, None), dtype, name="b")
    c = gc.placeholder((16, 5000), dtype, name="c")
    d = gc.placeholder((25, 5000), dtype, name="d")
    outs = [a @ gc.transpose(b), c @ gc.transpose(d)]
    f = gc.compile([a, b, c, d], outs, backend="numba")
    assert f.source().count("nb.prange(nc)") == 2 and f"if inner >= {DOT_K}:" in f.source()
    C, D = rng.normal(size=(16, 5000)).astype(dtype), rng.normal(size=(25, 5000)).astype(dtype)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for n in (0, 3, DOT_K - 1, DOT_K, 2 * DOT_K + 77):
        A, B = rng.normal(size=(7, n)).astype(dtype), rng.normal(size=(5, n)).astype(dtype)
        got = f(A, B, C, D)
        for g, (x, y) in zip(got, [(A, B), (C, D)]):
            want = x.astype(np.float64) @ y.T.astype(np.float64)
            np.testing.assert_allclose(g, want, rtol=tol, atol=tol * np.sqrt(x.shape[1] + 1))
    # not for a transposed left operand (the rows would be strided): BLAS, transposed, as before
    x = gc.placeholder((None, 9), dtype)
    assert "nb.prange(nc)" not in gc.compile([x], [gc.transpose(x) @ x], backend="numba").source()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blas_products_in_every_order_and_empty_sizes_match_numpy(dtype):
    # gemm (intrinsics/blas.py) calls ?gemm itself: row- and column-major operands (transposed views),
    # batched and broadcast products, vectors, and sizes of 0 (k = 0 is a product of zeros)
    rng = np.random.default_rng(5)
    a = gc.placeholder((None, 70), dtype, name="a")
    b = gc.placeholder((70, None), dtype, name="b")
    c = gc.placeholder((3, None, 70), dtype, name="c")
    v = gc.placeholder((70,), dtype, name="v")
    outs = [a @ b, gc.transpose(b) @ gc.transpose(a), gc.transpose(b) @ b, a @ gc.transpose(a),
            c @ b, a @ v, v @ b]
    f, ref = gc.compile([a, b, c, v], outs, backend="numba"), gc.compile([a, b, c, v], outs, backend="numpy")
    assert "gemm(" in f.source() and "np.dot" not in f.source()
    tol = 2e-5 if dtype == "float32" else 1e-12
    for n, m in ((90, 80), (0, 80), (90, 0), (1, 100)):
        feeds = [rng.normal(size=s).astype(dtype) for s in ((n, 70), (70, m), (3, n, 70), (70,))]
        got, want = f(*feeds), ref(*feeds)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol * 70)
    k0 = gc.placeholder((None, 0), dtype, name="k0")
    g = gc.compile([k0], k0 @ gc.transpose(k0), backend="numba")
    out = g(np.ones((100, 0), dtype))
    assert out.shape == (100, 100) and not out.any()


def test_kernels_alike_but_for_their_sizes_share_one_function():
    # sizes from STATIC_MAX on are arguments: two layers' bias-add-relu and the Adam update of two
    # weight matrices are one function each, called with each kernel's sizes; results as NumPy's
    from graphc.backends.numba.codegen import STATIC_MAX

    def step(backend):  # its own parameters and Adam state each time, from the same seed
        rng = np.random.default_rng(7)
        x = gc.placeholder((None, 24), name="x")
        ps = [gc.parameter(rng.normal(size=s).astype(np.float32) * 0.3, name=f"p{i}")
              for i, s in enumerate([(24, 40), (40,), (40, 32), (32,)])]
        h = gc.relu(x @ ps[0] + ps[1])
        loss = gc.mean(gc.relu(h @ ps[2] + ps[3]))
        return gc.compile([x], loss, updates=gc.optim.Adam(1e-2).updates(loss, ps), backend=backend), ps

    f, ps = step("numba")
    src = f.source()
    defs = re.findall(r"^def (k\d+\w*)\(", src, re.M)
    calls = re.findall(r"[kp]call\((\w+), fns", src)
    assert len(calls) == len(f.kernels) - sum(k.kind == "view" for k in f.kernels)
    assert len(defs) < len(calls) and set(calls) == set(defs), (defs, calls)
    adam = [c for c in calls if c.endswith("_sqrt_neg")]
    assert len(adam) == 4 and len(set(adam)) == 2  # one function for the matrices, one for the vectors
    assert STATIC_MAX <= 24 and f"range({STATIC_MAX})" not in src
    rng = np.random.default_rng(8)
    xs = [rng.normal(size=(b, 24)).astype(np.float32) for b in (5, 9, 5)]
    ref, ref_ps = step("numpy")
    np.testing.assert_allclose([float(f(a)) for a in xs], [float(ref(a)) for a in xs], rtol=1e-5)
    for p, q in zip(ps, ref_ps):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-5, atol=1e-6)
    prof = f.profile(xs[0], repeat=1)  # each kernel alone, through its shared function
    assert [k.name for k in prof] == [k.name for k in f.kernels if k.kind != "view"]


def test_pcall_hands_out_chunks_covering_the_range_once():
    # pcall cuts [0, extent) into CHUNKS_PER_THREAD chunks per thread (at most extent), which the
    # threads take from a shared counter: every index is run exactly once, in that many chunks;
    # told not to use the threads, it runs the kernel once over [0, extent)
    import numba as nb
    from numba import types as T

    from graphc.backends.numba import intrinsics as I

    @I.kernel(nb.void(T.Array(T.int64, 1, "C"), T.Array(T.int64, 1, "C"), T.int64, T.int64), nogil=True)
    def mark(hits, starts, lo, hi):
        starts[lo] = hi - lo
        for i in range(lo, hi):
            hits[i] += 1

    @nb.njit(nogil=True)
    def run(hits, starts, address, threads):
        I.pcall(mark, address, hits.shape[0], threads, hits, starts)

    mark.compile(mark.graphc_signature)
    cres = next(iter(mark.overloads.values()))
    address = cres.library.get_pointer_to_function(cres.fndesc.mangled_name)
    threads = nb.get_num_threads()
    try:
        for t in sorted({1, threads}):
            nb.set_num_threads(t)
            for n in (1000, 5, 1, 0):
                for on_threads in (True, False):  # False: the whole range at once, on this thread
                    hits, starts = np.zeros(n, np.int64), np.zeros(n, np.int64)
                    run(hits, starts, address, on_threads)
                    np.testing.assert_array_equal(hits, np.ones(n, np.int64))
                    chunks = starts[starts > 0]
                    assert chunks.sum() == n
                    assert len(chunks) == (min(n, t * I.CHUNKS_PER_THREAD) if on_threads else min(n, 1))
    finally:
        nb.set_num_threads(threads)


def test_parallel_kernels_run_split_over_threads_and_match_numpy():
    # large elementwise, row-reduction and row kernels run their outer loop in pieces [lo, hi) on
    # every thread (intrinsics.pcall), not as parfors; any row count (uneven pieces, fewer rows
    # than threads, none) and any thread count give NumPy's results. Over a run-time dim the driver
    # decides per call (pcall's threads flag): on every thread from PARALLEL_MIN elements on, else
    # the same kernel on one thread over [0, extent) -- a 1-D (None,) loop included, which a fixed
    # guess kept on one thread
    import numba

    from graphc.backends.numba.codegen import PARALLEL_MIN
    x = gc.placeholder((None, 300), name="x")
    y = gc.placeholder((None, 300), name="y")
    z = gc.placeholder((None,), name="z")
    outs = [gc.tanh(x) * y + 1.0, gc.sum(x * y, axis=1), gc.softmax(x), gc.logsumexp(y, axis=1),
            gc.transpose(x), gc.transpose(gc.reshape(y, (-1, 3, 100)), (2, 0, 1)), gc.sigmoid(z) * 2.0]
    f, ref = gc.compile([x, y, z], outs, backend="numba"), gc.compile([x, y, z], outs, backend="numpy")
    src = f.source()
    assert src.count("pcall(") == 7 and "prange" not in src and "range(lo, hi):" in src and "= nonneg(i0_)" in src
    assert src.count(f" >= {PARALLEL_MIN}, ") == 7 and "if " not in src.split("def driver")[1]
    rng = np.random.default_rng(11)
    threads = numba.get_num_threads()
    assert 301 * 300 >= PARALLEL_MIN > 300
    try:
        for t in sorted({1, threads}):
            numba.set_num_threads(t)
            for rows in (301, 1, 0):
                a, b = (rng.normal(size=(rows, 300)).astype(np.float32) for _ in range(2))
                c = rng.normal(size=rows * 300).astype(np.float32)
                for got, want in zip(f(a, b, c), ref(a, b, c)):
                    assert got.shape == want.shape
                    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    finally:
        numba.set_num_threads(threads)
    for rows in (301, 1):  # profile runs each kernel as the driver does, on both sides of the line
        prof = f.profile(np.ones((rows, 300), np.float32), np.ones((rows, 300), np.float32),
                         np.ones(rows * 300, np.float32), repeat=1)
        assert [k.name for k in prof] == [k.name for k in f.kernels if k.kind != "view"]


def test_profile_calls_kernels_reading_transposes_of_column_vectors():
    # (8, 1).T is C- and F-contiguous at once: the profile must call the compiled overload itself
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 2), name="x")
    W1 = gc.parameter(rng.normal(size=(2, 8)).astype(np.float32), name="W1")
    W2 = gc.parameter(rng.normal(size=(8, 1)).astype(np.float32), name="W2")
    loss = gc.mean(gc.tanh(x @ W1) @ W2)
    step = gc.compile([x], loss, updates=gc.optim.SGD(0.1).updates(loss, [W1, W2]), backend="numba")
    before = W2.value.copy()
    prof = step.profile(np.ones((4, 2), np.float32), repeat=2)
    assert [k.name for k in prof] == [k.name for k in step.kernels if k.kind != "view"]
    np.testing.assert_array_equal(W2.value, before)


def test_parameter_updates_are_written_in_place_only_where_nothing_can_tell():
    rng = np.random.default_rng(3)
    x = gc.placeholder((4, 4), name="x")

    def build(backend):
        a = gc.parameter(rng.normal(size=(4, 4)).astype(np.float32), name="a")
        b = gc.parameter(rng.normal(size=(4, 4)).astype(np.float32), name="b")
        c = gc.parameter(rng.normal(size=(4, 4)).astype(np.float32), name="c")
        d = gc.parameter(rng.normal(size=(4,)).astype(np.float32), name="d")
        e = gc.parameter(rng.normal(size=(4, 4)).astype(np.float32), name="e")
        loss = gc.sum((x @ a) * b)
        ga, gb = gc.grad(loss, [a, b])
        updates = [(a, a - 0.1 * ga), (b, b - 0.1 * gb),   # in place
                   (c, c - 0.5 * gc.transpose(c)),          # reads c transposed: not in place
                   (d, d + gc.sum(e, 0)),                   # d in place; e is read by it, then updated
                   (e, e * 0.5 + 1.0)]
        fn = gc.compile([x], [loss, c], updates=updates, backend=backend)  # c fetched: its old value
        return fn, [a, b, c, d, e]

    rng = np.random.default_rng(3)
    fn, params = build("numba")
    rng = np.random.default_rng(3)
    ref, ref_params = build("numpy")
    inplace = {p.name for p in fn._exe.module.inplace.values()}
    assert inplace == {"a", "b", "d", "e"}  # e: its update runs after the sum that reads it
    assert fn.source().count("    copy_into(v") == 1  # only c's update is copied in at the end
    # a kernel writing a parameter in place takes it as one argument, read and written (LLVM does
    # not vectorize a loop over two arguments that are one array), and is passed it once
    mod = fn._exe.module
    for kern, ks in zip(mod.kernels, mod.sources):
        written = [u for u in kern.outputs if u in mod.inplace]
        if ks is None or not written:
            continue
        assert all(not any(n is u for n in ks.arrays) for u in written)
        assert sum(any(n is mod.inplace[u] for n in ks.arrays) for u in written) == len(written)
    X = rng.normal(size=(4, 4)).astype(np.float32)
    before = [p.value.copy() for p in params]
    fn.profile(X, repeat=1)  # runs the in-place kernels on copies
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.value, b, err_msg=p.name)
    for _ in range(3):
        old_c = params[2].value.copy()
        (loss, c_out), (ref_loss, ref_c) = fn(X), ref(X)
        np.testing.assert_array_equal(c_out, old_c)  # the value before this call's update
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        np.testing.assert_allclose(c_out, ref_c, rtol=1e-6)
        for p, q in zip(params, ref_params):
            np.testing.assert_allclose(p.value, q.value, rtol=1e-5, atol=1e-6, err_msg=p.name)


def test_check_numerics_keeps_updates_out_of_place():
    w = gc.parameter(np.ones(3, np.float32), name="w")
    x = gc.placeholder((3,), name="x")
    fn = gc.compile([x], gc.sum(w * x), updates=[(w, w * x)], backend="numba", check_numerics=True)
    assert fn._exe.module.inplace == {}
    with pytest.raises(gc.GraphRuntimeError, match="NaN or inf"):
        fn(np.array([1.0, np.inf, 2.0], np.float32))
    np.testing.assert_array_equal(w.value, 1.0)  # the failed call changed no parameter


def test_repeated_calls_take_the_fast_path_and_recheck_anything_new():
    x = gc.placeholder((None, 3), name="x")
    w = gc.parameter(np.ones(3, np.float32), name="w")
    fn = gc.compile([x], x * w, updates=[(w, w + 1.0)], backend="numba")
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(fn(a), 1.0)
    assert fn._exe.run_same([a]) is not None  # same dtype and shape: no checks repeated
    assert fn._exe.run_same([a.astype(np.float64)]) is None
    assert fn._exe.run_same([np.ones((4, 3), np.float32)]) is None
    assert fn._exe.run_same([np.ones((3, 2), np.float32).T]) is None  # not C-contiguous
    assert fn._exe.run_same([a, a]) is None
    np.testing.assert_array_equal(w.value, 3.0)  # one update per call that ran, no more
    np.testing.assert_array_equal(fn(np.ones((3, 2), np.float32).T * 2), 6.0)  # copied, then run
    np.testing.assert_array_equal(fn(np.ones((4, 3), np.int8)), 4.0)  # cast safely
    with pytest.raises(gc.FeedError, match="placeholder x"):
        fn(np.ones((4, 2), np.float32))
    np.testing.assert_array_equal(w.value, 5.0)


def test_kernel_sources_carry_their_facts():
    """Whether a kernel can fail and where its ints come from are data on its source, not text."""
    from graphc.backends.common.source import DimRef, int_value
    x = gc.placeholder((None, 4), name="x")
    i = gc.placeholder((3,), "int64", name="i")
    f = gc.compile([x, i], [gc.take(x, i, 0) * 2, gc.tanh(x) + 1], backend="numba")
    facts = {k.kind: ks.fallible for k, ks in zip(f.kernels, f._exe.module.sources) if ks is not None}
    assert facts["take"] is True and facts["loop"] is False
    refs = [e for ks in f._exe.module.sources if ks is not None for _, e in ks.ints if isinstance(e, DimRef)]
    assert refs and all(e == f"dims[{e.slot}]" for e in refs)
    plan = f._exe.plan([(5, 4), (3,)])
    assert 5 in {int_value(e, plan.dims) for e in refs}


@pytest.mark.parametrize("center", [True, False])
def test_layer_and_rms_norm_are_one_row_kernel_with_their_affine(center):
    # x read once per row pass, the weight and bias fused into the same kernel; rows of a
    # run-time batch, a large mean (two passes keep float32's precision)
    x = gc.placeholder((None, 3, 40), "float32", name="x")
    w = gc.parameter(np.linspace(0.5, 2, 40, dtype=np.float32))
    b = gc.parameter(np.linspace(-1, 1, 40, dtype=np.float32))
    y = gc.layer_norm(x, w, b) if center else gc.rms_norm(x, w) + b
    f = gc.compile([x], y, backend="numba")
    assert [k.kind for k in f.kernels] == ["rows"], f.kernels
    X = (np.random.default_rng(0).normal(size=(5, 3, 40)) + (1000 if center else 0)).astype(np.float32)
    X64 = X.astype(np.float64)
    if center:
        d = X64 - X64.mean(-1, keepdims=True)
        want = d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5) * w.value + b.value
    else:
        want = X64 / np.sqrt((X64 * X64).mean(-1, keepdims=True) + 1e-6) * w.value + b.value
    # float32 sums of 40 values near 1000 put the mean off by ~1e-4 (ulp(4e4) = 4e-3 per add, over
    # 40): outputs of size ~1 are that far off; E[x^2] - E[x]^2 in one pass would be off by ~1e-1
    np.testing.assert_allclose(f(X), want, rtol=1e-5, atol=1e-3 if center else 2e-6)
    if center:
        one_pass = (X - X.mean(-1, keepdims=True, dtype=np.float32)) / np.sqrt(
            (X * X).mean(-1, keepdims=True, dtype=np.float32) - X.mean(-1, keepdims=True, dtype=np.float32) ** 2
            + np.float32(1e-5)) * w.value + b.value
        assert np.abs(f(X) - want).max() * 20 < np.nanmax(np.abs(one_pass - want))


@pytest.mark.parametrize("center", [True, False])
def test_the_norm_backward_for_its_input_is_two_kernels(center):
    """dx of a layer (or RMS) norm: g * weight, then one normalize_grad row kernel that recomputes
    the row's statistics; against float64 NumPy, on a run-time batch."""
    x, g = gc.placeholder((None, 3, 40), "float32"), gc.placeholder((None, 3, 40), "float32")
    w = gc.parameter(np.linspace(0.5, 2, 40, dtype=np.float32))
    y = gc.layer_norm(x, w) if center else gc.rms_norm(x, w)
    (dx,) = gc.vjp(y, [x], g)
    f = gc.compile([x, g], dx, backend="numba")
    assert [k.ops for k in f.kernels] == [["mul"], ["normalize_grad"]], f.kernels
    rng = np.random.default_rng(1)
    X, G = rng.normal(size=(4, 3, 40)).astype(np.float32), rng.normal(size=(4, 3, 40)).astype(np.float32)
    X64, GW = X.astype(np.float64), G.astype(np.float64) * w.value
    d = X64 - X64.mean(-1, keepdims=True) if center else X64
    rs = 1 / np.sqrt((d * d).mean(-1, keepdims=True) + (1e-5 if center else 1e-6))
    yy = d * rs
    want = rs * (GW - yy * (GW * yy).mean(-1, keepdims=True) - (GW.mean(-1, keepdims=True) if center else 0))
    np.testing.assert_allclose(f(X, G), want, rtol=1e-4, atol=1e-5)


def test_causal_softmax_is_one_rows_kernel_with_the_mask_from_its_indices():
    """Attention's scale, causal mask and softmax: one kernel reading the scores once, the mask
    computed from the loop indices (no bool array among its arguments); against float64 NumPy."""
    q, k = gc.placeholder((None, 2, 7, 4), "float32"), gc.placeholder((None, 2, 7, 4), "float32")
    f = gc.compile([q, k], attention_weights(q, k, causal=True), backend="numba")
    (rows,) = [kn for kn in f.kernels if "causal_log_softmax" in kn.ops]
    assert rows.ops == ["causal_log_softmax", "exp"] and len(f.kernels) == 3, f.kernels  # k^T, q k^T, rows
    src = f.source()
    head = src[src.index(f"def {rows.name}") - 400:src.index(f"def {rows.name}")].splitlines()[-1]
    assert "boolean" not in head, head
    rng = np.random.default_rng(3)
    Q, K = rng.normal(size=(3, 2, 7, 4)).astype(np.float32), rng.normal(size=(3, 2, 7, 4)).astype(np.float32)
    s = Q.astype(np.float64) @ np.swapaxes(K, -1, -2) / 2.0
    s = np.where(np.tril(np.ones((7, 7), bool)), s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(f(Q, K), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_a_long_driver_is_cut_into_parts():
    # numba's compile time of one function grows much faster than its length: past DRIVER_PART
    # statements the driver calls parts of it, each making the workspace views it reads
    from graphc.backends.numba.codegen import DRIVER_PART
    rng = np.random.default_rng(1)
    x = gc.placeholder((None, 4), "float64", name="x")
    ws = [gc.parameter(rng.normal(size=(4, 4)) / 2) for _ in range(DRIVER_PART + 10)]
    y, outs = x, []
    for k, w in enumerate(ws):
        y = gc.tanh(y @ w)
        if k % 37 == 0:
            outs.append(y)  # values from early parts read by the end
    total = sum(gc.sum(o) for o in outs) + gc.sum(y)
    fn = gc.compile([x], [total, y], backend="numba")
    src = fn.source()
    assert "def driver_p0(" in src and "def driver_p1(" in src and "def driver_p2(" in src
    X = rng.normal(size=(3, 4))
    for got, want in zip(fn(X), gc.compile([x], [total, y])(X)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_reduction_over_leading_and_trailing_axes_accumulates_in_a_local_on_every_thread():
    # conv's ReLU backward fused with its bias gradient, sum over (0, 2, 3): the reduced trailing
    # axes add into a local (no store into the output in the innermost loop), the kept channel axis
    # is the outer loop, run on every thread; (0, 3) of a max too, with keepdims
    x = gc.placeholder((None, 16, 12, 24), name="x")
    g = gc.placeholder((None, 16, 12, 24), name="g")
    d = gc.where(x > 0, g, gc.zeros_like(g))
    outs = [gc.sum(d, axis=(0, 2, 3)), gc.max(x * g, axis=(0, 3), keepdims=True), gc.sum(x, axis=(0, 2))]
    f, ref = gc.compile([x, g], outs + [d], backend="numba"), gc.compile([x, g], outs + [d], backend="numpy")
    fused = [k for k in f.kernels if k.reduce is not None and k.reduce[0] == 0 and k.reduce[-1] == 3]
    assert len(fused) == 2
    for k in fused:
        src = f.kernel_source(k.name)
        assert "nb.prange(n1)" in src and "acc = " in src, src
    # the float sum adds with radd, which LLVM may reassociate: the local's loop vectorizes
    assert "acc = radd(acc, " in f.kernel_source(next(k for k in fused if "sum" in k.ops).name)
    rng = np.random.default_rng(3)
    for n in (64, 1):
        a, b = (rng.normal(size=(n, 16, 12, 24)).astype(np.float32) for _ in range(2))
        for got, want in zip(f(a, b), ref(a, b)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    empty = np.zeros((0, 16, 12, 24), np.float32)
    with pytest.raises(gc.ShapeError, match="max over a zero-size axis"):  # as NumPy, on both
        f(empty, empty)


def test_a_transpose_is_read_inside_the_loop_kernel_after_it_never_computed_there():
    # a transpose an elementwise kernel reads is a read of its input at the permuted index, in that
    # kernel (conv2d's (O, N, ...) -> (N, O, ...) before its bias and ReLU); its input is never
    # computed in the same loop (square shapes: the producer's shape is the loop's), and an input
    # also read directly is loaded twice, at both indices
    x = gc.placeholder((None, 6), name="x")
    s = gc.placeholder((6, 6), name="s")
    t = gc.placeholder((2, 1, 5, 3), name="t")
    e = gc.exp(s)
    outs = [gc.relu(gc.transpose(x) * 2.0), gc.transpose(e) + e, gc.transpose(s) - s,
            gc.tanh(gc.transpose(t, (3, 0, 2, 1))) + 1.0]
    f = gc.compile([x, s, t], outs, backend="numba")
    ref = gc.compile([x, s, t], outs, backend="numpy")
    fused = [k for k in f.kernels if k.kind == "loop" and "transpose" in k.ops]
    assert len(fused) == 4 and not [k for k in f.kernels if k.kind == "transpose"]
    # e is computed in a kernel before the one that reads it transposed, never in it
    ke = next(k for k in f.kernels if any(o is e for o in k.outputs))
    assert not any(m is outs[1] for m in ke.nodes)
    rng = np.random.default_rng(6)
    for n in (7, 1):
        feeds = [rng.normal(size=(n, 6)).astype(np.float32), rng.normal(size=(6, 6)).astype(np.float32),
                 rng.normal(size=(2, 1, 5, 3)).astype(np.float32)]
        for got, want in zip(f(*feeds), ref(*feeds)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_transpose_read_after_a_scan_is_a_view_in_the_part_that_reads_it():
    """A program with a scan is cut into parts; a transposed weight (and a transposed activation a
    weight gradient reads) is computed again in the part whose matmul reads it, where it is a view,
    rather than copied in the first part and shipped across the loop."""
    rng = np.random.default_rng(4)
    xs = gc.placeholder((6, 3, 4), "float64", name="xs")
    A = gc.parameter(rng.normal(size=(4, 4)) * 0.3, name="A")
    V = gc.parameter(rng.normal(size=(5, 4)), name="V")
    c0 = gc.constant(np.zeros((3, 4)))
    _, ys = gc.scan(lambda c, x: (gc.tanh(c @ A + x),) * 2, c0, xs)
    h = gc.reshape(ys, (-1, 4))
    loss = gc.sum(gc.tanh(h @ gc.transpose(V)))
    outs = [loss] + gc.grad(loss, [A, V])
    f, ref = gc.compile([xs], outs, backend="numba"), gc.compile([xs], outs, backend="numpy")
    copies = [k for k in f.kernels if k.kind == "transpose"]
    assert not any(i is V for k in copies for i in k.inputs), copies  # V.T: a view where the matmul reads it
    assert any(k.kind == "view" and k.inputs[0] is V for k in f.kernels)
    a = rng.normal(size=(6, 3, 4))
    for got, want in zip(f(a), ref(a)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_work_only_a_later_part_reads_is_computed_in_that_part_not_before_the_loop():
    """Adam's beta1 * m and beta2 * v do not depend on the gradient, but only the update after the
    scan reads them: they are fused into the update's kernel in the last part, not kernels of their
    own in the first part whose results are kept across the loop."""
    w = (np.random.default_rng(8).normal(size=(4, 4)) * 0.3).astype(np.float32)

    def step(backend):
        xs = gc.placeholder((5, 3, 4), name="xs")
        A = gc.parameter(w, name="A")
        _, ys = gc.scan(lambda c, x: (gc.tanh(c @ A + x),) * 2, gc.constant(np.zeros((3, 4), np.float32)), xs)
        loss = gc.sum(ys * ys)
        return gc.compile([xs], loss, gc.optim.Adam(0.01).updates(loss, [A]), backend=backend), A

    (f, A), (g, B) = step("numba"), step("numpy")
    parts = [st for st in f._exe.steps if type(st).__name__ == "_Part"]
    before = [k for st in parts[:-1] for k in st.exe.kernels]
    moments = [k for k in before if any(i.name in ("A.m", "A.v") for i in k.inputs)]
    assert not moments, moments
    assert any({"mul", "sqrt", "div"} <= set(k.ops) for k in parts[-1].exe.kernels)  # the fused update
    a = np.random.default_rng(9).normal(size=(5, 3, 4)).astype(np.float32)
    for _ in range(3):  # the updated weights and Adam's moments agree step after step
        np.testing.assert_allclose(f(a), g(a), rtol=1e-5)
    np.testing.assert_allclose(A.value, B.value, rtol=1e-5, atol=1e-6)


def test_slices_of_known_bounds_are_reads_inside_the_loop_that_uses_them():
    """An LSTM's four gates are slices of one (N, 4H) product: the gate kernel reads that product at
    each gate's offset (no copied slices); a slice of part of a run-time axis keeps its own kernel."""
    rng = np.random.default_rng(5)
    z = gc.placeholder((None, 12), name="z")
    i, f, g, o = gc.split(z, 3, axis=-1)
    c = gc.sigmoid(f) * 0.5 + gc.sigmoid(i) * gc.tanh(g)
    rev = gc.sigmoid(o) * gc.tanh(c) + z[:, 11:2:-3] + z[:, ::4]  # steps 1, -3 and 4
    tail = z[1:, 0:3] * 2.0  # rows 1.. of a run-time batch: not a static read
    outs = [rev, tail] + gc.grad(gc.sum(rev * rev) + gc.sum(tail), [z])
    fn, ref = gc.compile([z], outs, backend="numba"), gc.compile([z], outs, backend="numpy")
    first = next(k for k in fn.kernels if any(o is rev for o in k.outputs))
    assert first.kind == "loop" and first.ops.count("slice") == 6 and first.inputs[0] is z
    assert [k.kind for k in fn.kernels].count("slice") == 1  # z[1:, 0:3]
    for n in (0, 1, 5):
        a = rng.normal(size=(n, 12)).astype(np.float32)
        for got, want in zip(fn(a), ref(a)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


BLAS_SCRIPT = textwrap.dedent("""
    import json, os, numpy as np, graphc as gc
    from graphc.backends.numba.intrinsics import blas
    rng = np.random.default_rng(0)
    out = {"library": blas.LIBRARY}
    for dtype in ("float32", "float64"):
        a = gc.placeholder((None, 70), dtype)
        b = gc.placeholder((70, 90), dtype)
        c = gc.placeholder((4, 90, 70), dtype)
        outs = [a @ b, gc.transpose(b) @ gc.transpose(a), c @ gc.transpose(c, (0, 2, 1)), a @ gc.transpose(c[1])]
        f = gc.compile([a, b, c], outs, backend="numba")
        av, bv, cv = (rng.normal(size=s).astype(dtype) for s in ((50, 70), (70, 90), (4, 90, 70)))
        want = [av @ bv, bv.T @ av.T, cv @ cv.transpose(0, 2, 1), av @ cv[1].T]
        out[dtype] = max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(f(av, bv, cv), want))
    out["reused"] = f.cache_info()["reused"]
    out["timeout"], out["env"] = blas.blas_thread_timeout(), os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    print(json.dumps(out))
""")


@pytest.mark.parametrize("which", ["numpy", "scipy", "numpy-timeout"])
def test_gemm_through_either_blas(tmp_path, which):
    """Kernels call the OpenBLAS NumPy ships where it has one, else (GRAPHC_BLAS=scipy, or a NumPy
    on another BLAS) scipy's through numba's wrapper: both give NumPy's products, plain, transposed
    (column-major) and batched, in float32 and float64, compiled and then loaded from the cache
    by a second process (whose kernels find the BLAS symbol by name). NumPy's OpenBLAS then starts
    its threads with blas.THREAD_TIMEOUT, or with the user's OPENBLAS_THREAD_TIMEOUT where one is
    set, and the environment is as it was."""
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "graphc"), NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               GRAPHC_BLAS=which.split("-")[0])
    env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    if which == "numpy-timeout":
        env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    for reused in (False, True):
        run = subprocess.run([sys.executable, "-c", BLAS_SCRIPT], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        got = json.loads(run.stdout.strip().splitlines()[-1])
        assert got["reused"] is reused
        assert ("openblas" in got["library"]) == (which != "scipy")
        assert got["float32"] < 1e-5 and got["float64"] < 1e-12
        from graphc.backends.numba.intrinsics.blas import THREAD_TIMEOUT
        assert (got["timeout"], got["env"]) == {"numpy": (THREAD_TIMEOUT, None), "scipy": (0, None),
                                                "numpy-timeout": (20, "20")}[which]

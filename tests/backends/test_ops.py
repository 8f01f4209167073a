"""Every op on every backend against NumPy: broadcasting, scalars, size-1 and size-0 dims, all dtypes.

One compiled function per case holds every dtype and shape variant (compiles dominate on the
compiled backends).
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from op_cases import CASES, make_array, tolerance

import graphc as gc


def _input_dtypes(case, dtype, n):
    return case.in_dtypes(dtype) if case.in_dtypes else (dtype,) * n


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_op_matches_numpy(case, backend):
    placeholders, outputs, feeds, labels = [], [], [], []
    for dtype in case.dtypes:
        rng = np.random.default_rng(zlib.crc32(f"{case.id}-{dtype}".encode()))
        for variant in case.shapes:
            dts = _input_dtypes(case, dtype, len(variant))
            domains = case.domain or ("any",) * len(variant)
            phs = [gc.placeholder(case.placeholder_shape(s), d) for s, d in zip(variant, dts)]
            placeholders += phs
            outputs.append(case.graph(*phs))
            feeds.append([make_array(rng, s, d, dom) for s, d, dom in zip(variant, dts, domains)])
            labels.append(f"{case.id} {dtype} {variant}")
    fn = gc.compile(placeholders, outputs, backend=backend)
    results = fn(*[a for args in feeds for a in args])
    for label, node, got, args in zip(labels, outputs, results, feeds):
        with np.errstate(all="ignore"):
            want = np.asarray(case.ref(*args))
        assert got.shape == want.shape, f"{label}: shape {got.shape} != {want.shape}"
        assert len(got.shape) == len(node.shape) and all(
            d is None or d == g for d, g in zip(node.shape, got.shape)), f"{label}: shape differs from the node's"
        assert got.dtype == node.dtype, label
        if case.check_dtype:
            assert got.dtype == want.dtype, f"{label}: dtype {got.dtype} != NumPy's {want.dtype}"
        if got.dtype.kind == "f":
            scale = float(case.scale(*args)) if case.scale else 1.0
            np.testing.assert_allclose(got, want.astype(got.dtype), **tolerance(got.dtype, scale),
                                       equal_nan=True, err_msg=label)
        else:
            np.testing.assert_array_equal(got, want, err_msg=label)


@pytest.mark.parametrize("backend_name", ["numba", "cuda"])
def test_every_primitive_has_a_kernel_on_each_code_generating_backend(backend_name):
    """A primitive a fused loop does not compute (nor a view) needs its own render rule there (a
    scan and its results never reach a backend: graphc.staged runs them, calling compiled bodies)."""
    import importlib

    from graphc.ops import REGISTRY
    rules = importlib.import_module(f"graphc.backends.{backend_name}.codegen").RENDER
    own = {n for n, op in REGISTRY.items() if op.kind not in ("leaf", "mode", "control")
           and not (op.fusible or op.loop_reduction or op.view)}
    assert own - set(rules) == set(), f"{backend_name} has no kernel for {sorted(own - set(rules))}"


def test_a_kind_without_a_kernel_is_a_compile_error_naming_the_op(monkeypatch):
    from graphc.backends.numba import codegen
    monkeypatch.delitem(codegen.RENDER, "argmax")
    x = gc.placeholder((3, 4), name="x")
    with pytest.raises(gc.CompileError, match=r"the numba backend has no kernel for argmax .*backend='numpy'"):
        gc.compile([x], gc.argmax(x, 1), backend="numba")

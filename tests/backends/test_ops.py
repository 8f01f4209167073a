"""Every op on every backend against NumPy: broadcasting, scalars, size-1 and size-0 dims, all dtypes."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import graphc as gc
from op_cases import CASES, make_array, tolerance

PARAMS = [pytest.param(c, d, id=f"{c.id}-{d}") for c in CASES for d in c.dtypes]


def _input_dtypes(case, dtype, n):
    return case.in_dtypes(dtype) if case.in_dtypes else (dtype,) * n


@pytest.mark.parametrize("case,dtype", PARAMS)
def test_op_matches_numpy(case, dtype, backend):
    rng = np.random.default_rng(zlib.crc32(f"{case.id}-{dtype}".encode()))
    placeholders, outputs, feeds = [], [], []
    for variant in case.shapes:
        dts = _input_dtypes(case, dtype, len(variant))
        domains = case.domain or ("any",) * len(variant)
        phs = [gc.placeholder(case.placeholder_shape(s), d) for s, d in zip(variant, dts)]
        placeholders += phs
        outputs.append(case.graph(*phs))
        feeds += [make_array(rng, s, d, dom) for s, d, dom in zip(variant, dts, domains)]
    fn = gc.compile(placeholders, outputs, backend=backend)
    results = fn(*feeds)
    k = 0
    for variant, node, got in zip(case.shapes, outputs, results):
        args = feeds[k:k + len(variant)]
        k += len(variant)
        with np.errstate(all="ignore"):
            want = np.asarray(case.ref(*args))
        assert got.shape == want.shape, f"{case.id} {variant}: shape {got.shape} != {want.shape}"
        assert len(got.shape) == len(node.shape) and all(
            d is None or d == g for d, g in zip(node.shape, got.shape)), f"{case.id}: shape differs from the node's"
        assert got.dtype == node.dtype
        if case.check_dtype:
            assert got.dtype == want.dtype, f"{case.id} {variant}: dtype {got.dtype} != NumPy's {want.dtype}"
        if got.dtype.kind == "f":
            scale = float(case.scale(*args)) if case.scale else 1.0
            np.testing.assert_allclose(got, want.astype(got.dtype), **tolerance(got.dtype, scale), equal_nan=True,
                                       err_msg=f"{case.id} {variant}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{case.id} {variant}")

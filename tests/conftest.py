"""Shared test helpers: the backends every backend-tier test runs on, and array makers."""
from __future__ import annotations

import os
import sys

# CI has no GPU: the cuda backend's kernels run on numba's simulator (read when numba is first
# imported). On a GPU machine run the suite with NUMBA_ENABLE_CUDASIM=0.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/op_cases.py

# Backends tested in tests/backends: the NumPy reference first.
BACKENDS = ["numpy", "numba", "cuda"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)

# the verifier runs between passes in every test
os.environ.setdefault("GRAPHC_VERIFY", "1")
# pytest-xdist's workers already keep every core busy compiling: a new module compiles in the
# worker alone (tests/numba/test_numba.py tests the helper processes with GRAPHC_COMPILE_JOBS=2)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("GRAPHC_COMPILE_JOBS", "1")

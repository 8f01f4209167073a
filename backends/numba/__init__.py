"""The Numba CPU backend: one generated module per graph, one @njit per kernel and one driver."""
import os

# numba's OpenMP workers and OpenBLAS's threads both spin between jobs; on 2 cores a training step
# that alternates GEMMs and parallel loops ran 8x slower (47 ms vs 5.4 ms for the 784-512-256-10
# step). A passive wait policy, read when numba first loads OpenMP, removes that; users may override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from graphc.protocol import Fusion  # noqa: E402

from .executable import NumbaExecutable  # noqa: E402

# loop kernels and row kernels (graphc/passes/fuse.py); BLAS reads each batch's matrix transposed
FUSION = Fusion(kernels=True, rows=True, batched_views=True)


def build(program) -> NumbaExecutable:
    """Render, write, import and compile the program's module (compilation happens here)."""
    return NumbaExecutable(program)


__all__ = ["build", "NumbaExecutable", "FUSION"]

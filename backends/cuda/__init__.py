"""The CUDA backend: the CPU backend's schedule and kernel bodies rendered as numba.cuda kernels.

Importing this package imports numba.cuda (the `cuda` extra, numba-cuda); graphc imports it only
when backend="cuda" is asked for. With NUMBA_ENABLE_CUDASIM=1 the kernels run on numba's CUDA
simulator (CI has no GPU)."""
import sys

from graphc.protocol import Fusion

from .codegen import simulated
from .executable import CudaExecutable

if simulated():
    # The simulator runs each thread of a block as a Python thread and polls them in a busy loop;
    # with the default 5 ms GIL switch interval every barrier costs milliseconds. 50 us makes a
    # training step ~5x faster there. Only under the simulator: a GPU run leaves Python alone.
    sys.setswitchinterval(5e-5)

FUSION = Fusion(kernels=True)  # loop kernels; rows are block reductions, not row kernels


def build(program) -> CudaExecutable:
    """Render, write, import and compile the program's CUDA module."""
    return CudaExecutable(program)


__all__ = ["build", "CudaExecutable", "FUSION"]

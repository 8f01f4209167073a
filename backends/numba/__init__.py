"""The Numba CPU backend: one generated module per graph, one @njit per kernel and one driver."""
from .executable import NumbaExecutable

FUSION = True  # compile() runs the fusion pass for this backend


def build(program) -> NumbaExecutable:
    """Render, write, import and compile the program's module (compilation happens here)."""
    return NumbaExecutable(program)


__all__ = ["build", "NumbaExecutable", "FUSION"]

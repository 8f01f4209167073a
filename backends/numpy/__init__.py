"""The NumPy backend: a reference interpreter, the meaning of every op and the oracle for the others."""
from graphc.protocol import NO_FUSION

from .interpreter import Interpreter

FUSION = NO_FUSION  # one op at a time


def build(program) -> Interpreter:
    """An executable for program: run(feeds) -> list of output arrays (updates applied in place)."""
    return Interpreter(program)


__all__ = ["build", "Interpreter", "FUSION"]

"""Function: a compiled graph you call with arrays; checks feeds before anything runs."""
from __future__ import annotations

import numpy as np

from .errors import FeedError, format_loc
from .ir import Node, user_location
from .ops.base import fmt_shape


def check_feed(ph: Node, value) -> np.ndarray:
    """value as an array fit for placeholder ph, or a FeedError naming ph."""
    where = f"placeholder {ph.label} {fmt_shape(ph.shape)} {ph.dtype} (made at {format_loc(ph.loc)})"
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        if arr.dtype != ph.dtype:
            if not np.can_cast(arr.dtype, ph.dtype, "safe"):
                raise FeedError(f"{where}: got an array of dtype {arr.dtype}, which cannot be cast "
                                f"safely; convert it with .astype('{ph.dtype}')", user_location())
            arr = arr.astype(ph.dtype)
    else:
        try:
            natural = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise FeedError(f"{where}: cannot make an array of {type(value).__name__}: {e}",
                            user_location()) from None
        # Python numbers are weak, as in NumPy: floats may become float32, never an int or bool
        order = "biuf"
        if natural.dtype.kind not in order or order.index(natural.dtype.kind) > order.index(ph.dtype.kind):
            raise FeedError(f"{where}: got {type(value).__name__} values of kind {natural.dtype}, "
                            f"which do not fit {ph.dtype}", user_location())
        try:
            arr = np.asarray(value, dtype=ph.dtype)
        except OverflowError as e:
            raise FeedError(f"{where}: {e}", user_location()) from None
    if arr.ndim != len(ph.shape) or any(d is not None and d != s for d, s in zip(ph.shape, arr.shape)):
        raise FeedError(f"{where}: got shape {fmt_shape(arr.shape)}", user_location())
    return arr


class Function:
    """A compiled graph: call it with arrays in the order of its inputs (or by placeholder name)."""

    def __init__(self, program, executable, backend: str, single: bool):
        self.program = program
        self.backend = backend
        self._exe = executable
        self._single = single

    @property
    def inputs(self) -> list[Node]:
        return list(self.program.inputs)

    @property
    def outputs(self) -> list[Node]:
        return list(self.program.outputs)

    @property
    def updates(self) -> list[tuple[Node, Node]]:
        return list(self.program.updates)

    def _feeds(self, args, kwargs) -> list[np.ndarray]:
        ins = self.program.inputs
        if kwargs:
            by_name = {p.name: i for i, p in enumerate(ins) if p.name}
            args = list(args) + [None] * (len(ins) - len(args))
            for k, v in kwargs.items():
                if k not in by_name:
                    raise FeedError(f"no input placeholder named {k!r}; inputs are "
                                    f"{[p.label for p in ins]}", user_location())
                if args[by_name[k]] is not None:
                    raise FeedError(f"input {k!r} given twice", user_location())
                args[by_name[k]] = v
            missing = [ins[i].label for i, a in enumerate(args) if a is None]
            if missing:
                raise FeedError(f"no value for inputs {missing}", user_location())
        if len(args) != len(ins):
            raise FeedError(f"expected {len(ins)} feeds ({', '.join(p.label for p in ins)}), got "
                            f"{len(args)}", user_location())
        return [check_feed(p, v) for p, v in zip(ins, args)]

    def __call__(self, *args, **kwargs):
        outs = self._exe.run(self._feeds(args, kwargs))
        return outs[0] if self._single else outs

    @property
    def kernels(self) -> list:
        """The kernels in schedule order: name, fused ops (.ops), inputs and outputs with shapes."""
        return list(self._exe.kernels)

    def source(self) -> str:
        """The generated module (compiled backends) or the optimized graph's text (numpy)."""
        return self._exe.source()

    def profile(self, *args, repeat: int = 10, **kwargs):
        """Run each kernel alone on these feeds: median time, bytes moved, FLOPs, GB/s, GFLOP/s.

        Parameters are not updated. print() the result for a table.
        """
        return self._exe.profile(self._feeds(args, kwargs), repeat)

    def cache_info(self) -> dict:
        """Where the compiled module lives and whether this compile reused cached work."""
        return self._exe.cache_info()

    def __repr__(self):
        return (f"<Function {self.backend}: {len(self.program.inputs)} inputs, "
                f"{len(self.program.outputs)} outputs, {len(self.program.updates)} updates, "
                f"{len(self.program.order)} nodes>")

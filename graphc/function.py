"""Function: a compiled graph you call with arrays; checks feeds before anything runs."""
from __future__ import annotations

import numpy as np

from .errors import FeedError, GraphError, format_loc
from .ir import Cell, Node, by_label, user_location
from .ops.base import fmt_shape


def check_feed(ph: Node, value) -> np.ndarray:
    """value as an array fit for placeholder ph, or a FeedError naming ph."""
    if type(value) is np.ndarray and value.dtype == ph.dtype and value.ndim == len(ph.shape):
        # the common case, kept cheap: a call's overhead is counted in microseconds
        for d, s in zip(ph.shape, value.shape):
            if d is not None and d != s:
                break
        else:
            return value
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
        # host backends share parameters with a GPU backend's device copies (ir.Cell.mirror): bring
        # newer device values back before a call, mark device copies stale after one that updates them
        self._host = not executable.device
        self._cells = [p.data for p in program.parameters]
        self._updated = [p.data for p, _ in program.updates]
        # feeds already checked: (dtype, shape) per input of the last call that passed check_feed
        # as is; a call whose arrays match them skips the check (a few hundred ns per feed)
        self._accepted = [None] * len(program.inputs)
        # feeds exactly like the last call's go straight to the executable (it says None otherwise)
        self._same = executable.run_same

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

    def __call__(self, *args, out=None, **kwargs):
        """Run the graph on these feeds; out= an array (one output) or a list with an array or None
        per output: results are written there instead of into fresh arrays, and returned."""
        if self._host and Cell.mirrored:
            for c in self._cells:  # a device backend's copy may be ahead of the host array
                if c.mirror is not None:
                    c.mirror.host_read(c._array)
        if out is None and not kwargs:
            outs = self._same(args)
            if outs is not None:
                if self._host and Cell.mirrored:
                    self._device_stale()
                return outs[0] if self._single else outs
        ins = self.program.inputs
        if not kwargs and len(args) == len(ins):
            feeds = list(args)
            seen = self._accepted
            for i, v in enumerate(feeds):
                if type(v) is np.ndarray and seen[i] is not None and v.shape == seen[i][1] and v.dtype is seen[i][0]:
                    continue
                f = feeds[i] = check_feed(ins[i], v)
                seen[i] = (f.dtype, f.shape) if f is v else None
        else:
            feeds = self._feeds(args, kwargs)
        if out is None:
            outs = self._exe.run(feeds)
            if self._host and Cell.mirrored:
                self._device_stale()
            return outs[0] if self._single else outs
        bufs = self._out_buffers(out, feeds)
        outs = self._exe.run(feeds, out=bufs) if self._exe.takes_out else self._exe.run(feeds)
        if self._host and Cell.mirrored:
            self._device_stale()
        for pos, buf in bufs.items():
            if outs[pos] is not buf:  # the backend computed it elsewhere (or it was fetched twice)
                np.copyto(buf, outs[pos])
                outs[pos] = buf
        return outs[0] if self._single else outs

    def _device_stale(self):
        for c in self._updated:  # this host call wrote them: a device copy is out of date
            if c.mirror is not None:
                c.mirror.host_wrote()

    def _out_buffers(self, out, feeds) -> dict:
        """{output position: array} from out=, each checked against the output's shape and dtype."""
        outs = self.program.outputs
        items = [out] if self._single or isinstance(out, np.ndarray) else list(out)
        if len(items) != len(outs):
            raise FeedError(f"out= needs {len(outs)} arrays (or None) for the outputs, got {len(items)}",
                            user_location())
        shapes = self._exe.output_shapes(feeds)
        bufs, seen = {}, []
        for pos, (o, b) in enumerate(zip(outs, items)):
            if b is None:
                continue
            what = f"out= array for output {pos} ({o.label} {fmt_shape(o.shape)} {o.dtype})"
            if not isinstance(b, np.ndarray):
                raise FeedError(f"{what}: got {type(b).__name__}, not a NumPy array", user_location())
            want = tuple(shapes[pos])
            if b.dtype != o.dtype or b.shape != want:
                raise FeedError(f"{what}: got shape {fmt_shape(b.shape)} {b.dtype}; this call computes "
                                f"{fmt_shape(want)}", user_location())
            if not (b.flags.c_contiguous and b.flags.writeable):
                raise FeedError(f"{what}: must be C-contiguous and writeable", user_location())
            clash = [f"input {self.program.inputs[i].label}" for i, f in enumerate(feeds) if np.shares_memory(b, f)]
            clash += [f"parameter {p.label}" for p in self.program.parameters if np.shares_memory(b, p.data.array)]
            clash += [f"out= array for output {q}" for q, c in seen if np.shares_memory(b, c)]
            if clash:
                raise FeedError(f"{what}: shares memory with {', '.join(clash)}", user_location())
            seen.append((pos, b))
            bufs[pos] = b
        return bufs

    @property
    def kernels(self) -> list:
        """The kernels in schedule order: name, fused ops (.ops), inputs and outputs with shapes."""
        return list(self._exe.kernels)

    def source(self) -> str:
        """The generated module (compiled backends) or the optimized graph's text (numpy)."""
        return self._exe.source()

    def kernel_source(self, kernel) -> str:
        """The generated code of one kernel (one of .kernels, or its name); '' on the numpy backend."""
        if isinstance(kernel, str):
            name, kernel = kernel, next((k for k in self.kernels if k.name == kernel), None)
            if kernel is None:
                raise GraphError(f"no kernel named {name!r} in this function", user_location())
        return self._exe.kernel_source(kernel)

    def profile(self, *args, repeat: int = 10, **kwargs):
        """Run each kernel alone on these feeds: median time, bytes moved, FLOPs, GB/s, GFLOP/s.

        Parameters are not updated. print() the result for a table.
        """
        return self._exe.profile(self._feeds(args, kwargs), repeat)

    def cache_info(self) -> dict:
        """Where the compiled module lives and whether this compile reused cached work."""
        return self._exe.cache_info()

    def named_state(self) -> dict[str, Node]:
        """What a checkpoint of the function holds: its parameters by name (random keys left out); an
        unnamed one by its position among the function's parameters, '#<k>', which the same graph
        compiled in another process gives again (a serial label such as parameter#2 would not)."""
        params = [p for p in self.program.parameters if p.data.role != "rng"]
        out = by_label([p for p in params if p.name])
        for k, p in enumerate(params):
            if not p.name:
                out[f"#{k}"] = p
        return out

    def __repr__(self):
        return (f"<Function {self.backend}: {len(self.program.inputs)} inputs, "
                f"{len(self.program.outputs)} outputs, {len(self.program.updates)} updates, "
                f"{len(self.program.order)} nodes>")

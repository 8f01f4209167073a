"""Run a compiled CUDA module: device buffers planned once per set of feed shapes, parameters
resident on the device, one sequence of launches per call."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from numba import config, cuda

from graphc.protocol import Executable, Mirror
from graphc.schedule import plan_buffers, resolve_shapes

from ..common.source import function_blocks, int_value
from ..numba.cache import load
from ..numba.executable import explain, out_of_memory
from .codegen import INDEX, decode, render_module

try:
    from importlib.metadata import version as _version
    _NUMBA_CUDA = _version("numba-cuda")
except Exception:  # noqa: BLE001 - a source checkout without metadata
    _NUMBA_CUDA = "?"

_ZERO = np.zeros(1, np.int64)


def dshape(shape) -> tuple:
    """A value's shape on the device: 0-d values live in one-element arrays."""
    return tuple(shape) or (1,)


def upload(array):
    """A device copy of a host array (0-d as one element)."""
    return cuda.to_device(np.ascontiguousarray(array).reshape(dshape(array.shape)))


class DeviceCopy(Mirror):
    """A parameter's array in device memory (its cell's mirror). After a step here the device copy
    is the newer one (`newer`); `fresh` says it equals the host array, which stops being so once the
    host array is handed out or a host backend writes it (the next step here uploads it again)."""

    __slots__ = ("array", "fresh", "newer")

    def __init__(self, host):
        self.array = upload(host)
        self.fresh, self.newer = True, False

    def handed_out(self, host) -> None:
        self.host_read(host)
        self.fresh = False

    def host_read(self, host) -> None:
        if self.newer:
            self.array.copy_to_host(host.reshape(self.array.shape))  # 0-d: one element there
            self.newer = False

    def host_wrote(self) -> None:
        self.fresh = False

    def current(self, host):
        """The device array, uploaded again first if the host array may have changed."""
        if not self.fresh:
            self.host_read(host)
            self.array.copy_to_device(np.ascontiguousarray(host).reshape(self.array.shape))
            self.fresh = True
        return self.array


class _Plan:
    """One set of feed shapes: concrete shapes, the driver's argument list (device arrays), the
    device buffers feeds are copied into, the output buffers and the run-time ints."""

    __slots__ = ("shapes", "arrays", "feed_at", "out_at", "out_specs", "dims", "buffers", "result_at", "cells")


class CudaExecutable(Executable):
    """A program compiled to one generated CUDA module; run(feeds) -> host outputs."""

    takes_out = True  # run(feeds, out={position: array}) copies results into the caller's arrays
    device = True     # parameters live on the device (graphc.ir.Cell.mirror: a DeviceCopy)

    def __init__(self, program):
        self.program = program
        self.kernels = program.kernels  # the schedule compile() made by FUSION
        self.module = render_module(program, self.kernels, program.check_numerics)
        t0 = time.perf_counter()
        self.mod, self.path, self.reused = load(self.module.source, extra=f"numba-cuda {_NUMBA_CUDA}")
        self.compile_seconds = time.perf_counter() - t0
        if os.environ.get("GRAPHC_DEBUG") == "1":
            print(f"graphc: {self.path} ready in {self.compile_seconds:.2f}s")
        self._plans: dict[tuple, _Plan] = {}
        self._lock = threading.Lock()
        self._consts = {}
        self._err = cuda.to_device(_ZERO)
        self._updated = [p.data for p, _ in program.updates]

    # ------------------------------------------------------------ planning
    def plan(self, feed_shapes) -> _Plan:
        key = tuple(feed_shapes)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._make_plan(key)
        return plan

    def _make_plan(self, feed_shapes) -> _Plan:
        prog = self.program
        shapes = resolve_shapes(prog, feed_shapes)
        bp = plan_buffers(prog, self.kernels, shapes)
        work = [cuda.device_array(dshape(s), dt) for dt, s in bp.workspaces]
        outs = [cuda.device_array(dshape(shapes[o]), o.dtype) for o in bp.outputs + self.module.copies]
        plan = _Plan()
        plan.shapes = shapes
        plan.arrays, plan.feed_at, plan.cells = [], [], []
        plan.buffers = {}
        index_of = {o: i for i, o in enumerate(bp.outputs + self.module.copies)}
        for j, n in enumerate(self.module.args):
            kind, ref = bp.slots[n]
            if kind == "feed":
                buf = cuda.device_array(dshape(feed_shapes[ref]), n.dtype)
                plan.arrays.append(buf)
                plan.feed_at.append((ref, buf))
            elif kind == "param":
                plan.arrays.append(self._resident(n.data))
                plan.cells.append(n.data)
            elif kind == "const":
                if n not in self._consts:
                    self._consts[n] = upload(np.asarray(n.data))
                plan.arrays.append(self._consts[n])
            elif kind == "work":
                plan.arrays.append(work[ref])
            elif kind == "out":
                plan.arrays.append(outs[ref])
            plan.buffers[n] = j
        plan.arrays += outs[len(bp.outputs):]
        plan.out_specs = [(shapes[o], o.dtype) for o in bp.outputs + self.module.copies]
        plan.result_at = [index_of[o] for o in prog.outputs]
        plan.out_at = outs
        plan.dims = [int(spec(shapes)) for spec in self.module.dims.specs]
        return plan

    @staticmethod
    def _resident(cell):
        """The cell's device copy, made on first use."""
        if cell.mirror is None:
            cell.attach(DeviceCopy(cell._array))
        return cell.mirror.array

    def output_shapes(self, feeds) -> list[tuple]:
        shapes = self.plan([f.shape for f in feeds]).shapes
        return [shapes[o] for o in self.program.outputs]

    # ------------------------------------------------------------ calling
    def prepare(self, feeds):
        """The plan, with feeds copied in and every parameter's device copy current."""
        plan = self.plan([f.shape for f in feeds])
        for c in plan.cells:  # the host array may have been handed out or written by a host backend
            c.mirror.current(c._array)
        for i, buf in plan.feed_at:
            if buf.size:
                buf.copy_to_device(np.ascontiguousarray(feeds[i]).reshape(buf.shape))
        return plan

    def run(self, feeds, out=None):
        with self._lock:  # one call at a time: a plan's device buffers are shared by every call
            return self._run(feeds, out)

    def _run(self, feeds, out):
        try:
            plan = self.prepare(feeds)
        except MemoryError:
            raise out_of_memory(self.program, [f.shape for f in feeds]) from None
        err = self._err
        if self.module.fallible:
            err.copy_to_device(_ZERO)
        self.mod.driver(*plan.arrays, plan.dims, err)
        if self.module.fallible:
            code = int(err.copy_to_host()[0])
            if code:
                raise self._explain(code)
        for c in self._updated:  # the device copies are now the newer ones
            if c.mirror is not None:
                c.mirror.newer = True
        results = []
        for pos, i in enumerate(plan.result_at):
            dev = plan.out_at[i]
            if out and pos in out:
                buf = out[pos]
                if dev.size:
                    dev.copy_to_host(buf.reshape(dev.shape))
                results.append(buf)
            else:
                shape, dtype = plan.out_specs[i]
                results.append(dev.copy_to_host().reshape(shape) if dev.size else np.empty(shape, dtype))
        return results

    def _explain(self, code: int) -> Exception:
        kind, kern, pos = decode(code)
        if kind == INDEX:
            node = self.kernels[kern].nodes[pos]
            what = node.op.describe(node) if node.op.name == "check_index" else "index out of range"
            e = IndexError(f"graphc:{kern}:{pos}: {what}")
        else:
            e = FloatingPointError(f"graphc:{kern}:{pos}: NaN or inf")
        return explain(self.kernels, e)

    # ------------------------------------------------------------ introspection
    def source(self) -> str:
        return self.module.source

    def kernel_source(self, kernel) -> str:
        """The kernel's @cuda.jit functions and the host function run_<kernel> that launches them."""
        blocks = function_blocks(self.module.source)
        mine = [t for name, t in blocks.items()
                if name == kernel.name or name.startswith(kernel.name + "_") or name == f"run_{kernel.name}"]
        return "\n\n".join(mine)

    def cache_info(self) -> dict:
        return {"backend": "cuda", "module": self.path, "reused": self.reused,
                "compile_seconds": self.compile_seconds, "simulator": bool(config.ENABLE_CUDASIM)}

    def profile(self, feeds, repeat: int):
        """Each kernel's launches alone (synchronised), with the arrays of one planned call; the
        parameter updates are not run."""
        from graphc.profile import KernelProfile, Profile, node_flops
        plan = self.prepare(feeds)
        local = {n: plan.arrays[j] for n, j in plan.buffers.items()}
        out = Profile()
        err = self._err
        err.copy_to_device(_ZERO)
        for kern, ks in zip(self.kernels, self.module.sources):
            if ks is None:
                node = kern.nodes[0]
                src = local[node.inputs[0]]
                local[node] = src.T if node.op.name == "transpose" else src.reshape(dshape(plan.shapes[node]))
                continue
            fn = getattr(self.mod, f"run_{kern.name}")
            args = [local[n] for n in ks.arrays] + [int_value(e, plan.dims) for _, e in ks.ints]
            fn(*args, err, plan.dims)  # first launch: compiles lazily typed helpers
            cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn(*args, err, plan.dims)
            cuda.synchronize()
            sec = (time.perf_counter() - t0) / max(repeat, 1)
            moved = sum(a.nbytes for a in args if hasattr(a, "nbytes"))
            flops = sum(node_flops(n, plan.shapes) for n in kern.nodes)
            out.append(KernelProfile(kern.name, kern.ops, sec, moved, flops))
        return out

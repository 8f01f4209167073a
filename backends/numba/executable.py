"""Run a compiled module: plan buffers per set of feed shapes, then one native call per step."""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import time
import warnings

import numpy as np
from numba.core.errors import NumbaExperimentalFeatureWarning

from graphc.errors import GraphIndexError, GraphRuntimeError, OutOfMemoryError, format_loc
from graphc.ops.base import fmt_shape
from graphc.protocol import Executable
from graphc.schedule import plan_buffers, resolve_shapes

from ..common.source import function_blocks, int_value
from .cache import load, release_with
from .codegen import PARALLEL_MIN, render_module
from .intrinsics import launch_threads

RECYCLE_MIN = 1 << 20
ARENA_ALIGN = 64  # bytes: a cache line, and a full AVX-512 vector
_MARK = re.compile(r"graphc:(\d+):(\d+): (.*)")


def explain(kernels, e: Exception) -> Exception:
    """A kernel's failure (its message starts graphc:<kernel>:<position>:) as a graph error that
    names the node, the kernel and the user's line."""
    m = _MARK.search(str(e))
    if not m:
        return GraphRuntimeError(f"a kernel failed: {e}")
    kern = kernels[int(m.group(1))]
    node = kern.nodes[int(m.group(2))]
    first = kern.nodes[0]
    if isinstance(e, FloatingPointError):  # the first fused op may be where it started
        return GraphRuntimeError(f"check_numerics: kernel {kern.name} [{' '.join(kern.ops)}] produced "
                                 f"{m.group(3)} in {node.label}; its first op {first.op.name} was built "
                                 f"at {format_loc(first.loc)}", first.loc)
    kind = GraphIndexError if isinstance(e, IndexError) else GraphRuntimeError
    return kind(f"{node.op.name} ({node.label}) in kernel {kern.name} [{' '.join(kern.ops)}]: "
                f"{m.group(3)}", node.loc)


def out_of_memory(program, feed_shapes) -> OutOfMemoryError:
    """The error for a call whose arrays could not be allocated, naming its largest value."""
    shapes = resolve_shapes(program, feed_shapes)
    big = max((n for n in program.order if not n.is_leaf), key=lambda n: math.prod(shapes[n]) * n.dtype.itemsize)
    size = math.prod(shapes[big]) * big.dtype.itemsize
    return OutOfMemoryError(f"not enough memory for this call: {big.op.name} ({big.label}) alone is "
                            f"{fmt_shape(shapes[big])} {big.dtype}, {size / 2**30:.1f} GiB, for feeds of shapes "
                            f"{', '.join(fmt_shape(s) for s in feed_shapes)}", big.loc)


def _aligned(n: int, dtype) -> np.ndarray:
    """An empty 1-d array of n elements starting at a multiple of ARENA_ALIGN bytes."""
    raw = np.empty(n + ARENA_ALIGN // dtype.itemsize, dtype)
    start = (-raw.ctypes.data % ARENA_ALIGN) // dtype.itemsize
    return raw[start:start + n]


_LAUNCH = None
_CALL = None


def _caller():
    """call(kernel, address, *args): a kernel run as the driver runs it (kcall, through its native
    address: kernels have no Python wrapper), for profile(); compiled on first use, for each kernel
    signature."""
    global _CALL
    if _CALL is None:
        import numba

        from .intrinsics.calls import kcall_relayout

        @numba.njit(nogil=True)
        def call(kernel, address, *args):
            kcall_relayout(kernel, address, *args)
        _CALL = call
    return _CALL


def _launcher():
    """launch(kernel, address, extent, threads, *args): a split kernel run as the driver runs it (pcall),
    for profile(); compiled on first use, for each kernel signature."""
    global _LAUNCH
    if _LAUNCH is None:
        import numba

        from .intrinsics import pcall

        @numba.njit(nogil=True)
        def launch(kernel, address, extent, threads, *args):
            pcall(kernel, address, extent, threads, *args)
        _LAUNCH = launch
    return _LAUNCH


class _Plan:
    """Everything a call with these feed shapes needs: shapes, arrays, dims."""

    __slots__ = ("shapes", "arrays", "feed_at", "out_at", "out_specs", "dims", "buffers", "copy_at", "out_index",
                 "spare", "result_at", "repeat_at", "work", "feed_spec", "fresh_spec")


class NumbaExecutable(Executable):
    """A program compiled to one generated module; run(feeds) -> outputs (updates applied in place)."""

    takes_out = True  # run(feeds, out={position: array}) computes straight into the caller's arrays

    def __init__(self, program):
        self.program = program
        self.kernels = program.kernels  # the schedule compile() made by FUSION
        self.module = render_module(program, self.kernels, program.check_numerics)
        if os.environ.get("GRAPHC_DEBUG") == "1":
            for k in self.kernels:
                print(f"graphc: compiling {k!r}")
        t0 = time.perf_counter()
        if "pcall(" in self.module.source:  # numba's thread pool, before its code is compiled or loaded
            launch_threads()
        self.mod, self.path, self.reused = load(self.module.source)
        release_with(self, self.mod)
        self.compile_seconds = time.perf_counter() - t0
        if os.environ.get("GRAPHC_DEBUG") == "1":
            print(f"graphc: {self.path} ready in {self.compile_seconds:.2f}s")
        self.driver = self.mod.driver
        self._entry = next(iter(self.driver.overloads.values())).entry_point  # one explicit signature
        # the kernels' native entry points, which the driver calls through (intrinsics.kcall)
        fns = []
        for name in self.module.called:
            cres = next(iter(getattr(self.mod, name).overloads.values()))
            fns.append(cres.library.get_pointer_to_function(cres.fndesc.mangled_name))
        self._fns = np.array(fns or [0], dtype=np.int64)
        self._plans: dict[tuple, _Plan] = {}  # the first plan made for each set of feed shapes
        # plans no call is using, per set of feed shapes: a call takes one and gives it back, so
        # calls from several threads at once each run on a plan (workspaces, spare outputs) of their
        # own; list.pop and list.append are atomic, cheaper than a lock (W4's step is ~3 us)
        self._idle: dict[tuple, list] = {}
        self._last = (None, None)  # (feed shapes, idle plans) of the last call
        self._consts = {}  # writable copies of constants (numba types read-only arrays apart)

    # ------------------------------------------------------------ planning
    def plan(self, feed_shapes) -> _Plan:
        """The plan for these feed shapes (the first one made: for shapes and introspection)."""
        key = tuple(feed_shapes)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans.setdefault(key, self._make_plan(key))  # a racing thread's plan is dropped
            self._idle.setdefault(key, [plan])
        return plan

    def _take(self, key) -> tuple[list, _Plan]:
        """(the idle list, a plan for these shapes that no other call is using): a new one, with its
        own workspaces, while another thread's call holds the others. Give it back to the list."""
        idle = self._idle.get(key)
        if idle is None:
            self.plan(key)
            idle = self._idle[key]
        try:
            return idle, idle.pop()
        except IndexError:
            return idle, self._make_plan(key)

    def _make_plan(self, feed_shapes) -> _Plan:
        prog = self.program
        shapes = resolve_shapes(prog, feed_shapes)
        mod = self.module
        bp = plan_buffers(prog, self.kernels, shapes, mod.inplace)
        # the workspaces: one flat arena per dtype, each workspace at an offset aligned to 64 bytes
        offset, size = [0] * len(bp.workspaces), dict.fromkeys(mod.arenas, 0)
        for idx, (dt, s) in enumerate(bp.workspaces):
            align = max(1, ARENA_ALIGN // dt.itemsize)
            offset[idx] = size[dt.name] = -(-size[dt.name] // align) * align
            size[dt.name] += math.prod(s)
        arenas = {a: _aligned(size[a], np.dtype(a)) for a in mod.arenas}
        plan = _Plan()
        plan.shapes = shapes
        plan.arrays, plan.feed_at, plan.out_at = [], [], []
        plan.buffers = {}
        for j, n in enumerate(self.module.args):
            kind, ref = bp.slots[n]
            if kind == "feed":
                plan.arrays.append(None)
                plan.feed_at.append((j, ref))
            elif kind == "param":
                plan.arrays.append(n.data.array)
            elif kind == "const":
                if n not in self._consts:
                    self._consts[n] = np.array(n.data)
                plan.arrays.append(self._consts[n])
            elif kind == "out":
                plan.arrays.append(None)
                plan.out_at.append((j, ref))
            plan.buffers[n] = j
        base = len(plan.arrays)
        for j, _ in enumerate(self.module.copies):  # outputs no kernel computes: filled by the driver
            plan.arrays.append(None)
            plan.out_at.append((base + j, len(bp.outputs) + j))
        plan.copy_at = {o: base + j for j, o in enumerate(self.module.copies)}
        plan.arrays += [arenas[a] for a in mod.arenas]
        plan.work = {}  # NumPy views of the workspaces, for profile()
        for n in mod.work:
            idx = bp.slots[n][1]
            dt, s = bp.workspaces[idx]
            plan.work[n] = arenas[dt.name][offset[idx]:offset[idx] + math.prod(s)].reshape(s)
        plan.out_specs = [(shapes[o], o.dtype) for o in bp.outputs + self.module.copies]
        plan.out_index = {o: i for i, o in enumerate(bp.outputs + self.module.copies)}
        plan.spare = [None] * len(plan.out_specs)
        plan.result_at = [plan.copy_at[o] if o in plan.copy_at else plan.buffers[o] for o in prog.outputs]
        plan.repeat_at = [pos for pos, j in enumerate(plan.result_at) if j in plan.result_at[:pos]]
        # what run_same() checks and does: (arg position or None, dtype, shape) per feed, and
        # (arg position, output, (shape, dtype) or None when it is recycled) per fresh output
        arg_of = dict((ref, j) for j, ref in plan.feed_at)
        plan.feed_spec = [(arg_of.get(i), p.dtype, tuple(feed_shapes[i])) for i, p in enumerate(prog.inputs)]
        plan.fresh_spec = [(j, i, None if math.prod(plan.out_specs[i][0]) * plan.out_specs[i][1].itemsize
                            >= RECYCLE_MIN else plan.out_specs[i]) for j, i in plan.out_at]
        plan.dims = np.array([spec(shapes) for spec in mod.dims.specs]
                             + [offset[bp.slots[n][1]] for n in mod.work] or [0], dtype=np.int64)
        return plan

    def output_shapes(self, feeds) -> list[tuple]:
        """The concrete shape of each output for these feeds (from the cached plan)."""
        shapes = self.plan([f.shape for f in feeds]).shapes
        return [shapes[o] for o in self.program.outputs]

    # ------------------------------------------------------------ calling
    def prepare(self, plan, feeds, out=None):
        """The driver's argument list for these feeds on this plan, with fresh output arrays (or the
        caller's: out maps an output's position to an array of its shape and dtype)."""
        arrays = plan.arrays.copy()
        for j, i in plan.feed_at:
            f = feeds[i]
            arrays[j] = f if f.flags.carray else np.array(f, order="C")  # carray: C order, aligned, writeable
        if out:
            given = {}
            for pos, buf in out.items():
                i = plan.out_index.get(self.program.outputs[pos])
                if i is not None and i not in given:
                    given[i] = buf
            outs = [given[i] if i in given else self._fresh(plan, i) for i in range(len(plan.out_specs))]
        else:
            outs = [self._fresh(plan, i) for i in range(len(plan.out_specs))]
        for j, i in plan.out_at:
            arrays[j] = outs[i]
        return arrays

    @staticmethod
    def _fresh(plan, i):
        """An output array nobody else holds. A large one (>= RECYCLE_MIN bytes) is the one returned
        by an earlier call when the caller has let go of it: a new 64 MiB array costs ~5 ms of page
        faults, more than the kernel that fills it."""
        a = plan.spare[i]
        if a is not None and sys.getrefcount(a) == 3:  # plan.spare, `a` and getrefcount's argument
            return a
        shape, dtype = plan.out_specs[i]
        a = np.empty(shape, dtype)
        plan.spare[i] = a if a.nbytes >= RECYCLE_MIN else None
        return a

    def run(self, feeds, out=None):
        key = tuple([f.shape for f in feeds])
        try:
            idle, plan = self._take(key)  # its workspaces are allocated when it is made
        except MemoryError:
            raise out_of_memory(self.program, key) from None
        try:
            try:
                arrays = self.prepare(plan, feeds, out)  # the outputs
            except MemoryError:
                raise out_of_memory(self.program, key) from None
            return self._call(plan, arrays)
        finally:
            idle.append(plan)
            self._last = (key, idle)

    def run_same(self, args):
        """run(args) when the feeds are exactly like the last call's: ndarrays of the same dtypes
        and shapes, C-contiguous, aligned and writeable (so already checked); None otherwise, and
        the caller takes the checked path. This is the whole per-call cost of a training step
        with small arrays: a few hundred ns here, then the driver."""
        idle = self._last[1]
        if idle is None:
            return None
        try:
            plan = idle.pop()
        except IndexError:  # another thread's call has it: the checked path makes another
            return None
        try:
            if len(args) != len(plan.feed_spec):
                return None
            arrays = plan.arrays.copy()
            for (j, dt, shape), a in zip(plan.feed_spec, args):
                if type(a) is not np.ndarray or a.dtype is not dt or a.shape != shape or not a.flags.carray:
                    return None
                if j is not None:
                    arrays[j] = a
            empty = np.empty
            for j, i, spec in plan.fresh_spec:
                arrays[j] = self._fresh(plan, i) if spec is None else empty(*spec)
            return self._call(plan, arrays)
        finally:
            idle.append(plan)

    @contextlib.contextmanager
    def stepper(self, feed_shapes):
        """call(feeds, out) for a scan's steps: one plan held for them all, its argument list
        filled in place (feeds C-contiguous, as a scan's slices and carries are), no per-call
        lookup."""
        key = tuple(tuple(s) for s in feed_shapes)
        try:
            idle, plan = self._take(key)
        except MemoryError:
            raise out_of_memory(self.program, key) from None
        arrays = plan.arrays.copy()
        feed_at, out_at = plan.feed_at, plan.out_at
        slot = [plan.out_index.get(o) for o in self.program.outputs]
        fresh, entry, dims, fns = self._fresh, self._entry, plan.dims, self._fns

        def call(feeds, out):
            for j, i in feed_at:
                f = feeds[i]
                arrays[j] = f if f.flags.carray else np.array(f, order="C")
            given = {}
            for pos, buf in out.items():
                i = slot[pos]
                if i is not None and i not in given:
                    given[i] = buf
            for j, i in out_at:
                arrays[j] = given[i] if i in given else fresh(plan, i)
            try:
                entry(*arrays, dims, fns)
            except (IndexError, FloatingPointError, ZeroDivisionError) as e:
                raise self._explain(e) from e
            return self._results(plan, arrays)
        try:
            yield call
        finally:
            idle.append(plan)

    def _call(self, plan, arrays):
        try:
            # the compiled overload itself: the feeds were checked (dtype, rank, C order), so the
            # dispatcher's per-argument type resolution would only repeat that
            self._entry(*arrays, plan.dims, self._fns)
        except (IndexError, FloatingPointError, ZeroDivisionError) as e:
            raise self._explain(e) from e
        return self._results(plan, arrays)

    def _results(self, plan, arrays):
        results = [arrays[j] for j in plan.result_at]
        for pos in plan.repeat_at:  # the same array fetched twice: two arrays
            results[pos] = results[pos].copy()
        return results

    def _explain(self, e: Exception) -> Exception:
        return explain(self.kernels, e)

    # ------------------------------------------------------------ introspection
    def source(self) -> str:
        return self.module.source

    def kernel_source(self, kernel) -> str:
        """The @kernel function this kernel calls (one like an earlier kernel but for its sizes calls
        that one's)."""
        if kernel.kind == "view":
            return ""
        if not hasattr(self, "_blocks"):
            self._blocks = function_blocks(self.module.source)
            run = [k for k in self.kernels if k.kind != "view"]
            self._fn_of = {k.name: fn for k, fn in zip(run, self.module.called)}
        return self._blocks.get(self._fn_of.get(kernel.name, ""), "")

    def cache_info(self) -> dict:
        """The module's path, whether its file was reused, and numba's own cache hits and misses."""
        hits = misses = 0
        helped = getattr(self.mod, "graphc_helped", set())  # compiled by a helper process, loaded here
        for name in list(dict.fromkeys(self.module.called)) + ["driver"]:
            stats = getattr(self.mod, name).stats
            found, missed = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
            if name in helped:  # compiled for this call all the same
                found, missed = found - 1, missed + 1
            hits += found
            misses += missed
        return {"backend": "numba", "module": self.path, "reused": self.reused, "numba_cache_hits": hits,
                "numba_cache_misses": misses, "compiled_by_helpers": len(helped),
                "compile_seconds": self.compile_seconds}

    def profile(self, feeds, repeat: int):
        """Call each kernel alone with the arrays of one planned call; the driver's update step is
        not run, so parameters do not change."""
        key = tuple([f.shape for f in feeds])
        idle, plan = self._take(key)
        try:
            return self._profile(plan, self.prepare(plan, feeds), repeat)
        finally:
            idle.append(plan)

    def _profile(self, plan, arrays, repeat: int):
        from graphc.profile import KernelProfile, Profile, node_flops, time_call
        local = {n: arrays[j] for n, j in plan.buffers.items()} | plan.work
        for u, p in self.module.inplace.items():  # its kernel writes a copy: profiling changes no parameter
            local[p] = local[u] = np.array(local[p], copy=True)
        out = Profile()
        calls = iter(enumerate(self.module.called))  # the function each kernel runs (kernels alike but
        # for their sizes share one) and its address
        for kern, ks in zip(self.kernels, self.module.sources):
            if ks is None:  # a view: no work, materialize it for the kernels that read it
                node = kern.nodes[0]
                src = local[node.inputs[0]]
                local[node] = np.transpose(src, node.attrs["perm"]) if node.op.name == "transpose" else \
                    src.reshape(plan.shapes[node])
                continue
            at, name = next(calls)
            fn = getattr(self.mod, name)

            def value(e):  # a kernel's int argument: a DimRef or a literal
                return int_value(e, plan.dims)
            args = [local[n] for n in ks.arrays] + [value(e) for _, e in ks.ints]
            if ks.split is not None:  # as the driver runs it: on every thread unless sized small at run time
                ints = dict(ks.ints)
                extent = value(ints.get(ks.split, ks.split))
                threads = ks.size is None or math.prod(value(ints.get(e, e)) for e in ks.size) >= PARALLEL_MIN
                launch, address = _launcher(), int(self._fns[at])
                with warnings.catch_warnings():  # numba calls a dispatcher as an argument "experimental"
                    warnings.simplefilter("ignore", NumbaExperimentalFeatureWarning)
                    launch(fn, address, extent, threads, *args)  # compiles it for this signature
                sec = time_call(functools.partial(launch, fn, address, extent, threads, *args), repeat)
            else:
                # through its address, as the driver calls it (kcall casts each array to the
                # kernel's parameter type: a transposed view that is also C-contiguous, a (1, n) or
                # (n, 1) array, would not match an "F" signature by type)
                call, address = _caller(), int(self._fns[at])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NumbaExperimentalFeatureWarning)
                    call(fn, address, *args)  # compiles it for this signature
                sec = time_call(functools.partial(call, fn, address, *args), repeat)
            moved = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
            flops = sum(node_flops(n, plan.shapes) for n in kern.nodes)
            out.append(KernelProfile(kern.name, kern.ops, sec, moved, flops))
        return out

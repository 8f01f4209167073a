"""Data parallelism over MPI (mpi4py): the ranks of one job, parameters broadcast, gradients summed.

Run a script on N processes with `mpiexec -n N python -m mpi4py script.py` (the `mpi` extra installs
mpi4py and MPICH, whose `mpiexec` lands in the venv's bin/). `python -m mpi4py` aborts the whole
job when any rank raises an uncaught exception: without it the other ranks would wait forever in
their next collective call. MPICH is what graphc is tested with (it runs as root and more ranks
than cores with no flags); OpenMPI works too but needs OMPI_ALLOW_RUN_AS_ROOT=1,
OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 and PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe.

Every rank runs the same script: the same graph, the same seeds. `init()` is called once (gc.Trainer
calls it for distributed=True); `broadcast(obj)` makes every rank's parameters rank 0's;
`GradientBuffer` is one flat array per dtype whose views a gradient function writes (out=), summed
over the ranks in place by one MPI call per dtype per step (Horovod's tensor fusion).
"""
from __future__ import annotations

import os

import numpy as np

from .errors import GraphError
from .ir import Node, user_location

__all__ = ["World", "init", "current", "broadcast", "allreduce", "barrier", "GradientBuffer", "RandomShards", "shard"]

_WORLD = None


class World:
    """The communicator graphc uses, with its rank and size."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self):
        return f"<graphc.distributed.World rank {self.rank} of {self.size}>"


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - the mpi extra installs it
        raise GraphError("graphc.distributed needs mpi4py and an MPI library: pip install 'graphc[mpi]'",
                         user_location()) from e
    return MPI


def init(comm=None) -> World:
    """Start (or return) data parallelism over comm (default MPI.COMM_WORLD); returns the World.

    With several ranks on this machine, each gets CPUs / ranks of numba's threads and of BLAS's
    (through threadpoolctl, from the mpi extra): left at one per CPU, their spinning thread pools
    took the step of the digits MLP from 0.3 to 40 ms on 2 ranks of 2 cores. NUMBA_NUM_THREADS and
    OPENBLAS_NUM_THREADS set before start-up take precedence."""
    global _WORLD
    MPI = _mpi()
    comm = MPI.COMM_WORLD if comm is None else comm
    if _WORLD is not None and _WORLD.comm == comm:
        return _WORLD
    _WORLD = World(comm)
    local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    if local > 1:
        _share_threads(max(1, cpus // local))
    return _WORLD


def _share_threads(threads: int) -> None:
    import numba
    if "NUMBA_NUM_THREADS" not in os.environ:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        try:
            import scipy.linalg.cython_blas  # noqa: F401 - numba's gemm calls SciPy's BLAS: loaded, to be limited
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - the mpi extra installs threadpoolctl
            return
        threadpool_limits(limits=threads, user_api="blas")


def current() -> World | None:
    """The World init() made, or None when this process is not data-parallel."""
    return _WORLD


def _world(world) -> World:
    w = world if world is not None else _WORLD
    if w is None:
        raise GraphError("graphc.distributed: call gc.distributed.init() first", user_location())
    return w


def barrier(world: World | None = None) -> None:
    _world(world).comm.Barrier()


def _flat(arrays, dtype):
    return np.concatenate([np.ascontiguousarray(a, dtype).reshape(-1) for a in arrays]) if arrays \
        else np.zeros(0, dtype)


def broadcast(obj, root: int = 0, world: World | None = None) -> None:
    """Make every rank's parameters of obj equal to rank `root`'s, in place: obj as gc.save takes it
    (a model, an optimizer, a Trainer, a dict of name -> parameter, a parameter, a list). One message
    per dtype; every rank must pass an object with the same names, shapes and dtypes (checked)."""
    from .checkpoint import named_state
    w = _world(world)
    state = named_state(obj)
    names = sorted(state)
    layout = [(k, state[k].shape, np.dtype(state[k].dtype).str) for k in names]
    theirs = w.comm.bcast(layout, root=root)
    if theirs != layout:
        diff = next((a, b) for a, b in zip(layout + [None] * len(theirs), theirs + [None] * len(layout)) if a != b)
        raise GraphError(f"broadcast: rank {w.rank}'s parameters differ from rank {root}'s: {diff[0]} here, "
                         f"{diff[1]} there", user_location())
    for dt in sorted({d for _, _, d in layout}):
        group = [state[k] for k, _, d in layout if d == dt]
        buf = _flat([p.value for p in group], np.dtype(dt))
        w.comm.Bcast(buf, root=root)
        at = 0
        for p in group:
            n = int(np.prod(p.shape, dtype=np.int64))
            np.copyto(p.value, buf[at:at + n].reshape(p.shape))
            at += n


def allreduce(array: np.ndarray, op: str = "sum", world: World | None = None) -> np.ndarray:
    """The elementwise sum (or max, min) of array over the ranks, in place when array is contiguous
    (returned either way); every rank gets the same bits."""
    MPI = _mpi()
    w = _world(world)
    ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
    if op not in ops:
        raise GraphError(f"allreduce: op must be one of {sorted(ops)}, got {op!r}", user_location())
    a = np.asarray(array)
    if a.flags.c_contiguous and a.flags.writeable:
        w.comm.Allreduce(MPI.IN_PLACE, a, op=ops[op])
        return a
    out = np.ascontiguousarray(a).copy()
    w.comm.Allreduce(MPI.IN_PLACE, out, op=ops[op])
    return out


def shard(n: int, world: World | None = None, rank: int | None = None) -> slice:
    """The contiguous part of range(n) this rank takes: n split into `size` runs, the first n % size
    one longer (a run may be empty when n < size)."""
    w = _world(world)
    r = w.rank if rank is None else rank
    base, extra = divmod(n, w.size)
    start = r * base + min(r, extra)
    return slice(start, start + base + (r < extra))


class GradientBuffer:
    """One flat array per dtype holding a gradient per parameter, as views (`views`, in params
    order): a compiled gradient function writes them by out=, and `allreduce` sums them over the
    ranks with one MPI call per dtype, in place."""

    def __init__(self, params: list[Node]):
        dtypes = list(dict.fromkeys(np.dtype(p.dtype) for p in params))
        sizes = {d: sum(int(np.prod(p.shape, dtype=np.int64)) for p in params if np.dtype(p.dtype) == d)
                 for d in dtypes}
        self.flat = {d: np.zeros(sizes[d], d) for d in dtypes}
        at = dict.fromkeys(dtypes, 0)
        self.views = []
        for p in params:
            d, n = np.dtype(p.dtype), int(np.prod(p.shape, dtype=np.int64))
            self.views.append(self.flat[d][at[d]:at[d] + n].reshape(p.shape))
            at[d] += n

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.flat.values())

    def scale(self, factor: float) -> None:
        for a in self.flat.values():
            a *= a.dtype.type(factor)

    def zero(self) -> None:
        for a in self.flat.values():
            a.fill(0)

    def allreduce(self, world: World | None = None) -> None:
        for a in self.flat.values():
            allreduce(a, "sum", world)


class RandomShards:
    """The random keys (dropout's) of a gradient function, shifted per step so that a rank's shard
    draws the numbers the same rows of the whole batch draw in one process: a key feeds
    random_uniform over (batch, ...) with element index row * m + j, so a shard starting at row s
    needs index + s * m, which is the same key shifted (graphc.ops.random.shifted_key). After the
    step every rank's keys are what one process's would be. The batch must be axis 0 (a run-time
    size) of every random draw, and each key advance by a constant (dropout's key + 1): else a
    GraphError, rather than masks unlike one process's."""

    def __init__(self, roots):
        from .ir import toposort
        self.keys: dict[Node, int] = {}  # key -> elements per sample
        self.steps: dict[Node, int] = {}
        for n in toposort(list(roots)):
            if n.op.kind != "random":
                continue
            key, like = n.inputs[0], n.inputs[-1]
            if key.op.name != "parameter" or not like.shape or like.shape[0] is not None or None in like.shape[1:]:
                raise GraphError(f"data parallel training: the random numbers of {n.label} "
                                 f"{tuple(like.shape)} need the batch on axis 0 (a run-time size) and a "
                                 "parameter key, so each rank can draw its shard's part", n.loc)
            per = int(np.prod(like.shape[1:], dtype=np.int64))
            if self.keys.setdefault(key, per) != per:
                raise GraphError(f"data parallel training: key {key.label} draws rows of {per} and of "
                                 f"{self.keys[key]} numbers; give each draw its own key", n.loc)
            upd, step = key.data.default_update, None
            if upd is not None and upd.op.name == "add" and key in upd.inputs:
                other = upd.inputs[1] if upd.inputs[0] is key else upd.inputs[0]
                step = int(other.data) if other.op.name == "constant" and other.data.size == 1 else None
            if step is None:
                raise GraphError(f"data parallel training: key {key.label} must advance by a constant each "
                                 "step (as dropout's does)", n.loc)
            self.steps[key] = step
        self._base: dict[Node, int] = {}

    def shift(self, start: int) -> None:
        """Before a step on the shard beginning at row `start` of the batch."""
        from .ops.random import shifted_key
        for key, per in self.keys.items():
            base = int(key.value)
            key.value = shifted_key(base, start * per)
            self._base[key] = (base, int(key.value))

    def advance(self, ran: bool) -> None:
        """After it (ran: whether this rank ran the step): every key is one process's next key."""
        from .ops.random import MASK64
        for key, (base, shifted) in self._base.items():
            # what the step added to the shifted key (or would have), added to the unshifted one
            delta = (int(key.value) - shifted) if ran else self.steps[key]
            key.value = np.uint64((base + delta) & MASK64).view(np.int64)
        self._base.clear()

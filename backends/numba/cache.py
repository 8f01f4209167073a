"""The content-addressed module cache: generated source is written once under GRAPHC_CACHE_DIR
and imported, so numba's own disk cache (cache=True) serves a second process."""
from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import select
import signal
import struct
import sys
import tempfile
import weakref

import numba
import numpy as np

import graphc


def cache_dir() -> str:
    """GRAPHC_CACHE_DIR, else the user's cache directory."""
    d = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "graphc")
    os.makedirs(d, exist_ok=True)
    return d


# generated modules import these by path, so their source is part of every key
_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "intrinsics")
_INTRINSICS = ""
for _name in sorted(os.listdir(_HERE)):
    if _name.endswith(".py"):
        with open(os.path.join(_HERE, _name)) as _f:
            _INTRINSICS += _f.read()


def module_key(source: str, extra: str = "") -> str:
    """The cache key: the canonical source plus every version that changes what it compiles to
    (extra: a backend's own, e.g. numba-cuda's version)."""
    h = hashlib.sha256()
    from .intrinsics.blas import LIBRARY  # the BLAS the kernels call
    for part in (source, graphc.__version__, numba.__version__, np.__version__, sys.version, _INTRINSICS, LIBRARY,
                 extra):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


# generated modules by name while some executable holds them
_LOADED: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()


_USERS: dict[str, int] = {}  # how many live executables use each loaded module


def release_with(owner, mod) -> None:
    """Free mod's compiled code once owner (and every other owner given it) is collected.

    Needed for a module compiled in this process: numba keeps each dispatcher's compile results
    in a finalizer registry, and those reach the module's globals, so without this the module and
    its Python objects would never be collected. (LLVM's JIT code, ~2.5 MB a graph, numba never
    frees.)"""
    name = mod.__name__
    _USERS[name] = _USERS.get(name, 0) + 1
    weakref.finalize(owner, _release, name)


def _release(name: str) -> None:
    _USERS[name] -= 1
    if _USERS[name]:
        return
    del _USERS[name]
    mod = _LOADED.pop(name, None)
    if mod is None:
        return
    from numba.core.dispatcher import Dispatcher
    for v in list(vars(mod).values()):
        # only the module's own functions: it also imports graphc's shared intrinsics
        if isinstance(v, Dispatcher) and getattr(v.py_func, "__module__", None) == name:
            v._make_finalizer()()
            v.overloads.clear()


def load(source: str, extra: str = ""):
    """(module, path, reused): import the module for this source, writing it if it is new, and
    compile its @kernel functions (compile_module: shared with helper processes when it is new)."""
    key = module_key(source, extra)
    name = f"graphc_gen_{key}"
    mod = _LOADED.get(name)
    if mod is not None:  # the same graph compiled earlier in this process, and still in use
        return mod, mod.__file__, True
    folder = os.path.join(cache_dir(), key)
    path = os.path.join(folder, f"{name}.py")
    reused = os.path.exists(path)
    if not reused:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)  # atomic: a concurrent writer never leaves half a file
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    # numba's compiler makes millions of short-lived objects: Python's cyclic collector, left on,
    # walks the whole heap again and again meanwhile (1.5 s of the 8 s W3 took). Nothing made here
    # is a cycle that must be freed before the end of the compile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        spec.loader.exec_module(mod)
        mod.graphc_helped = compile_module(mod, 1 if reused else compile_jobs())
    finally:
        # the import needs the module in sys.modules; kept there, it would outlive every Function
        # that uses it (with its compiled code): the executables hold it, _LOADED finds it again
        del sys.modules[name]
        if collecting:
            gc.enable()
    _LOADED[name] = mod
    return mod, path, reused


PARALLEL_MIN = 4  # kernel functions: fewer compile in this process alone
STALL_SECONDS = 120.0  # a helper that reports nothing for this long is stopped; its work is redone here


def compile_jobs() -> int:
    """How many processes compile a new module: GRAPHC_COMPILE_JOBS, else on Linux one per CPU
    this process may run on, at most 4 (elsewhere 1: macOS's system libraries are not safe to use
    in a forked child)."""
    env = os.environ.get("GRAPHC_COMPILE_JOBS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"GRAPHC_COMPILE_JOBS={env!r}: expected a whole number of processes, 1 or more")
        return int(env)
    if not sys.platform.startswith("linux"):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(cpus, 4)


def _compile(disp) -> None:
    """One @kernel function for its signature: from numba's cache if it is there, else compiled
    (and written to the cache)."""
    import warnings

    from numba.core.errors import NumbaExperimentalFeatureWarning
    with warnings.catch_warnings():  # numba calls a dispatcher passed to kcall "experimental"
        warnings.simplefilter("ignore", NumbaExperimentalFeatureWarning)
        disp.compile(disp.graphc_signature)
    disp.disable_compile()  # as @njit(signature) does: a call with other types is an error


def compile_module(mod, jobs: int = 1) -> set:
    """Compile every @kernel function of a freshly imported generated module; returns the names
    compiled by helper processes.

    Compiling is CPU-bound Python (numba's typing and lowering) and LLVM, one function at a time:
    with jobs > 1, jobs - 1 helpers forked from this process (numba imported and warm, nothing to
    start) take kernels from a shared queue, largest first, and write what they compile to numba's
    disk cache (cache=True); this process compiles the driver, which needs only the kernels'
    signatures, then takes kernels from the same queue, and at the end loads the helpers' kernels
    from the cache. A helper that fails or stalls costs nothing but time: whatever is not in the
    cache at the end is compiled here, and its errors are raised here."""
    todo = [d for d in vars(mod).values() if getattr(d, "graphc_signature", None) is not None and not d.overloads]
    driver = getattr(mod, "driver", None)
    rest = [d for d in todo if d is not driver]
    rest.sort(key=lambda d: len(d.py_func.__code__.co_code), reverse=True)  # the long ones first
    helpers = min(jobs - 1, len(rest) // 2) if len(rest) >= PARALLEL_MIN and hasattr(os, "fork") else 0
    if helpers <= 0:
        for d in todo:
            _compile(d)
        return set()
    rest = rest[:16000]  # what a pipe holds (64 KiB of 4-byte records); beyond, left to this process
    queue_r, queue_w = os.pipe()
    done_r, done_w = os.pipe()
    os.write(queue_w, b"".join(struct.pack("<i", i) for i in range(len(rest))))
    os.close(queue_w)  # readers see the end of the queue once it is empty
    for f in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        try:
            f.flush()
        except Exception:
            pass
    pids = []
    try:
        for _ in range(helpers):
            pid = os.fork()
            if pid == 0:  # a helper: compile from the queue, report each one done, never return
                code = 1
                try:
                    os.close(done_r)
                    while len(rec := os.read(queue_r, 4)) == 4:
                        _compile(rest[struct.unpack("<i", rec)[0]])
                        os.write(done_w, rec)  # progress: the parent waits while there is some
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        os.close(done_w)
        done_w = -1
        if driver in todo:
            _compile(driver)
        while len(rec := os.read(queue_r, 4)) == 4:
            _compile(rest[struct.unpack("<i", rec)[0]])
        # the helpers report each kernel done: wait until they all exit (the end of the pipe), or
        # stop them when none has finished a kernel for STALL_SECONDS
        while select.select([done_r], [], [], STALL_SECONDS)[0] and os.read(done_r, 4096):
            pass
    finally:
        for pid in pids:
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):  # still running: stalled, or we failed
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for fd in (queue_r, done_r, done_w):
            if fd >= 0:
                os.close(fd)
    helped = set()
    for d in todo:  # the helpers' from the cache; anything they did not finish, here
        if not d.overloads:
            _compile(d)
            if any(d.stats.cache_hits.values()):  # the module is new: a helper wrote it
                helped.add(d.__name__)
    return helped

"""Timing helpers every workload uses: medians, timed repeats, CPU time and page faults, versions."""
from __future__ import annotations

import time

THREADS = 2  # every thread pool (tools/bench.py pins them before numpy is imported)
SEED = 0


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def timeit(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timed_loops(fn, warmup, repeats, steps):
    """Seconds of each of `repeats` loops of `steps` calls after `warmup` calls, and the CpuCounter."""
    for _ in range(warmup):
        fn()
    times = []
    with CpuCounter() as cpu:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append(time.perf_counter() - t0)
    return times, cpu


class CpuCounter:
    """CPU seconds and minor page faults of this process over a block."""

    def __enter__(self):
        import resource
        self._r = resource
        self._t0 = time.perf_counter()
        self._u0 = resource.getrusage(resource.RUSAGE_SELF)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._t0
        u1 = self._r.getrusage(self._r.RUSAGE_SELF)
        self.cpu = (u1.ru_utime - self._u0.ru_utime) + (u1.ru_stime - self._u0.ru_stime)
        self.minflt = u1.ru_minflt - self._u0.ru_minflt
        return False

    def per_call(self, calls):
        return {"cores_busy": round(self.cpu / self.wall, 2), "minflt_per_call": round(self.minflt / calls)}


def gc_versions():
    import numba
    import numpy

    import graphc
    return {"graphc": graphc.__version__, "numpy": numpy.__version__, "numba": numba.__version__}

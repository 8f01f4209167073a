"""W2 (the MLP 784-512-256-10 Adam step, global batch 256) data parallel over MPI: steps/s, and the
allreduce's share of the step beside MPI's allreduce of a buffer of the same size alone.

    python tools/bench_mpi.py                                   # 1 rank x 2 threads: the fused step
    mpiexec -n 2 python -m mpi4py tools/bench_mpi.py --ranks    # 2 ranks x 1 thread: grad, allreduce, update
    make bench-mpi                                              # both, one table

Rank 0 prints one JSON record per run (what `make bench-mpi` tabulates); times are medians of
--repeats loops of --steps steps, after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _median_loop(fn, steps: int, repeats: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - t0) / steps)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", action="store_true", help="data parallel (run under mpiexec)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import bench  # pins every thread pool to bench.THREADS, before numba and BLAS start
    from benchkit.micro import w2_graph, w2_step
    if args.ranks:  # the ranks on this machine share those threads (as gc.distributed.init does)
        from mpi4py import MPI
        local = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(max(1, bench.THREADS // local))

    import graphc as gc
    if not args.ranks:
        import numba
        step, xb, yb = w2_step("numba")
        t = _median_loop(lambda: step(xb, yb), args.steps, args.repeats)
        print(json.dumps({"ranks": 1, "threads": numba.get_num_threads(), "ms_per_step": 1e3 * t,
                          "steps_per_s": 1 / t}))
        return
    x, y, ps, loss, xb, yb = w2_graph()
    trainer = gc.Trainer([x, y], loss, gc.optim.Adam(1e-3), params=ps, distributed=True)
    world, buf = trainer.world, trainer.gradients
    comm = world.comm
    t_step = _median_loop(lambda: (trainer._parallel_step([xb, yb]), comm.Barrier()), args.steps, args.repeats)
    t_fused = _median_loop(lambda: (buf.allreduce(world), comm.Barrier()), args.steps, args.repeats)
    alone = np.zeros(sum(a.size for a in buf.flat.values()), np.float32)
    t_alone = _median_loop(lambda: (comm.Allreduce(MPI.IN_PLACE, alone, op=MPI.SUM), comm.Barrier()),
                           args.steps, args.repeats)
    t_barrier = _median_loop(comm.Barrier, args.steps, args.repeats)
    t_step, t_fused, t_alone = (max(t - t_barrier, 1e-9) for t in (t_step, t_fused, t_alone))
    if world.is_root:
        import numba
        print(json.dumps({"ranks": world.size, "threads": numba.get_num_threads(), "ms_per_step": 1e3 * t_step,
                          "steps_per_s": 1 / t_step, "allreduce_ms": 1e3 * t_fused,
                          "allreduce_share": t_fused / t_step, "buffer_mb": buf.nbytes / 1e6,
                          "allreduce_gbs": buf.nbytes / t_fused / 1e9, "mpi_alone_ms": 1e3 * t_alone,
                          "mpi_alone_gbs": buf.nbytes / t_alone / 1e9,
                          "mpi": MPI.Get_library_version().split("\n")[0].strip()}))


if __name__ == "__main__":
    main()

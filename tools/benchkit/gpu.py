"""The GPU workloads G1-G3 (backend cuda)."""
from __future__ import annotations

import os
import time

from .measure import SEED, median, timed_loops, timeit
from .micro import w1_graph, w1_inputs, w2_problem, w2_step

# ------------------------------------------------------------------- GPU workloads (backend cuda)
# G1: the W1 chain's kernel against the device's own copy bandwidth (goal >= 70 %); G2: a 2048^3
# float32 GEMM against cuBLAS (torch.matmul, TF32 off); G3: the W2 Adam step against PyTorch CUDA
# eager (goal <= 1.5x its time). Kernel times come from fn.profile (synchronised launches on
# device buffers); step times include copying the batch to the device and the loss back.
GPU_WORKLOADS = ("g1", "g2", "g3")
G2_N = 2048
# GRAPHC_BENCH_SMOKE=1: tiny sizes, the simulator allowed, G3 left out: checks the code paths
SMOKE = os.environ.get("GRAPHC_BENCH_SMOKE") == "1"
if SMOKE:
    G2_N = 8


def _gpu_or_reason():
    from numba import config, cuda
    if config.ENABLE_CUDASIM and not SMOKE:
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM): no GPU timing"
    if not cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


def _device_name():
    from numba import cuda
    name = getattr(cuda.get_current_device(), "name", "the CUDA simulator")
    return name.decode() if isinstance(name, bytes) else str(name)


def run_g1(backend):
    import numpy as np
    from numba import cuda

    import graphc as gc
    x, y = w1_inputs()
    if SMOKE:
        x, y = x[:64], y[:64]
    ins, out = w1_graph(gc, x.size)
    f = gc.compile(ins, out, backend=backend)
    r = f(x, y)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    ref = np.tanh(xd * 1.5 + yd) * (1 / (1 + np.exp(-xd))) + np.maximum(yd - 0.5, 0) * np.exp(-xd * xd)
    err = float(np.max(np.abs(r.astype(np.float64) - ref)))
    prof = f.profile(x, y, repeat=50)
    kern_s = sum(k.seconds for k in prof)
    a, b = cuda.to_device(x), cuda.device_array_like(x)
    b.copy_to_device(a)
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50):
        b.copy_to_device(a)
    cuda.synchronize()
    copy_s = (time.perf_counter() - t0) / 50
    copy_gbps = 2 * x.nbytes / copy_s / 1e9
    chain_gbps = 3 * x.nbytes / kern_s / 1e9
    call = median(timeit(lambda: f(x, y), 2, 7))
    return [{"system": f"graphc {backend} (kernel)", "ms": 1e3 * kern_s, "gbps": chain_gbps,
             "max_abs_err": err, "note": f"{100 * chain_gbps / copy_gbps:.0f}% of the device copy "
                                         f"bandwidth {copy_gbps:.0f} GB/s; {_device_name()}"},
            {"system": "device copy (cudaMemcpy D2D)", "ms": 1e3 * copy_s, "gbps": copy_gbps},
            {"system": f"graphc {backend} (call, host arrays)", "ms": 1e3 * call,
             "note": "includes copying x, y to the device and the result back"}]


def run_g2(backend):
    import numpy as np

    import graphc as gc
    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((G2_N, G2_N), dtype=np.float32)
    B = rng.standard_normal((G2_N, G2_N), dtype=np.float32)
    a, b = gc.placeholder(A.shape, name="a"), gc.placeholder(B.shape, name="b")
    f = gc.compile([a, b], a @ b, backend=backend)
    got = f(A, B)
    err = float(np.max(np.abs(got - A @ B)))
    kern_s = sum(k.seconds for k in f.profile(A, B, repeat=20))
    flop = 2 * G2_N ** 3
    rows = [{"system": f"graphc {backend} (tiled kernel)", "ms": 1e3 * kern_s, "gflops": flop / kern_s / 1e9,
             "max_abs_err": err, "note": _device_name()}]
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        ta, tb = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
        torch.matmul(ta, tb)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            torch.matmul(ta, tb)
        torch.cuda.synchronize()
        t = (time.perf_counter() - t0) / 20
        rows.append({"system": "cuBLAS (torch.matmul, TF32 off)", "ms": 1e3 * t, "gflops": flop / t / 1e9})
    except ImportError:
        rows.append({"system": "cuBLAS (torch.matmul)", "status": "not installed"})
    return rows


def run_g3(backend):
    if SMOKE:
        return [{"system": f"graphc {backend}", "status": "skipped", "note": "smoke run"}]
    step, xb, yb = w2_step(backend)
    losses = [float(step(xb, yb)) for _ in range(20)]
    times, _ = timed_loops(lambda: step(xb, yb), warmup=5, repeats=5, steps=50)
    t = median(times) / 50
    rows = [{"system": f"graphc {backend}", "steps_per_s": 1 / t, "ms": 1e3 * t, "loss_after_20": losses[-1],
             "note": f"{len(step.kernels)} kernels; batch copied in, loss copied out per step; {_device_name()}"}]
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        params, x, y = w2_problem()
        ps = [torch.tensor(p, device="cuda", requires_grad=True) for p in params]
        opt = torch.optim.Adam(ps, lr=1e-3)
        X, Y = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

        def tstep():
            h = X
            for k in range(3):
                h = h @ ps[2 * k] + ps[2 * k + 1]
                if k < 2:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(h, Y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        for _ in range(20):
            tloss = tstep()
        torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(50):
                tstep()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) / 50)
        tt = median(ts)
        rows.append({"system": "torch CUDA eager (Adam)", "steps_per_s": 1 / tt, "ms": 1e3 * tt,
                     "loss_after_20": float(tloss), "note": f"graphc / torch time: {t / tt:.2f}"})
    except ImportError:
        rows.append({"system": "torch CUDA eager", "status": "not installed"})
    return rows


def gpu_run(fn):
    """fn, or a record saying why it was skipped when there is no GPU to time."""
    def run(backend):
        reason = _gpu_or_reason()
        if reason:
            return [{"system": f"graphc {backend}", "status": "skipped", "note": reason}]
        return fn(backend)
    return run

"""graphc's benchmark suite: workloads W0-W5 of ../shared/peers/README.md and W6-W11 (conv2d, LSTM, GPT,
LeNet, LSTM language model beside torch CPU; imported ONNX models beside onnxruntime), graphc's backends side by
side with NumPy and, where installed, PyTorch, JAX and PyTensor, in one run. This file runs the processes and
prints the report; the workloads and the tables are in tools/benchkit/ (measure, micro, models, gpu, tables).

    python tools/bench.py                      # everything, 3 rounds: ~25 minutes on 2 cores
    python tools/bench.py --quick              # one round, W1 W2 W4 W5, a few peers: ~3 minutes
    python tools/bench.py -w w1,w4 --rounds 3  # some workloads
    python tools/bench.py --backend cuda       # on a GPU: G1 chain vs copy bandwidth, G2 GEMM vs
                                               # cuBLAS, G3 MLP step vs torch CUDA eager
    graphc bench ...  /  make bench            # the same

Method (the peers' own): every thread pool pinned to 2 threads; every system in its own fresh
process; the whole list of systems repeated --rounds times, interleaved, because this shared
machine drifts by 10-30 % between processes; within a process warm-up, then the median of several
timed repeats; the table shows the median over rounds with the min-max range. Same data, seeds and
initial parameters as the peers (float32, seed 0), so losses must agree.

Peers run from the peers' own scripts (--peers DIR, default ../shared/peers beside the checkout)
with --peers-python (default: $PEERS_VENV/bin/python when that venv exists, else this Python);
a peer whose package is not importable there is listed as not installed. Results: a Markdown table
on stdout and every record as JSON (--json, default bench_results.json). Never run in CI; no test
asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:  # benchkit beside this file, also when `graphc bench` runs it by runpy
    sys.path.insert(0, HERE)

from benchkit.measure import THREADS, gc_versions  # noqa: E402

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)  # before numpy is imported (benchkit's modules import it lazily)

from benchkit.gpu import GPU_WORKLOADS, gpu_run, run_g1, run_g2, run_g3  # noqa: E402
from benchkit.micro import run_w1, run_w2, run_w3, run_w4, run_w5  # noqa: E402
from benchkit.models import W10_T, run_torch, run_w6, run_w7, run_w8, run_w9, run_w10, run_w11  # noqa: E402
from benchkit.tables import machine, tables  # noqa: E402

WORKLOADS = ("w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10", "w11")
PEER_SCRIPTS = {"w0": "w0_bandwidth.py", "w1": "w1_fused.py", "w2": "w2_mlp.py", "w3": "w3_first_step.py",
                "w4": "w4_tiny.py", "w5": "w5_softmax.py"}
# the package a peer system needs (systems not listed need only numpy/numba)
NEEDS = {"torch": "torch", "jax": "jax", "pytensor": "pytensor"}
QUICK_PEERS = {"numpy", "torch_compile", "torch_eager_fused", "jax_jit", "pytensor_numba", "numba"}


GRAPHC_RUNS = {"w1": run_w1, "w2": run_w2, "w3": run_w3, "w4": run_w4, "w5": run_w5, "w6": run_w6, "w7": run_w7,
               "w8": run_w8, "w9": run_w9, "w10": run_w10, "w11": run_w11,
               "g1": gpu_run(run_g1), "g2": gpu_run(run_g2), "g3": gpu_run(run_g3)}


# ------------------------------------------------------------------------------------ orchestration
def child(spec: str) -> None:
    """--system wN:graphc_BACKEND: run one graphc system in this process; JSON lines on stdout."""
    workload, system = spec.split(":")
    if system in ("torch_cpu", "torch_compile", "jax_jit"):  # W6-W10's peers, run under the peers' Python
        label = {"torch_cpu": "torch CPU eager", "torch_compile": "torch.compile", "jax_jit": "jax.jit"}[system]
        try:
            if system == "jax_jit":
                from benchkit.jax_models import run_jax  # imports jax: only in the peers' Python
                recs = run_jax(workload)
            else:
                recs = run_torch(workload, compiled=system == "torch_compile")
            for rec in recs:
                print(json.dumps({"workload": workload.split("-")[0].upper(), "status": "ok", **rec}), flush=True)
        except ImportError:
            print(json.dumps({"workload": workload.split("-")[0].upper(), "system": label, "status": "not installed"}))
        return
    backend = system.split("_", 1)[1]
    workload, _, arg = workload.partition("-")  # w10-32: W10 at T = 32
    try:
        res = GRAPHC_RUNS[workload](backend, *([int(arg)] if arg else []))
        for rec in res if isinstance(res, list) else [res]:
            rec.setdefault("status", "ok")
            rec["versions"] = gc_versions()
            rec.setdefault("system", f"graphc {backend}")
            print(json.dumps({"workload": workload.upper(), **rec}), flush=True)
    except Exception as e:  # reported as data, like the peers' failures
        print(json.dumps({"workload": workload.upper(), "system": f"graphc {backend}", "status": "failed",
                          "error": f"{type(e).__name__}: {str(e)[:400]}"}), flush=True)


def spawn(cmd, env_extra=None, cwd=None, timeout=900, fields=None):
    """Run one benchmark process; its JSON lines as records (with the process's wall time)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
        out, err, code = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        out, err, code = "", f"timeout after {timeout} s", None
    wall = time.perf_counter() - t0
    recs = []
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            rec["process_wall_s"] = round(wall, 3)
            rec.update(fields or {})
            recs.append(rec)
    if not recs:
        recs.append({"status": "failed", "error": f"exit code {code}, no result line",
                     "stderr_tail": err.strip().splitlines()[-6:], **(fields or {})})
    print(f"# {' '.join(os.path.basename(c) for c in cmd[1:4])}: {wall:.1f} s", file=sys.stderr, flush=True)
    return recs


def peer_systems(py, peers, workload):
    """{key: label} of a peers script's systems, and the set of keys whose package is missing."""
    script = PEER_SCRIPTS[workload]
    code = (f"import sys, json, importlib.util as u; sys.path.insert(0, {peers!r}); m = __import__({script[:-3]!r}); "
            "print(json.dumps({k: v[0] for k, v in m.SYSTEMS.items()})); "
            f"print(json.dumps([p for p in {sorted(set(NEEDS.values()))!r} if u.find_spec(p) is None]))"
            )
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=peers, timeout=120,
                       env={**os.environ, "PEERS_CACHE": os.environ.get("PEERS_CACHE", "/tmp/peers-cache")})
    if p.returncode != 0:
        return {}, set()
    lines = p.stdout.strip().splitlines()
    systems, missing_pkgs = json.loads(lines[-2]), set(json.loads(lines[-1]))
    missing = {k for k in systems if any(k.startswith(pre) and pkg in missing_pkgs for pre, pkg in NEEDS.items())}
    return systems, missing


def w3_cache_env(key, folder):
    """Fresh on-disk caches for one cold/warm pair (the peers' W3 protocol)."""
    if key.startswith("graphc"):
        return {"GRAPHC_CACHE_DIR": os.path.join(folder, "graphc"), "NUMBA_CACHE_DIR": os.path.join(folder, "numba")}
    if key == "torch_compile":
        return {"TORCHINDUCTOR_CACHE_DIR": folder}
    if key.startswith("pytensor"):
        return {"PYTENSOR_FLAGS": f"floatX=float32,base_compiledir={folder}",
                "NUMBA_CACHE_DIR": os.path.join(folder, "numba")}
    if key == "jax_jit":
        return {"JAX_COMPILATION_CACHE_DIR": folder, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    return {}


def run_all(args) -> list[dict]:
    me = os.path.abspath(__file__)
    peers = args.peers if args.peers and os.path.isdir(args.peers) else None
    records = []
    for w in args.workloads:
        specs = [f"w10-{T}" for T in W10_T] if w == "w10" else [w]  # W10: one process per sequence length
        systems = [(f"graphc_{b}", [sys.executable, me, "--system", f"{spec}:graphc_{b}"], None)
                   for spec in specs for b in args.backends] if w != "w0" else []
        if w in ("w6", "w7", "w8", "w9", "w10") and args.peers_python:
            systems += [("torch_cpu", [args.peers_python, me, "--system", f"{spec}:torch_cpu"], None) for spec in specs]
            if w in ("w8", "w9", "w10"):  # the real models beside torch.compile(model) and jax.jit too
                systems += [(key, [args.peers_python, me, "--system", f"{spec}:{key}"], None)
                            for key in ("torch_compile", "jax_jit") for spec in specs]
        if peers and w in PEER_SCRIPTS:  # the GPU workloads measure their references themselves
            found, missing = peer_systems(args.peers_python, peers, w)
            for key in found:
                if key in missing:
                    records.append({"workload": w.upper(), "system": found[key], "status": "not installed"})
                elif not args.quick or key in QUICK_PEERS or w == "w0":
                    systems.append((key, [args.peers_python, PEER_SCRIPTS[w], "--system", key], peers))
        print(f"== {w}: {len(systems)} systems x {args.rounds} rounds", file=sys.stderr, flush=True)
        for rnd in range(1, args.rounds + 1):
            for key, cmd, cwd in systems:
                if w == "w10" and key.startswith("graphc"):  # cold: empty caches for every process
                    folder = tempfile.mkdtemp(prefix="w10-")
                    for rec in spawn(cmd, env_extra=w3_cache_env(key, folder), cwd=cwd, fields={"round": rnd}):
                        rec.setdefault("workload", "W10")
                        records.append(rec)
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                if w != "w3":
                    for rec in spawn(cmd, cwd=cwd, fields={"round": rnd}):
                        rec.setdefault("workload", w.upper())
                        rec.setdefault("system", key)
                        records.append(rec)
                    continue
                if key in ("numpy", "torch_eager"):
                    phases = [("n/a", {})]
                else:
                    folder = tempfile.mkdtemp(prefix=f"w3-{key}-")
                    env = w3_cache_env(key, folder)
                    phases = [("cold", env), ("warm", env)]
                    if key == "jax_jit":  # jax has no on-disk cache by default: both runs compile
                        phases = [("none (default)", {})] + [(f"persistent {c}", e) for c, e in phases]
                for cache, env in phases:
                    for rec in spawn(cmd, env_extra=env, cwd=cwd, fields={"round": rnd, "cache": cache}):
                        rec.setdefault("workload", "W3")
                        rec.setdefault("system", key)
                        records.append(rec)
                if key not in ("numpy", "torch_eager"):
                    shutil.rmtree(folder, ignore_errors=True)
    return records


def main(argv=None) -> int:
    default_peers = os.path.join(os.path.dirname(ROOT), "shared", "peers")
    venv_py = os.path.join(os.environ.get("PEERS_VENV", os.path.expanduser("~/.cache/graphc-peers/venv")),
                           "bin", "python")
    ap = argparse.ArgumentParser(description="graphc's benchmarks beside the peers: W0 bandwidth/GEMM limits, "
                                 "W1 fused elementwise chain, W2 MLP training step, W3 first step in a fresh "
                                 "process, W4 XOR step overhead, W5 softmax/logsumexp.")
    ap.add_argument("-w", "--workloads", default=None,
                    help="comma-separated, e.g. w1,w4 (default: w0-w11; g1-g3 with --backend cuda)")
    ap.add_argument("--backends", default="numba,numpy", help="graphc backends to measure (numba,numpy,cuda)")
    ap.add_argument("--backend", help="one graphc backend (same as --backends NAME)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of separate processes")
    ap.add_argument("--quick", action="store_true", help="1 round, no W0/W3, a few peers")
    ap.add_argument("--peers", default=default_peers, help="folder of the peers' scripts ('' for none)")
    ap.add_argument("--peers-python", default=venv_py if os.path.exists(venv_py) else sys.executable,
                    help="the Python that runs the peers (needs their packages)")
    ap.add_argument("--json", default="bench_results.json", help="where to write every record")
    ap.add_argument("--system", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.system:
        child(args.system)
        return 0
    args.backends = [args.backend] if args.backend else [b for b in args.backends.split(",") if b]
    if args.workloads is None:  # the CPU workloads, or the GPU ones for the cuda backend alone
        args.workloads = ",".join(GPU_WORKLOADS if args.backends == ["cuda"] else WORKLOADS)
    args.workloads = [w.strip().lower() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in WORKLOADS + GPU_WORKLOADS]
    if bad:
        ap.error(f"unknown workloads {bad}; choose from {', '.join(WORKLOADS + GPU_WORKLOADS)}")
    if args.quick:
        args.rounds = 1
        if args.workloads == list(WORKLOADS):
            args.workloads = ["w1", "w2", "w4", "w5"]
    t0 = time.time()
    records = run_all(args)
    head = (f"# graphc benchmarks\n\n{machine()}\n\ncommand: `python tools/bench.py "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}`, {args.rounds} round(s), "
            f"{(time.time() - t0) / 60:.1f} min; peers from {args.peers if args.peers else 'nowhere'} "
            f"run with {args.peers_python}\n")
    text = head + "\n" + tables(records)
    print(text)
    with open(args.json, "w") as f:
        json.dump({"machine": machine(), "records": records}, f, indent=1)
    print(f"(records in {args.json})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

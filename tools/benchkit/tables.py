"""The Markdown report of a run's records."""
from __future__ import annotations

import os
import platform

from .measure import THREADS, median
from .models import W11_BATCH


def _agg(recs, field):
    vals = [r[field] for r in recs if isinstance(r.get(field), (int, float))]
    if not vals:
        return None, None, None
    return median(vals), min(vals), max(vals)


def _fmt(recs, field, digits=2, rng=True):
    m, lo, hi = _agg(recs, field)
    if m is None:
        return "–"
    s = f"{m:,.{digits}f}"
    return s + (f" ({lo:,.{digits}f}–{hi:,.{digits}f})" if rng and len(recs) > 1 else "")


def _groups(records, workload, key=("system",)):
    out = {}
    for r in records:
        if r.get("workload") == workload and r.get("status") == "ok":
            out.setdefault(tuple(r.get(k) for k in key), []).append(r)
    return out


def _groups_any(records) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault((r["workload"], r["system"]), []).append(r)
    return out


def tables(records) -> str:
    lines = []
    add = lines.append
    g = _groups(records, "W0", ("system", "op"))
    if g:
        add("## W0 physical limits (peers' STREAM and GEMM)\n")
        add("| system | op | ms | GB/s or GFLOP/s |\n|---|---|---|---|")
        for (s, op), rs in g.items():
            rate = _fmt(rs, 'gbps', 1) if 'gbps' in rs[0] else _fmt(rs, 'gflops', 0)
            add(f"| {s} | {op} | {_fmt(rs, 'ms')} | {rate} |")
        add("")
    g = _groups(records, "W1")
    if g:
        add("## W1 fused elementwise chain (2**24 float32)\n")
        add("| system | ms/call | eff. GB/s | first call s | cores busy | minor faults/call | max abs err | note |")
        add("|---|---|---|---|---|---|---|---|")
        for (s,), rs in sorted(g.items(), key=lambda kv: _agg(kv[1], "ms")[0]):
            add(f"| {s} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gbps', 2, False)} | {_fmt(rs, 'first_call_s', 2, False)} | "
                f"{_fmt(rs, 'cores_busy', 2, False)} | {_fmt(rs, 'minflt_per_call', 0, False)} | "
                f"{rs[0].get('max_abs_err', float('nan')):.2e} | {rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W2")
    if g:
        add("## W2 MLP 784-512-256-10 training step (batch 256, Adam)\n")
        add("| system | steps/s | ms/step | GFLOP/s | loss 1 → 200 | cores busy | minor faults/step | "
            "traced peak over 50 steps | note |\n|---|---|---|---|---|---|---|---|---|")
        for (s,), rs in sorted(g.items(), key=lambda kv: -_agg(kv[1], "steps_per_s")[0]):
            loss = (f"{rs[0]['loss_first']:.4f} → {rs[0]['loss_200']:.3g}" if "loss_first" in rs[0] else "–")
            peak = f"{rs[0]['traced_peak_bytes']:,} B" if "traced_peak_bytes" in rs[0] else "–"
            add(f"| {s} | {_fmt(rs, 'steps_per_s', 1)} | {_fmt(rs, 'ms_per_step', 2, False)} | "
                f"{_fmt(rs, 'gflops', 0, False)} | {loss} | {_fmt(rs, 'cores_busy', 2, False)} | "
                f"{_fmt(rs, 'minflt_per_call', 0, False)} | {peak} | {rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W3", ("system", "cache"))
    if g:
        add("## W3 build → first step of W2 in a fresh process\n")
        add("| system | cache | build→first step s | import s | process wall s |\n|---|---|---|---|---|")
        for (s, cache), rs in g.items():
            add(f"| {s} | {cache} | {_fmt(rs, 'build_to_first_step_s')} | {_fmt(rs, 'import_s', 2, False)} | "
                f"{_fmt(rs, 'process_wall_s', 2, False)} |")
        add("")
    g = _groups(records, "W4")
    if g:
        add("## W4 XOR 2-8-1 SGD step, full batch of 4\n")
        add("| system | µs/step | loss 1 → 3000 | XOR solved | note |\n|---|---|---|---|---|")
        for (s,), rs in sorted(g.items(), key=lambda kv: _agg(kv[1], "us_per_step")[0]):
            loss = f"{rs[0]['loss_first']:.4f} → {rs[0]['loss_3000']:.3g}" if "loss_3000" in rs[0] else "–"
            add(f"| {s} | {_fmt(rs, 'us_per_step')} | {loss} | {'yes' if rs[0].get('xor_solved') else 'no'} | "
                f"{rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W5", ("system", "op"))
    if g:
        add("## W5 row softmax / logsumexp, (4096, 1000) float32\n")
        add("| system | op | ms | eff. GB/s | cores busy | max abs err | note |\n|---|---|---|---|---|---|---|")
        for (s, op), rs in sorted(g.items(), key=lambda kv: (kv[0][1], _agg(kv[1], "ms")[0])):
            add(f"| {s} | {op} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gbps', 1, False)} | "
                f"{_fmt(rs, 'cores_busy', 2, False)} | {rs[0].get('max_abs_err', float('nan')):.2e} | "
                f"{rs[0].get('note', '')} |")
        add("")
    for w, title in (("W6", "W6 conv2d 3x3 forward + backward, x (64, 16, 16, 16), 32 filters"),
                     ("W7", "W7 LSTM training step, 8 steps (one scan), batch 64, 32 -> 128, Adam"),
                     ("W8", "W8 GPT training step: 2 blocks, d_model 128, 4 heads, context 64, batch 32, AdamW"),
                     ("W9", "W9 LeNet CNN training step: 28x28 digits, conv 5x5 16 and 32, batch 64, SGD momentum")):
        g = _groups(records, w)
        if g:
            add(f"## {title}\n")
            add("| system | ms | GFLOP/s | steps/s | first call s | loss (or sum) 1 | note |\n"
                "|---|---|---|---|---|---|---|")
            for (s_,), rs in sorted(g.items(), key=lambda kv: _agg(kv[1], "ms")[0]):
                add(f"| {s_} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gflops', 1, False) if 'gflops' in rs[0] else '–'} | "
                    f"{_fmt(rs, 'steps_per_s', 1, False) if 'steps_per_s' in rs[0] else '–'} | "
                    f"{_fmt(rs, 'first_call_s', 2, False) if 'first_call_s' in rs[0] else '–'} | "
                    f"{rs[0].get('check', float('nan')):.6g} | {rs[0].get('note', '')} |")
            add("")
    g = _groups(records, "W10", ("system", "T"))
    if g:
        add("## W10 LSTM LM training step (vocab 100, embed 64, 2 layers of 128, batch 32, Adam), cold\n")
        add("| system | T | ms/step | steps/s | cold compile + first step s | loss 1 | note |")
        add("|---|---|---|---|---|---|---|")
        for (s_, T), rs in sorted(g.items(), key=lambda kv: (kv[0][1], _agg(kv[1], "ms")[0])):
            add(f"| {s_} | {T} | {_fmt(rs, 'ms')} | {_fmt(rs, 'steps_per_s', 1, False)} | "
                f"{_fmt(rs, 'first_call_s', 2)} | {rs[0].get('check', float('nan')):.4f} | {rs[0].get('note', '')} |")
        add("")
    g = _groups(records, "W11", ("system", "op"))
    if g:
        add(f"## W11 imported ONNX models, inference on a batch of {W11_BATCH}, beside onnxruntime\n")
        add("| model | system | ms | first call s | max abs err vs onnxruntime | note |\n|---|---|---|---|---|---|")
        for (s_, op), rs in sorted(g.items(), key=lambda kv: (kv[0][1], _agg(kv[1], "ms")[0])):
            add(f"| {op} | {s_} | {_fmt(rs, 'ms', 3)} | "
                f"{_fmt(rs, 'first_call_s', 2, False) if 'first_call_s' in rs[0] else '–'} | "
                f"{rs[0].get('max_abs_err', float('nan')):.1e} | {rs[0].get('note', '')} |")
        add("")
    gpu = [r for r in records if r.get("workload", "").startswith("G") and r.get("status") == "ok"]
    if gpu:
        add("## GPU (backend cuda): G1 W1 chain vs copy bandwidth, G2 GEMM 2048³ vs cuBLAS, G3 W2 step vs torch\n")
        add("| workload | system | ms | GB/s | GFLOP/s | steps/s | note |\n|---|---|---|---|---|---|---|")
        for (w, sys_), rs in _groups_any(gpu).items():
            add(f"| {w} | {sys_} | {_fmt(rs, 'ms')} | {_fmt(rs, 'gbps', 1, False) if 'gbps' in rs[0] else '–'} | "
                f"{_fmt(rs, 'gflops', 0, False) if 'gflops' in rs[0] else '–'} | "
                f"{_fmt(rs, 'steps_per_s', 1, False) if 'steps_per_s' in rs[0] else '–'} | {rs[0].get('note', '')} |")
        add("")
    bad = [r for r in records if r.get("status") not in ("ok", None)]
    if bad:
        add("## Not measured\n")
        for r in bad:
            add(f"- {r.get('workload', '?')} {r.get('system', '?')}: {r.get('status')}"
                + (f" ({r.get('error') or r.get('note')})" if r.get("error") or r.get("note") else ""))
        add("")
    return "\n".join(lines)


def machine() -> str:
    import numpy as np
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import numba
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {numba.__version__}; threads pinned to {THREADS}")

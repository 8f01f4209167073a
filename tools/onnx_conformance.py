"""Run the ONNX backend conformance suite's node tests on graphc and count what passes.

    python tools/onnx_conformance.py                       # numpy and numba: counts per backend and op
    python tools/onnx_conformance.py --backends numpy -k conv
    python tools/onnx_conformance.py --write-expected      # rewrite tests/onnx/expected_failures.txt

Each test is onnx's own (onnx.backend.test: the model, its inputs and outputs; outputs compared at
rtol 1e-3 with exact dtypes). A failure is put in one category by its message: dtype (an element
type graphc does not hold), sequence (sequences, maps, optionals), control flow (If, Loop, Scan),
data-dependent shape, or not yet (an op or attribute the importer lacks). `make onnx-conformance`
runs this; `make test` runs the whole numpy suite and a subset on numba (tests/onnx).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time
import unittest
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = os.path.join(ROOT, "tests", "onnx", "expected_failures.txt")
CONTROL = ("If", "Loop", "Scan", "SequenceMap")


def category(message: str) -> str:
    """The reason class of a failure message."""
    if "element type" in message or ("dtype" in message and "Cast" in message):
        return "dtype"
    if "only tensors" in message or "not a tensor" in message:
        return "sequence"
    if any(f"{op} node" in message for op in CONTROL):
        return "control flow"
    if "known when the model is imported" in message or "sets a shape" in message:
        return "data-dependent shape"
    if "Not equal to tolerance" in message or "Mismatched elements" in message:
        return "numerics"
    return "not yet"


def node_tests(backend: str):
    """(the unittest case class of onnx's node tests for this graphc backend, the test names)."""
    warnings.filterwarnings("ignore")
    import onnx.backend.test

    from graphc.onnx.backend import backend_for
    bt = onnx.backend.test.BackendTest(backend_for(backend), __name__)
    case = bt.test_cases["OnnxBackendNodeModelTest"]
    return case, sorted(m for m in dir(case) if m.startswith("test_") and m.endswith("_cpu"))


def run(backend: str, pattern: str | None = None, shard=(0, 1)) -> dict:
    """{test name: None (passed) or the failure's last line}; shard (k, n): every n-th test from k."""
    case, names = node_tests(backend)
    out = {}
    for n in names[shard[0]::shard[1]]:
        if pattern and not re.search(pattern, n):
            continue
        r = unittest.TestResult()
        case(n).run(r)
        bad = r.errors or r.failures
        text = bad[0][1].strip().splitlines() if bad else []
        if any("Not equal to tolerance" in ln for ln in text):  # numerics: the tolerance and the worst miss
            tol = next(ln.strip() for ln in text if "Not equal to tolerance" in ln)
            worst = [ln.split(":")[-1].strip() for ln in text if "Max absolute difference" in ln]
            out[n] = f"AssertionError: {tol}" + (f", max absolute difference {worst[0]}" if worst else "")
        else:
            out[n] = text[-1][:400] if bad else None
    return out


def light_models(backend: str) -> dict:
    """{model: None (matches onnxruntime) or what went wrong}: the nine 'light' models of the onnx
    wheel (ResNet-50, VGG-19, ...) on a random input."""
    import pathlib

    import numpy as np
    import onnx
    import onnxruntime as ort

    import graphc as gc
    out = {}
    for path in sorted((pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("*.onnx")):
        try:
            m = gc.onnx.load(path)
            x = np.random.default_rng(0).random([d or 1 for d in m.inputs[0].shape], dtype=np.float32)
            got = gc.compile(m.inputs, m.outputs, backend=backend)(x)
            want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
                None, {m.input_names[0]: x})
            err = max(float(np.abs(g - w).max() / (np.abs(w).max() or 1)) for g, w in zip(got, want))
            out[path.stem] = None if err < 1e-4 else f"relative error {err:.1e}"
        except Exception as e:  # reported, like a failed test
            out[path.stem] = f"{type(e).__name__}: {e}"[:200]
    return out


def op_of(test: str) -> str:
    return re.sub(r"_cpu$", "", test)[5:].split("_")[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,numba")
    ap.add_argument("-k", help="only tests whose name matches this regular expression")
    ap.add_argument("--write-expected", action="store_true", help="rewrite the expected-failure list (numpy's)")
    ap.add_argument("--per-op", action="store_true", help="print pass counts per op")
    ap.add_argument("--jobs", type=int, default=1, help="processes per backend (numba compiles dominate)")
    args = ap.parse_args(argv)
    import onnx
    results = {}
    for be in args.backends.split(","):
        t0 = time.time()
        if args.jobs > 1:
            from concurrent.futures import ProcessPoolExecutor
            with ProcessPoolExecutor(args.jobs) as pool:
                shards = [(k, args.jobs) for k in range(args.jobs)]
                parts = pool.map(run, [be] * args.jobs, [args.k] * args.jobs, shards)
                results[be] = {k: v for part in parts for k, v in part.items()}
        else:
            results[be] = run(be, args.k)
        res = results[be]
        passed = sum(v is None for v in res.values())
        cats = collections.Counter(category(v) for v in res.values() if v is not None)
        print(f"{be}: {passed} of {len(res)} node tests pass (onnx {onnx.__version__}, {time.time() - t0:.0f} s); "
              f"failures by reason: {dict(cats.most_common())}")
        if not args.k:
            light = light_models(be)
            bad = {k: v for k, v in light.items() if v is not None}
            print(f"{be}: {len(light) - len(bad)} of {len(light)} light real models match onnxruntime"
                  + (f"; failing: {bad}" if bad else ""))
    if args.per_op:
        ops = sorted({op_of(t) for r in results.values() for t in r})
        print("| op | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
        for op in ops:
            cells = []
            for r in results.values():
                mine = [v for t, v in r.items() if op_of(t) == op]
                cells.append(f"{sum(v is None for v in mine)}/{len(mine)}")
            print(f"| {op} | " + " | ".join(cells) + " |")
    if args.write_expected:
        res = results[args.backends.split(",")[0]]
        with open(EXPECTED, "w") as f:
            f.write("# ONNX node tests graphc is expected to fail (tests/onnx/test_conformance.py marks them\n"
                    "# xfail; one that passes fails the suite, so fixed ones leave the list). Written by\n"
                    "# `python tools/onnx_conformance.py --write-expected`: name, reason category, message.\n")
            for t, v in sorted(res.items()):
                if v is not None:
                    msg = re.sub(r"\s+", " ", v.split(": ", 1)[-1])[:160]
                    f.write(f"{t}\t{category(v)}\t{msg}\n")
        print(f"wrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

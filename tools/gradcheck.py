"""Gradient-check a function of yours against float64 central differences.

    python tools/gradcheck.py FILE.py:FUNCTION --shape 3,4 --shape 4 [--seed 0] [--rtol 1e-6]

FUNCTION takes one placeholder per --shape (float64, random normal values; prefix a shape with
"int:" for integer inputs in [0, 3)) and returns a node; a non-scalar result is contracted with a
random cotangent. Prints the worst relative error; exits 1 if it is above --rtol.
"""
from __future__ import annotations

import argparse
import runpy
import sys

import numpy as np

import graphc as gc


def _array(spec: str, rng):
    kind, _, dims = spec.rpartition(":")
    shape = tuple(int(d) for d in dims.split(",") if d.strip()) if dims.strip() else ()
    if kind == "int":
        return rng.integers(0, 3, shape)
    return rng.normal(size=shape)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="FILE.py:FUNCTION")
    ap.add_argument("--shape", action="append", default=[], help="one input's shape, e.g. 3,4 or int:5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--backend", default="numpy")
    args = ap.parse_args(argv)
    path, _, name = args.target.rpartition(":")
    if not path:
        ap.error("target must be FILE.py:FUNCTION")
    fn = runpy.run_path(path)[name]
    rng = np.random.default_rng(args.seed)
    inputs = [_array(s, rng) for s in args.shape]
    try:
        err = gc.check_grad(fn, inputs, eps=args.eps, rtol=args.rtol, seed=args.seed, backend=args.backend)
    except gc.GradientCheckError as e:
        print(f"FAIL {args.target}: {e}")
        return 1
    print(f"ok {args.target}: worst relative error {err:.3g} (rtol {args.rtol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

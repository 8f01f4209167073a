"""The README's code runs as written, and the examples reach their results."""
from __future__ import annotations

import pathlib
import re
import runpy
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_code_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_xor_example_learns_xor(capsys):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        mod = runpy.run_path(str(ROOT / "examples" / "xor.py"), run_name="xor_test")
    finally:
        sys.path.pop(0)
    acc = mod["main"](["--steps", "600"])
    assert acc == 1.0
    out = capsys.readouterr().out
    first, final = re.search(r"step\s+0\s+loss ([\d.]+)", out), re.search(r"final loss ([\d.]+)", out)
    assert float(final.group(1)) < 0.1 * float(first.group(1))


def test_newton_example_converges_quadratically(capsys):
    mod = runpy.run_path(str(ROOT / "examples" / "newton_logistic_regression.py"), run_name="newton_test")
    newton, gd = mod["main"](["--iters", "6"])
    best = newton[-1]
    excess = [v - best for v in newton]
    assert excess[3] < 1e-3 and excess[5] < 1e-10  # quadratic convergence
    assert gd[6] - best > 1e-2 > gd[-1] - best      # gradient descent: slow, but it gets there
    assert "Newton loss" in capsys.readouterr().out

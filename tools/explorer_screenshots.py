"""The README's two pictures of the explorer: the digits MLP's training step (gc.explore, profiled
on a batch of 64), shot by headless chromium with a kernel selected and with a node selected.

    python tools/explorer_screenshots.py [--out docs]      (make docs runs it)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs"))
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("explorer_screenshots: needs chromium (apt-get install chromium)")
    import mlp_digits
    from datasets import digits

    import graphc as gc
    train = digits()[0]
    trainer = mlp_digits.build("numba")
    page = gc.explore(trainer, os.path.join(tempfile.mkdtemp(), "mlp_digits.html"),
                      feeds=(train[0][:64], train[1][:64]))
    step = trainer.train_step
    kernel = max((k for k in step.kernels if k.kind == "matmul"), key=lambda k: k.index)
    with open(page, encoding="utf-8") as f:
        data = json.loads(re.search(r'id="graph-data">(.*?)</script>', f.read(), re.S).group(1).replace("<\\/", "</"))
    forward = next(st for st in data["stages"] if st["name"] == "forward")
    node = next(i for i, n in forward["nodes"].items() if n["op"] == "matmul")
    shots = {"explorer_kernel.png": f"#kernel={kernel.name}", "explorer_node.png": f"#node={node}&stage=forward"}
    for name, fragment in shots.items():
        target = os.path.join(args.out, name)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--virtual-time-budget=5000", "--window-size=1500,900", f"--screenshot={target}",
                        f"file://{page}{fragment}"], check=True, capture_output=True, timeout=120)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()

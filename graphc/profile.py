"""Per-kernel profiles: time, bytes moved, FLOPs and the rates they imply."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def node_flops(n, shapes) -> int:
    """A rough FLOP count: one per output element for elementwise work, one per input element for a
    reduction, 2 n m k for a product, none for data movement."""
    size = int(np.prod(shapes[n])) if shapes[n] else 1
    kind = n.op.kind
    if kind == "elementwise":
        return size
    if kind == "reduction":
        return int(np.prod(shapes[n.inputs[0]])) if shapes[n.inputs[0]] else 1
    if kind == "matmul":
        a = shapes[n.inputs[0]]
        return 2 * size * (a[-1] if a else 1)
    return 0


@dataclass
class KernelProfile:
    name: str
    ops: list
    seconds: float
    bytes: int
    flops: int

    @property
    def gbps(self) -> float:
        return self.bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds > 0 else 0.0


class Profile(list):
    """KernelProfiles in schedule order; str() is a table."""

    def __str__(self):
        total = sum(k.seconds for k in self) or 1e-30
        rows = [f"{'kernel':<40} {'time us':>10} {'%':>6} {'MB':>9} {'GB/s':>8} {'GFLOP/s':>8}  ops"]
        for k in self:
            rows.append(f"{k.name[:40]:<40} {k.seconds * 1e6:10.1f} {100 * k.seconds / total:6.1f} "
                        f"{k.bytes / 1e6:9.3f} {k.gbps:8.2f} {k.gflops:8.2f}  {' '.join(k.ops)}")
        rows.append(f"{'total':<40} {total * 1e6:10.1f}")
        return "\n".join(rows)


def time_call(fn, repeat: int) -> float:
    """Median seconds of fn() over repeat calls after one warm-up."""
    import time
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))

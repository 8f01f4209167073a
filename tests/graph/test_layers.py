"""Data flows one way down the pipeline: no module imports one above it (imports inside functions
included), but for the arrows listed here with their reasons, which may only shrink."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]

# lower numbers are lower in the pipeline; a module may import its own layer or any below it
LAYERS = [
    ("graphc.errors", 0), ("graphc.dtypes", 0), ("graphc.protocol", 0), ("graphc.rng", 0),
    ("graphc.ir", 1), ("graphc.init", 1),
    ("graphc.ops", 2),
    ("graphc.api", 3), ("graphc.frontend", 3),
    ("graphc.autodiff", 4), ("graphc.functional", 4),
    ("graphc.optim", 5), ("graphc.passes", 5),
    ("graphc.schedule", 6), ("graphc.profile", 6),
    ("graphc.backends", 7),
    ("graphc.function", 8), ("graphc.staged", 8),
    ("graphc.compiler", 9),
    ("graphc.gradcheck", 10), ("graphc.nn", 10),
    ("graphc.train", 11), ("graphc.checkpoint", 11), ("graphc.distributed", 11), ("graphc.viz", 11),
    ("graphc.explore", 11), ("graphc.explore_page", 11),
    ("graphc.onnx", 11),
    ("graphc", 12),  # the package: its namespace
    ("graphc.cli", 13),
]

KNOWN = {
    # the disk cache's key includes graphc's version
    ("graphc.backends.numba.cache", "graphc"),
}


def _layer(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def _module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "backends":
        parts = ["graphc"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _exists(module: str) -> bool:
    parts = module.split(".")
    if parts[:2] == ["graphc", "backends"]:
        parts = parts[1:]
    p = ROOT.joinpath(*parts)
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def imports():
    """(module, imported graphc module) for every import statement in graphc/ and backends/."""
    files = list((ROOT / "graphc").rglob("*.py")) + list((ROOT / "backends").rglob("*.py"))
    for f in files:
        mod = _module_of(f)
        pkg = mod if f.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "graphc":
                        yield mod, a.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "graphc":
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    yield mod, sub if _exists(sub) else target


def test_no_import_points_back_up_the_pipeline():
    edges = set(imports())
    assert len(edges) > 100  # the walk found the imports
    back = {(a, b) for a, b in edges if _layer(b) > _layer(a)}
    assert back - KNOWN == set(), f"imports back up the pipeline: {sorted(back - KNOWN)}"
    assert KNOWN <= back, f"no longer needed, remove from KNOWN: {sorted(KNOWN - back)}"


def test_gradient_rules_passes_and_autodiff_build_with_the_ir_builder_not_the_front_end():
    builders = ("graphc.ops", "graphc.passes", "graphc.autodiff", "graphc.optim", "graphc.compiler")
    front = ("graphc.api", "graphc.frontend")
    users = {(a, b) for a, b in imports()
             if a.startswith(builders) and (b in front or b.startswith("graphc.frontend."))}
    assert users == set(), f"build nodes with graphc.ops.build, not the front end: {sorted(users)}"
    built = {a for a, b in imports() if b == "graphc.ops.build"}
    assert {"graphc.ops.elementwise", "graphc.ops.reduce", "graphc.autodiff", "graphc.passes.simplify"} <= built


def test_the_builder_gives_gradient_rules_nodes_with_numpys_rules():
    import numpy as np

    from graphc.ops import build

    x = build.placeholder((None, 3), "float32")
    y = x * 2.0 + 1  # the builder's operators, weakly typed scalars: still float32
    assert y.dtype == np.float32 and y.shape == (None, 3)
    s = build.sum(build.where(x > 0, x, 0), 1, keepdims=True)
    assert s.shape == (None, 1) and s.op.name == "sum"
    assert build.mean(x, 0).shape == (3,)
    assert build.matmul(build.reshape(x, (-1, 3)), build.constant(np.ones((3, 2), np.float32))).shape == (None, 2)

"""The op registry: every primitive has its rules, and the op tests exercise every primitive."""
from __future__ import annotations

import pytest
from op_cases import CASES

import graphc as gc
from graphc.ir import toposort
from graphc.ops import REGISTRY, Op


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_primitive_has_every_rule(name):
    op = REGISTRY[name]
    assert op.kind in {"leaf", "elementwise", "reduction", "movement", "matmul", "random", "mode", "control"}, name
    assert op.infer.__func__ is not Op.infer.__func__, f"{name}: no shape rule"
    assert op.impl.__func__ is not Op.impl.__func__, f"{name}: no NumPy implementation"
    assert op.__doc__ or type(op).__mro__[1].__doc__, f"{name}: undocumented"


def test_op_tests_cover_every_primitive():
    used = set()
    for case in CASES:
        for variant in case.shapes:
            dtype = case.dtypes[0]
            dts = case.in_dtypes(dtype) if case.in_dtypes else (dtype,) * len(variant)
            phs = [gc.placeholder(case.placeholder_shape(s), d) for s, d in zip(variant, dts)]
            used |= {n.op.name for n in toposort([case.graph(*phs)])}
    # train_switch never reaches a backend: compile resolves it (tests/backends/test_training.py)
    missing = set(REGISTRY) - used - {"parameter", "train_switch"}
    assert not missing, f"primitives with no op test: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(n for n, op in REGISTRY.items() if op.kind != "leaf"))
def test_primitive_has_a_gradient_rule_or_says_it_has_none(name):
    op = REGISTRY[name]
    if op.tuple_valued:  # a scan: differentiating its body takes the driver, graphc.autodiff.reverse_scan
        from graphc import autodiff
        assert op.differentiable and callable(autodiff.reverse_scan)
        return
    if op.composite_grad:  # differentiated through the same value built from primitives
        node_doc = op.composite.__doc__ or ""
        assert op.differentiable and "primitives" in node_doc, name
        return
    if op.differentiable:
        assert op.grad.__func__ is not Op.grad.__func__, f"{name}: no gradient rule"
    # rules live on the primitive (or a base that only primitives of one family share)
    owner = next(c for c in op.__mro__ if "grad" in c.__dict__)
    assert owner is op or owner.__name__ in {"ExtremumReduce", "Op"}, f"{name} inherits {owner.__name__}.grad"


def test_arity_is_checked_when_a_node_is_built():
    x = gc.placeholder((2,), name="x")
    from graphc.ir import make_node
    with pytest.raises(gc.GraphError, match="exp takes 1 input, got 3"):
        make_node(REGISTRY["exp"], (x, x, x))
    with pytest.raises(gc.GraphError, match="where takes 3 inputs, got 2"):
        make_node(REGISTRY["where"], (x > 0, x))


def test_traits_are_consistent():
    """What passes and backends read off an op class agrees with its kind and its code."""
    for name, op in REGISTRY.items():
        if op.fusible:
            assert op.kind in ("elementwise", "random", "movement"), name
            assert op.kind != "elementwise" or getattr(op, "template", "") or hasattr(op, "render"), name
        if op.cheap:
            assert op.fusible, f"{name}: recomputed per element, so it must be fusible"
        if op.loop_reduction or op.row_reduction:
            assert op.kind == "reduction" and not (op.loop_reduction and op.row_reduction), name
        if op.view:
            assert op.kind == "movement" and not op.fusible, name
        if op.tuple_valued or op.projection:  # a loop and its results: never fused, never folded
            assert op.kind == "control" and not op.fusible and not (op.tuple_valued and op.projection), name
    assert {n for n, op in REGISTRY.items() if op.loop_reduction} == {"sum", "prod", "max", "min"}
    assert all(op.kind != "elementwise" or op.fusible for op in REGISTRY.values())

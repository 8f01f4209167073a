"""The fusion pass's dynamic topological order of kernels (passes/fuse.py's _Order), against brute
force: an edge is refused exactly when it would close a cycle, `between` finds exactly the kernel
pairs a third kernel separates, and after every change the positions order every edge."""
from __future__ import annotations

import random

import pytest

from graphc.passes.fuse import _Order


class K:  # a kernel: _Order reads only .id
    def __init__(self, i):
        self.id = i


def _reaches(succ, a, b) -> bool:
    stack, seen = [a], set()
    while stack:
        k = stack.pop()
        if k == b:
            return True
        if k not in seen:
            seen.add(k)
            stack.extend(succ[k])
    return False


def _check(order, succ):
    for a, bs in succ.items():
        for b in bs:
            assert order.pos[a] < order.pos[b], (a, b)
    assert {a: {k.id for k in ks} for a, ks in order.succ.items()} == succ
    assert {b: {k.id for k in ks} for b, ks in order.pred.items()} == \
        {b: {a for a in succ if b in succ[a]} for b in succ}


@pytest.mark.parametrize("seed", range(6))
def test_edges_are_refused_exactly_when_they_close_a_cycle_and_merges_keep_the_order(seed):
    rng = random.Random(seed)
    order, ks, succ = _Order(), {}, {}
    for i in range(40):  # the walk: each new kernel is read by some earlier-made ones
        k = ks[i] = K(i)
        readers = {ks[j] for j in rng.sample(range(i), min(i, rng.randrange(3)))}
        order.add_source(k, readers)
        succ[i] = {r.id for r in readers}
    _check(order, succ)
    refused = added = 0
    for _ in range(300):
        a, b = rng.sample(sorted(succ), 2)
        cycle = _reaches(succ, b, a)
        assert order.add_edges(ks[a], {ks[b]}) is not cycle
        if cycle:
            refused += 1
        else:
            added += 1
            succ[a].add(b)
        _check(order, succ)
    assert refused and added
    merges = 0
    for _ in range(200):
        if len(succ) < 3:
            break
        a, b = rng.sample(sorted(succ), 2)
        third = any(_reaches(succ, x, b) for x in succ[a] if x != b) or \
            any(_reaches(succ, x, a) for x in succ[b] if x != a)
        assert order.between(ks[a], ks[b]) is third
        if third:
            continue
        order.merge(ks[a], ks[b])
        merges += 1
        succ[a] = (succ[a] | succ.pop(b)) - {a, b}
        for x in succ:
            if b in succ[x]:
                succ[x].discard(b)
                if x != a:
                    succ[x].add(a)
        _check(order, succ)
    assert merges > 5

"""einsum: NumPy's subscript notation, reduced to transposes, reshapes, sums and one batched
matmul per pair of operands (so a contraction runs on the GEMM kernels)."""
from __future__ import annotations

import builtins
import math
import string

from ..errors import ShapeError
from ..ir import Node, user_location
from ..ops.base import fmt_shape
from ..ops.build import as_node, broadcast_to, matmul, mul, reshape, sum, transpose

__all__ = ["einsum"]


def _parse(spec: str, operands: list[Node]) -> tuple[list[str], str]:
    spec = spec.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ShapeError(f"einsum: {spec!r} names {len(terms)} operands, {len(operands)} were given", user_location())
    used = set(lhs.replace(".", "").replace(",", "")) | set(out.replace(".", ""))
    bad = sorted(c for c in used if c not in string.ascii_letters)
    if bad:
        raise ShapeError(f"einsum: {spec!r}: subscripts must be letters (and one '...'), got {bad}", user_location())
    free = [c for c in string.ascii_letters if c not in used]
    n_ell = builtins.max([x.ndim - len(t.replace("...", "")) for t, x in zip(terms, operands) if "..." in t],
                         default=0)
    ell = "".join(free[:n_ell])
    subs = []
    for t, x in zip(terms, operands):
        if "..." in t:
            k = x.ndim - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != x.ndim or t.count(".") or len(set(t)) != len(t):
            raise ShapeError(f"einsum: subscripts {t!r} do not fit an operand of shape {fmt_shape(x.shape)} "
                             "(one letter per axis, none repeated within an operand)", user_location())
        subs.append(t)
    if arrow:
        out = out.replace("...", ell)
        missing = [c for c in out if not builtins.any(c in s for s in subs)]
        if missing or len(set(out)) != len(out):
            raise ShapeError(f"einsum: output {out!r} names {missing or 'a letter twice'}", user_location())
    else:  # NumPy's implicit output: the broadcast letters, then the letters seen once, sorted
        counts = {}
        for s in subs:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return subs, out


def _sizes(subs, operands) -> dict:
    size = {}
    for s, x in zip(subs, operands):
        for c, d in zip(s, x.shape):
            if c in size and size[c] != d and d != 1 and size[c] != 1 and None not in (d, size[c]):
                raise ShapeError(f"einsum: '{c}' is {fmt_shape((size[c],))} in one operand and "
                                 f"{fmt_shape((d,))} in another", user_location())
            if c not in size or size[c] == 1 or (size[c] is None and d is not None):
                size[c] = d
    return size


def _permute(x: Node, have: str, want: str) -> Node:
    return x if have == want else transpose(x, [have.index(c) for c in want])


def _merged(letters, size):
    dims = [size[c] for c in letters]
    return None if None in dims else math.prod(dims)


def _broadcast(x: Node, s: str, batch, size) -> Node:
    """x with its size-1 batch axes broadcast to the other operand's size."""
    shape = tuple(size[c] if c in batch and d == 1 else d for c, d in zip(s, x.shape))
    return x if shape == x.shape else broadcast_to(x, shape)


def _pair(a: Node, sa: str, b: Node, sb: str, keep: str, size: dict) -> tuple[Node, str]:
    """a, b contracted over the letters they share that `keep` does not name."""
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]
    if not contract:  # an outer product with shared batch letters: a broadcast multiply
        out = "".join(batch + left + right)
        a2 = reshape(_permute(a, sa, "".join(batch + left)), [size[c] if c in sa else 1 for c in out])
        b2 = reshape(_permute(b, sb, "".join(batch + right)), [size[c] if c in sb else 1 for c in out])
        return mul(a2, b2), out
    groups = [batch, left, contract, right]
    unknown = [c for c in sa + sb if size[c] is None]
    if len(set(unknown)) > 1:
        raise ShapeError(f"einsum: at most one letter of a contraction may have a size known only at run "
                         f"time, got {sorted(set(unknown))}", user_location())
    a, b = _broadcast(a, sa, batch, size), _broadcast(b, sb, batch, size)
    for x, s in ((a, sa), (b, sb)):
        for c, d in zip(s, x.shape):
            if d is not None and size[c] is not None and d != size[c]:
                raise ShapeError(f"einsum: '{c}' has size {d} in {fmt_shape(x.shape)} and {size[c]} elsewhere "
                                 "(only batch letters broadcast)", user_location())
    B, M, K, N = (-1 if _merged(g, size) is None else _merged(g, size) for g in groups)
    a3 = reshape(_permute(a, sa, "".join(batch + left + contract)), (B, M, K))
    b3 = reshape(_permute(b, sb, "".join(batch + contract + right)), (B, K, N))
    out = "".join(batch + left + right)
    shape = [size[c] for c in out]
    return reshape(matmul(a3, b3), [-1 if d is None else d for d in shape]), out


def einsum(spec: str, *operands) -> Node:
    """np.einsum's meaning for one or more operands: letters name axes, a letter in several
    operands and not in the output is summed over, '...' stands for broadcast leading axes, and
    without '->' the output is the letters seen once, sorted. A repeated letter within one operand
    (a diagonal) is not supported. Operands are contracted left to right, each pair as one batched
    matmul; a letter only one operand has and the output lacks is summed first."""
    xs = [as_node(x) for x in operands]
    if not xs:
        raise ShapeError("einsum needs at least one operand", user_location())
    subs, out = _parse(spec, xs)
    size = _sizes(subs, xs)
    # sum away letters that only one operand has and the output lacks
    for i, (s, x) in enumerate(zip(subs, xs)):
        elsewhere = set(out).union(*(subs[j] for j in range(len(xs)) if j != i))
        gone = [c for c in s if c not in elsewhere]
        if gone:
            xs[i] = sum(x, tuple(s.index(c) for c in gone))
            subs[i] = "".join(c for c in s if c not in gone)
    acc, sa = xs[0], subs[0]
    for j in range(1, len(xs)):
        later = set(out).union(*subs[j + 1:])
        acc, sa = _pair(acc, sa, xs[j], subs[j], "".join(c for c in set(sa) | set(subs[j]) if c in later), size)
    return _permute(acc, sa, out)

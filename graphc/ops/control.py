"""Control flow: scan, a loop whose step is a graph of its own (JAX's lax.scan), and the projection
that picks one of its results.

A scan node has no array of its own: it stands for the loop, and scan_output nodes (one per result
someone reads) carry the arrays. Its results, in order: the final carries, the stacked per-step
outputs ys, and the stacked carries entering each step (what the gradient reads; computed only
when some node reads them). Executing it is the staged runner's work (graphc/staged.py), the same
on every backend: the body is compiled once by the backend and called once per step.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, GraphError, ShapeError
from ..ir import consumers, fmt_shape, make_node, new_uid, substitute, toposort
from .base import Op

NO_VALUE = np.dtype("V1")  # the dtype of a node that stands for several results (a scan)


class Body:
    """A scan's step as a closed graph: placeholders for the carries, for one step's slice of each
    xs and for the captured outer values; its outputs the new carries and the step's ys. Two bodies
    are equal only if they are the same object (each trace makes a new one)."""

    __slots__ = ("carry", "xs", "captured", "carry_out", "ys", "residuals", "serial")
    _count = 0

    def __init__(self, carry, xs, captured, carry_out, ys):
        self.carry, self.xs, self.captured = tuple(carry), tuple(xs), tuple(captured)
        self.carry_out, self.ys = tuple(carry_out), tuple(ys)
        # what a reverse scan reads from the forward one instead of recomputing it: the products
        # that depend on the step's inputs (the cheap elementwise work around them is recomputed),
        # or a product's sum with other terms when that sum is all that reads it (an LSTM's gates
        # x @ W_ih + h @ W_hh: the forward has it in a buffer anyway), and the values of ops whose
        # gradient reads them (an LSTM's sigmoid and tanh gates: five transcendentals per element
        # each backward step would compute again). The backward reads only those it needs (a
        # gate sum that only feeds saved gates is not stacked).
        own = set(self.carry) | set(self.xs)
        depends = set(own)
        nodes = self.nodes
        users = consumers(nodes)
        outs = set(self.outputs)
        residuals = []
        for n in nodes:
            if n not in own and any(i in depends for i in n.inputs):
                depends.add(n)
                if n.op.kind == "matmul":
                    while n not in outs and len(users[n]) == 1 and users[n][0].op.name == "add" \
                            and users[n][0].shape == n.shape and users[n][0].dtype == n.dtype:
                        n = users[n][0]
                    if not any(r is n for r in residuals):
                        residuals.append(n)
                elif n.op.grad_reads_output and n not in outs:
                    residuals.append(n)
        self.residuals = tuple(residuals)
        Body._count += 1
        self.serial = Body._count

    @property
    def inputs(self) -> tuple:
        """The body's placeholders in the order a step feeds them: carries, x slices, captured."""
        return self.carry + self.xs + self.captured

    @property
    def outputs(self) -> tuple:
        return self.carry_out + self.ys

    @property
    def nodes(self) -> list:
        return toposort(list(self.outputs))

    def evaluate(self, arrays) -> list:
        """The step in NumPy, node by node with each op's meaning: its outputs, then its residuals,
        for these inputs."""
        vals = dict(zip(self.inputs, arrays))
        for n in toposort(list(self.outputs) + list(self.residuals)):
            if n not in vals:
                vals[n] = n.data if n.op.name == "constant" else n.op.impl(*(vals[i] for i in n.inputs),
                                                                            **n.attrs)
        return [np.asarray(vals[o]) for o in self.outputs + self.residuals]

    def instantiate(self, carry, xs, captured) -> tuple[list, list, list]:
        """(new carries, ys, residuals) of the step applied to these nodes (the body's graph cloned
        onto them)."""
        mapping = dict(zip(self.inputs, list(carry) + list(xs) + list(captured)))
        outs = substitute(list(self.outputs) + list(self.residuals), mapping)
        nc, no = len(self.carry_out), len(self.outputs)
        return outs[:nc], outs[nc:no], outs[no:]

    def __repr__(self):
        return (f"body{self.serial}(carry {len(self.carry)}, xs {len(self.xs)}, captured {len(self.captured)}, "
                f"ys {len(self.ys)})")


def _fits(static, shape) -> bool:
    """A value of shape `shape` may stand where `static` is declared (None: any size)."""
    return len(static) == len(shape) and all(a is None or b is None or a == b for a, b in zip(static, shape))


def placeholder_like(v):
    """A new placeholder of v's shape and dtype."""
    from .leaves import Placeholder
    return make_node(Placeholder, (), {"shape": v.shape, "dtype": v.dtype}, uid=new_uid())


def close_body(carry_in, xs_in, carry_out, ys) -> tuple[Body, list]:
    """(the closed body, the outer values it captures) for a step traced on placeholders carry_in
    and xs_in: every non-constant node the step reads that does not depend on those placeholders
    (a parameter, an outer value, a loop-invariant expression) becomes a captured placeholder, fed
    the outer value on every step."""
    own = set(carry_in) | set(xs_in)
    order = toposort(list(carry_out) + list(ys))
    depends = set(own)
    for n in order:
        if n not in own and any(i in depends for i in n.inputs):
            depends.add(n)
    free = {}
    for n in order:
        if n in depends and n not in own:
            for i in n.inputs:
                if i not in depends and i.op.name != "constant" and i not in free:
                    free[i] = placeholder_like(i)
    for r in list(carry_out) + list(ys):  # an output that is itself loop-invariant
        if r not in depends and r.op.name != "constant" and r not in free:
            free[r] = placeholder_like(r)
    outs = substitute(list(carry_out) + list(ys), free)
    body = Body(carry_in, xs_in, list(free.values()), outs[:len(carry_out)], outs[len(carry_out):])
    return body, list(free)


def make_scan(body: Body, init, xs, captured, reverse: bool, length, loc=None):
    """The scan node of body over xs from init (captured: the outer values of its captured
    placeholders), checked: carries against the body's, xs against their slices, the length."""
    return make_node(Scan, tuple(init) + tuple(xs) + tuple(captured),
                     {"body": body, "reverse": bool(reverse), "length": length}, loc=loc)


def output(scan, k: int):
    """Result k of a scan: see the module's docstring for the order."""
    return make_node(ScanOutput, (scan,), {"index": int(k)}, loc=scan.loc)


def outputs(scan) -> tuple[list, list]:
    """(final carries, stacked ys) of a scan node."""
    body = scan.attrs["body"]
    nc, ny = len(body.carry), len(body.ys)
    return [output(scan, j) for j in range(nc)], [output(scan, nc + q) for q in range(ny)]


class Scan(Op):
    """The loop: carry, y = body(carry, xs[i], captured) for each step i (last to first with
    reverse); its results are read through scan_output nodes."""

    name = "scan"
    kind = "control"
    tuple_valued = True

    @classmethod
    def infer(cls, inputs, attrs):
        body, length = attrs["body"], attrs["length"]
        nc, nx = len(body.carry), len(body.xs)
        if len(inputs) != len(body.inputs):
            raise GraphError(f"{len(inputs)} inputs for a body of {len(body.inputs)} placeholders")
        for j, (v, ph) in enumerate(zip(inputs[:nc], body.carry)):
            if v.dtype != ph.dtype or not _fits(ph.shape, v.shape):
                raise ShapeError(f"initial carry {j} is {fmt_shape(v.shape)} {v.dtype}; the step takes "
                                 f"{fmt_shape(ph.shape)} {ph.dtype}")
        for j, (ph, out) in enumerate(zip(body.carry, body.carry_out)):
            if out.dtype != ph.dtype:
                raise DTypeError(f"the step returns carry {j} as {out.dtype}, but it came in as {ph.dtype}: "
                                 f"a carry keeps its dtype (cast it in the step)")
            if out.shape != ph.shape:
                raise ShapeError(f"the step returns carry {j} of shape {fmt_shape(out.shape)}, but it came in "
                                 f"as {fmt_shape(ph.shape)}: a carry keeps its shape")
        lengths = set()
        for j, (v, ph) in enumerate(zip(inputs[nc:nc + nx], body.xs)):
            if v.ndim != ph.ndim + 1 or v.dtype != ph.dtype or not _fits(ph.shape, v.shape[1:]):
                raise ShapeError(f"xs {j} is {fmt_shape(v.shape)} {v.dtype}; the step reads slices "
                                 f"{fmt_shape(ph.shape)} {ph.dtype}")
            if v.shape[0] is not None:
                lengths.add(v.shape[0])
        if length is not None:
            lengths.add(length)
        if len(lengths) > 1:
            raise ShapeError(f"xs and length disagree on the number of steps: {sorted(lengths)}")
        if nx == 0 and length is None:
            raise ShapeError("a scan without xs needs length=")
        for v, ph in zip(inputs[nc + nx:], body.captured):
            if v.dtype != ph.dtype or not _fits(ph.shape, v.shape):
                raise GraphError(f"captured value {v.label} {fmt_shape(v.shape)} does not fit its placeholder")
        return (), NO_VALUE

    @staticmethod
    def steps(node):
        """The static number of steps (None: known at run time)."""
        body = node.attrs["body"]
        if node.attrs["length"] is not None:
            return node.attrs["length"]
        nc = len(body.carry)
        return next((v.shape[0] for v in node.inputs[nc:nc + len(body.xs)] if v.shape[0] is not None), None)

    @classmethod
    def result_specs(cls, node) -> list[tuple]:
        """(shape, dtype) of each result, in order: final carries, stacked ys, stacked carries,
        stacked residuals."""
        body, T = node.attrs["body"], cls.steps(node)
        nc = len(body.carry)
        carries = [(v.shape, v.dtype) for v in node.inputs[:nc]]
        ys = [((T,) + y.shape, y.dtype) for y in body.ys]
        res = [((T,) + r.shape, r.dtype) for r in body.residuals]
        return carries + ys + [((T,) + s, d) for s, d in carries] + res

    @classmethod
    def result_name(cls, node, k: int) -> str:
        """What result k of a scan is, in words: final carry j, ys j, saved carries j or residual j."""
        body = node.attrs["body"]
        nc, ny = len(body.carry), len(body.ys)
        if k < nc + ny:
            return f"final carry {k}" if k < nc else f"ys {k - nc}"
        return f"saved carries {k - nc - ny}" if k < 2 * nc + ny else f"residual {k - 2 * nc - ny}"

    @classmethod
    def describe(cls, node) -> str:
        """The loop in a few words, for drawings."""
        T = cls.steps(node)
        return f"{'?' if T is None else T} steps{', reverse' if node.attrs['reverse'] else ''}"

    @classmethod
    def impl(cls, *args, body, reverse, length):
        """The loop in NumPy, every result in order (the reference; backends run graphc.staged)."""
        nc, nx = len(body.carry), len(body.xs)
        carry, xs, caps = list(args[:nc]), args[nc:nc + nx], list(args[nc + nx:])
        T = length if length is not None else xs[0].shape[0]
        ys = [[] for _ in body.ys + body.residuals]
        saved = [[None] * T for _ in range(nc)]
        for i in (range(T - 1, -1, -1) if reverse else range(T)):
            for j in range(nc):
                saved[j][i] = carry[j]
            outs = body.evaluate(carry + [x[i] for x in xs] + caps)
            carry = outs[:nc]
            for q, y in enumerate(outs[nc:]):
                ys[q].append(y)
        if reverse:
            ys = [v[::-1] for v in ys]
        stacked = [np.stack(v) if v else np.zeros((0,) + tuple(d or 0 for d in y.shape), y.dtype)
                   for v, y in zip(ys, body.ys + body.residuals)]
        saved_arr = [np.stack(v) if T else np.zeros((0,) + np.shape(c), np.asarray(c).dtype)
                     for v, c in zip(saved, args[:nc])]
        ny = len(body.ys)
        return tuple(np.asarray(c) for c in carry) + tuple(stacked[:ny]) + tuple(saved_arr) + tuple(stacked[ny:])

    # its gradient rule is graphc.autodiff.reverse_scan: differentiating the body takes the driver


class ScanOutput(Op):
    """Result `index` of a scan (final carries, stacked ys, stacked carries, stacked residuals)."""

    name = "scan_output"
    kind = "control"
    arity = 1
    projection = True

    @classmethod
    def infer(cls, inputs, attrs):
        (scan,) = inputs
        if scan.op is not Scan:
            raise GraphError(f"scan_output reads a scan, not {scan.op.name}")
        specs = Scan.result_specs(scan)
        k = attrs["index"]
        if not 0 <= k < len(specs):
            raise GraphError(f"a scan with {len(specs)} results has no result {k}")
        return specs[k]

    @classmethod
    def impl(cls, results, *, index):
        return results[index]

    @classmethod
    def grad(cls, node, g) -> tuple:
        return (g,)  # autodiff keeps it as the cotangent of the scan's result `index`

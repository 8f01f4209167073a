"""Movement primitives: reshape, transpose, broadcast, slice, gather, concat, pad."""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import is_int, result_type
from ..errors import DTypeError, ShapeError
from ..ir import make_node
from . import build
from .base import Op, check_run_time_broadcast, fmt_shape


def _resolve(shape, like):
    """A target shape whose None entries are read from `like`'s run-time shape."""
    return tuple(like.shape[i] if d is None else d for i, d in enumerate(shape))


def _check_like(inputs, shape):
    """None entries of a target shape need a second input of the same rank to read them from."""
    if any(d is None for d in shape):
        if len(inputs) != 2 or inputs[1].ndim != len(shape):
            raise ShapeError(f"target shape {fmt_shape(shape)} has run-time (None) dims but no "
                             "reference tensor of that rank to take them from")


class Reshape(Op):
    """reshape(x[, like]; shape[, src]): one -1 is inferred. A None entry i is a run-time size:
    like's dim i when `like` is given, else x's dim src[i] (squeeze/expand_dims on None dims)."""

    name = "reshape"
    kind = "movement"
    view = True
    value_inputs = 1

    @classmethod
    def infer(cls, inputs, attrs):
        x, shape, src = inputs[0], attrs["shape"], attrs.get("src")
        if src is not None:
            if len(src) != len(shape) or any(d is None and not 0 <= a < x.ndim
                                             for d, a in zip(shape, src)):
                raise ShapeError(f"reshape src {src} does not fit target {shape} and input "
                                 f"{fmt_shape(x.shape)}")
        else:
            _check_like(inputs, shape)
        if sum(d == -1 for d in shape) > 1:
            raise ShapeError(f"can only infer one dimension, got target {shape}")
        if any(d is not None and d < -1 for d in shape):
            raise ShapeError(f"negative dimension in target shape {shape}")
        known_in = None not in x.shape
        size_in = math.prod(x.shape) if known_in else None
        size_out = math.prod(d for d in shape if d not in (None, -1))
        out = []
        for d in shape:
            if d == -1:
                if size_in is None or None in shape:
                    out.append(None)
                elif size_out == 0 or size_in % size_out:
                    raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} to {shape}")
                else:
                    out.append(size_in // size_out)
            else:
                out.append(d)
        if known_in and None not in out and math.prod(out) != size_in:
            raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} ({size_in} elements) to "
                             f"{fmt_shape(tuple(out))}")
        return tuple(out), x.dtype

    @classmethod
    def impl(cls, x, like=None, *, shape, src=None):
        if like is not None:
            shape = _resolve(shape, like)
        elif src is not None:
            shape = tuple(x.shape[a] if d is None else d for d, a in zip(shape, src))
        return np.reshape(x, shape)

    @classmethod
    def grad(cls, node, g):
        return (reshape_to(g, node.inputs[0]),) + (None,) * (len(node.inputs) - 1)


class Transpose(Op):
    name = "transpose"
    kind = "movement"
    arity = 1
    fusible = True     # inside a loop kernel, its input (a kernel input) is read at the permuted index
    index_read = True

    @classmethod
    def read_index(cls, node, out_index):
        x = node.inputs[0]
        src = [""] * x.ndim
        for q, p in enumerate(node.attrs["perm"]):
            src[p] = "0" if x.shape[p] == 1 else out_index[q]
        return src

    @classmethod
    def infer(cls, inputs, attrs):
        (x,), perm = inputs, attrs["perm"]
        if sorted(perm) != list(range(x.ndim)):
            raise ShapeError(f"permutation {perm} does not fit a {x.ndim}-d tensor {fmt_shape(x.shape)}")
        return tuple(x.shape[p] for p in perm), x.dtype

    @classmethod
    def impl(cls, x, *, perm):
        return np.transpose(x, perm)

    @classmethod
    def grad(cls, node, g):
        return (build.transpose(g, tuple(int(i) for i in np.argsort(node.attrs["perm"]))),)


class BroadcastTo(Op):
    """broadcast_to(x[, like]; shape): None entries of shape come from `like` at run time."""

    name = "broadcast_to"
    kind = "movement"
    fusible = True  # read with broadcasting inside a loop: an index transform
    cheap = True
    value_inputs = 1
    template = "{0}"  # fused as an index transform: the input is read with broadcasting

    @classmethod
    def compute_dtype(cls, node):
        return node.dtype

    @classmethod
    def infer(cls, inputs, attrs):
        x, shape = inputs[0], attrs["shape"]
        _check_like(inputs, shape)
        if x.ndim > len(shape):
            raise ShapeError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(shape)}")
        for dx, ds in zip(x.shape[::-1], shape[::-1]):
            if dx not in (1, None) and ds is not None and dx != ds:
                raise ShapeError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(shape)}")
        return tuple(shape), x.dtype

    @classmethod
    def check_run_time(cls, node, in_shapes, out_shape):
        x = node.inputs[0]
        check_run_time_broadcast(node, [(x, x.shape, in_shapes[0])], out_shape)

    @classmethod
    def impl(cls, x, like=None, *, shape):
        return np.broadcast_to(x, _resolve(shape, like) if like is not None else shape)

    @classmethod
    def grad(cls, node, g):
        return (g,) + (None,) * (len(node.inputs) - 1)  # the driver sums g back to x's shape


class Slice(Op):
    """Basic slicing: attrs index holds one (start, stop, step) per axis, Python slice semantics.

    With attr piece = (axis, k) and reference inputs r_0..r_n after x (read for their run-time
    shapes only), the slice along axis is instead [sum of r_j's sizes for j < k, that + r_k's
    size): piece k of a concat of the r_j, whose sizes may all be known only at run time."""

    name = "slice"
    kind = "movement"
    value_inputs = 1
    index_read = True  # inside a loop kernel when its bounds are known: x read at start + step * i

    @classmethod
    def read_index(cls, node, out_index):
        """x's index start + step * i per axis, where every axis is of a known size or taken whole
        (a run-time batch); None for a piece of a concat or a partial slice of a run-time size."""
        x = node.inputs[0]
        if node.attrs.get("piece") is not None:
            return None
        src = []
        for d, t, i in zip(x.shape, node.attrs["index"], out_index):
            if d is None:
                if not (t[0] in (None, 0) and t[1] is None and t[2] in (None, 1)):
                    return None
                src.append(i)
            elif d == 1:
                src.append("0")
            else:
                start, _, step = slice(*t).indices(d)
                src.append(i if (start, step) == (0, 1) else f"{start} + {i}" if step == 1 else
                           f"{start} + {step} * {i}")
        return src

    @classmethod
    def infer(cls, inputs, attrs):
        x, refs, index = inputs[0], inputs[1:], attrs["index"]
        piece = attrs.get("piece")
        if len(index) != x.ndim:
            raise ShapeError(f"slice of {len(index)} axes does not fit {fmt_shape(x.shape)}")
        if (piece is None) != (not refs) or (piece is not None and not (
                0 <= piece[0] < x.ndim and 0 <= piece[1] < len(refs) and all(r.ndim == x.ndim for r in refs))):
            raise ShapeError(f"slice piece {piece} does not fit {fmt_shape(x.shape)} and {len(refs)} references")
        out = []
        for q, (d, (start, stop, step)) in enumerate(zip(x.shape, index)):
            if piece is not None and q == piece[0]:
                out.append(refs[piece[1]].shape[q])
            elif step == 0:
                raise ShapeError("slice step cannot be zero")
            elif d is None:
                out.append(None)
            else:
                out.append(len(range(*slice(start, stop, step).indices(d))))
        if piece is not None and None not in x.shape and None not in (r.shape[piece[0]] for r in refs):
            if sum(r.shape[piece[0]] for r in refs) != x.shape[piece[0]]:
                raise ShapeError(f"slice pieces of sizes {[r.shape[piece[0]] for r in refs]} do not add up to "
                                 f"axis {piece[0]} of {fmt_shape(x.shape)}")
        return tuple(out), x.dtype

    @staticmethod
    def piece_bounds(sizes, k) -> tuple[int, int, int]:
        """(start, stop, step) of piece k among pieces of these sizes, laid end to end."""
        start = sum(sizes[:k])
        return start, start + sizes[k], 1

    @classmethod
    def bounds(cls, node, shapes, q) -> tuple[int, int, int]:
        """(start, stop, step) of the slice on axis q for these concrete shapes (by node)."""
        piece = node.attrs.get("piece")
        if piece is not None and q == piece[0]:
            return cls.piece_bounds([shapes[r][q] for r in node.inputs[1:]], piece[1])
        return slice(*node.attrs["index"][q]).indices(shapes[node.inputs[0]][q])

    @classmethod
    def impl(cls, x, *refs, index, piece=None):
        if piece is not None:
            axis, k = piece
            at = cls.piece_bounds([r.shape[axis] for r in refs], k)
            index = tuple(at if q == axis else t for q, t in enumerate(index))
        return x[tuple(slice(*t) for t in index)]

    @classmethod
    def grad(cls, node, g):
        x = node.inputs[0]
        piece = node.attrs.get("piece")
        if piece is not None:  # g in its place among zeros shaped like the other pieces
            axis, k = piece
            refs = node.inputs[1:]
            parts = [g if j == k else build.cast(build.zeros_like(r), g.dtype) for j, r in enumerate(refs)]
            return (build.concat(parts, axis),) + (None,) * len(refs)
        return (make_node(Unslice, _with_ref(g, x), {"index": node.attrs["index"], "shape": x.shape}),)


def _with_ref(v, x):
    """Inputs (v,) plus x as the run-time shape reference when x's shape has None dims."""
    return (v, x) if None in x.shape else (v,)


def reshape_to(v, x):
    """v reshaped to x's shape, with x's run-time dims read from x."""
    if v.shape == x.shape:
        return v
    if sum(d is None for d in x.shape) <= 1:
        return make_node(Reshape, (v,), {"shape": tuple(-1 if d is None else d for d in x.shape)})
    return make_node(Reshape, (v, x), {"shape": x.shape})


class Unslice(Op):
    """The adjoint of slice: zeros of `shape` with g written at the sliced positions."""

    name = "unslice"
    kind = "movement"
    value_inputs = 1
    index_read = True  # inside a loop kernel when its slice is of step 1 and known bounds

    @classmethod
    def _bounds(cls, node):
        """(start, stop) per axis, None for a run-time axis taken whole; None if not so readable."""
        out = []
        for d, t in zip(node.shape, node.attrs["index"]):
            if d is None:
                if not (t[0] in (None, 0) and t[1] is None and t[2] in (None, 1)):
                    return None
                out.append(None)
            else:
                start, stop, step = slice(*t).indices(d)
                if step != 1:
                    return None
                out.append((start, max(start, stop), d))
        return out

    @classmethod
    def read_index(cls, node, out_index):
        b = cls._bounds(node)
        if b is None:
            return None
        return [i if s is None or s[0] == 0 else f"{i} - {s[0]}" for s, i in zip(b, out_index)]

    @classmethod
    def read_guard(cls, node, out_index):
        conds = [f"{s[0]} <= {i}" if s[1] == s[2] else f"{i} < {s[1]}" if s[0] == 0 else f"{s[0]} <= {i} < {s[1]}"
                 for s, i in zip(cls._bounds(node), out_index) if s is not None and (s[0], s[1]) != (0, s[2])]
        return " and ".join(conds) or None

    @classmethod
    def infer(cls, inputs, attrs):
        _check_like(inputs, attrs["shape"])
        return attrs["shape"], inputs[0].dtype

    @classmethod
    def impl(cls, g, like=None, *, index, shape):
        out = np.zeros(_resolve(shape, like) if like is not None else shape, g.dtype)
        out[tuple(slice(*t) for t in index)] = g
        return out

    @classmethod
    def grad(cls, node, g):
        return (make_node(Slice, (g,), {"index": node.attrs["index"]}),) + (None,) * (len(node.inputs) - 1)


class Take(Op):
    """take(x, indices; axis): gather along one axis (NumPy's np.take; negative indices wrap once)."""

    name = "take"
    kind = "movement"
    arity = 2

    @classmethod
    def infer(cls, inputs, attrs):
        x, idx = inputs
        axis = attrs["axis"]
        if not is_int(idx.dtype):
            raise DTypeError(f"indices must be int32 or int64, got {idx.dtype}")
        if x.shape[axis] == 0:
            raise ShapeError(f"cannot take from an empty axis {axis} of shape {fmt_shape(x.shape)}")
        return x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype

    @classmethod
    def impl(cls, x, idx, *, axis):
        return np.take(x, idx, axis=axis)

    @classmethod
    def grad(cls, node, g):
        x, idx = node.inputs
        inputs = (g, idx) + ((x,) if None in x.shape else ())
        return (make_node(ScatterAdd, inputs, {"axis": node.attrs["axis"], "shape": x.shape}), None)


class ScatterAdd(Op):
    """The adjoint of take: zeros of `shape` with g added at indices along axis (repeats add up)."""

    name = "scatter_add"
    kind = "movement"
    value_inputs = 2

    @classmethod
    def infer(cls, inputs, attrs):
        g, idx = inputs[0], inputs[1]
        if not is_int(idx.dtype):
            raise DTypeError(f"indices must be int32 or int64, got {idx.dtype}")
        shape, axis = attrs["shape"], attrs["axis"]
        if any(d is None for d in shape) and (len(inputs) != 3 or inputs[2].ndim != len(shape)):
            raise ShapeError(f"scatter_add to {fmt_shape(shape)} needs a reference for its None dims")
        want = shape[:axis] + idx.shape + shape[axis + 1:]
        if len(g.shape) != len(want) or any(a is not None and b is not None and a != b
                                            for a, b in zip(g.shape, want)):
            raise ShapeError(f"scatter_add of {fmt_shape(g.shape)} into {fmt_shape(shape)} at indices "
                             f"{fmt_shape(idx.shape)} along axis {axis}")
        return shape, g.dtype

    @classmethod
    def impl(cls, g, idx, like=None, *, axis, shape):
        out = np.zeros(_resolve(shape, like) if like is not None else shape, g.dtype)
        np.add.at(out, (slice(None),) * axis + (idx,), g)
        return out

    @classmethod
    def grad(cls, node, g):
        return (make_node(Take, (g, node.inputs[1]), {"axis": node.attrs["axis"]}),) + \
            (None,) * (len(node.inputs) - 1)


class Concat(Op):
    name = "concat"
    kind = "movement"

    @classmethod
    def infer(cls, inputs, attrs):
        axis = attrs["axis"]
        if not inputs:
            raise ShapeError("concat needs at least one tensor")
        nd = inputs[0].ndim
        if any(x.ndim != nd for x in inputs):
            raise ShapeError("concat needs tensors of one rank, got " +
                             ", ".join(fmt_shape(x.shape) for x in inputs))
        out = []
        for k in range(nd):
            dims = [x.shape[k] for x in inputs]
            if k == axis:
                out.append(None if None in dims else sum(dims))
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise ShapeError(f"concat along axis {axis}: shapes differ off that axis: " +
                                     ", ".join(fmt_shape(x.shape) for x in inputs))
                out.append(known.pop() if known else None)
        return tuple(out), result_type(*(x.dtype for x in inputs))

    @classmethod
    def impl(cls, *xs, axis):
        return np.concatenate(xs, axis=axis, dtype=result_type(*(x.dtype for x in xs)))

    @classmethod
    def grad(cls, node, g):
        axis = node.attrs["axis"]
        sizes = [x.shape[axis] for x in node.inputs]
        if sum(d is None for d in sizes) > 1:  # offsets known only at run time: from the inputs' sizes
            index = ((None, None, None),) * g.ndim
            return tuple(make_node(Slice, (g,) + tuple(node.inputs), {"index": index, "piece": (axis, k)})
                         for k in range(len(sizes)))
        # offsets from the start before a run-time size, from the end after it
        k = sizes.index(None) if None in sizes else len(sizes)
        out, off = [], 0
        for i, d in enumerate(sizes):
            if i < k:
                lo, hi = off, off + d
                off += d
            elif i == k:
                lo, hi = off, -sum(sizes[k + 1:]) or None
            else:
                rest = sum(sizes[i:])
                lo, hi = -rest, (-rest + d) or None
            index = tuple((lo, hi, 1) if a == axis else (None, None, None) for a in range(g.ndim))
            out.append(make_node(Slice, (g,), {"index": index}))
        return tuple(out)


class Pad(Op):
    """Constant padding: attrs pad_width is one (before, after) pair per axis, value the fill."""

    name = "pad"
    kind = "movement"
    arity = 1

    @classmethod
    def infer(cls, inputs, attrs):
        (x,), pw = inputs, attrs["pad_width"]
        if len(pw) != x.ndim or any(lo < 0 or hi < 0 for lo, hi in pw):
            raise ShapeError(f"pad_width {pw} does not fit {fmt_shape(x.shape)} (one non-negative "
                             "(before, after) pair per axis)")
        return tuple(None if d is None else d + lo + hi for d, (lo, hi) in zip(x.shape, pw)), x.dtype

    @classmethod
    def impl(cls, x, *, pad_width, value):
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    @classmethod
    def grad(cls, node, g):
        index = tuple((lo, -hi if hi else None, 1) for lo, hi in node.attrs["pad_width"])
        return (make_node(Slice, (g,), {"index": index}),)

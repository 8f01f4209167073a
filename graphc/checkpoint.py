"""Checkpoints: parameters and optimizer state in one .npz, written atomically, checked on load.

gc.save writes to a temporary file in the same folder, flushes it to disk and renames it over the
target, so a crash at any moment leaves either the old checkpoint or the new one, never half a
file. gc.load checks every name, shape and dtype before it changes any parameter.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from .errors import GraphError
from .ir import Node, user_location

FORMAT = "graphc-checkpoint-1"


class CheckpointError(GraphError, ValueError):
    """A checkpoint does not fit what it is loaded into (names, shapes or dtypes)."""


def named_state(obj) -> dict[str, Node]:
    """The parameters a checkpoint of obj holds, by name.

    obj: a gc.nn.Module (paths such as '0.W'), an optimizer ('lr', 'step', '<i>.m'), a Trainer
    (model and optimizer), a compiled Function (its parameters by name; random keys left out), a
    dict of name -> parameter, or a list of parameters (names '0', '1', ...)."""
    from .function import Function
    from .nn import Module
    from .optim import Optimizer
    from .train import Trainer

    if isinstance(obj, Trainer):
        return obj.named_state()
    if isinstance(obj, Module):
        out = obj.named_state()
    elif isinstance(obj, Optimizer):
        out = obj.state()
    elif isinstance(obj, Function):
        out = by_label([p for p in obj.program.parameters if p.data.role != "rng"])
    elif isinstance(obj, dict):
        out = dict(obj)
    elif isinstance(obj, Node):
        out = {"0": obj}
    elif isinstance(obj, (list, tuple)):
        out = {str(i): p for i, p in enumerate(obj)}
    else:
        raise CheckpointError(f"cannot checkpoint a {type(obj).__name__}: pass a model, optimizer, Trainer, "
                              "compiled function, dict or list of parameters", user_location())
    for k, p in out.items():
        if not isinstance(k, str) or not isinstance(p, Node) or p.op.name != "parameter":
            raise CheckpointError(f"checkpoint entry {k!r} must map a name to a parameter, got {p!r}",
                                  user_location())
    return out


def by_label(params) -> dict[str, Node]:
    """Parameters by their labels; two parameters with one label make an error that names them."""
    out: dict[str, Node] = {}
    for p in params:
        if p.label in out and out[p.label] is not p:
            raise CheckpointError(f"two parameters are named {p.label!r}; give them distinct names "
                                  "(gc.parameter(..., name=...)) to checkpoint them", user_location())
        out[p.label] = p
    return out


def save(path, obj) -> str:
    """Write obj's parameters (see named_state) to path (.npz), atomically. Returns the path."""
    state = named_state(obj)
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = {name: np.array(p.value, order="C") for name, p in state.items()}  # 0-d stays 0-d
    arrays["__format__"] = np.array(FORMAT)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def load(path, obj=None, strict: bool = True):
    """Read a checkpoint. With obj, copy each array into obj's parameter of that name after checking
    them all (names, shapes, dtypes; strict=False tolerates missing and extra names) — on any
    mismatch nothing changes. Without obj, return the dict of arrays."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path += ".npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__format__"}
        fmt = str(z["__format__"]) if "__format__" in z.files else None
    if fmt is not None and fmt != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {fmt!r} (this graphc reads {FORMAT})",
                              user_location())
    if obj is None:
        return arrays
    state = named_state(obj)
    problems = []
    if strict:
        problems += [f"missing from the checkpoint: {k} {tuple(state[k].shape)} {state[k].dtype}"
                     for k in state if k not in arrays]
        problems += [f"in the checkpoint but not in the model: {k} {arrays[k].shape} {arrays[k].dtype}"
                     for k in arrays if k not in state]
    for k, p in state.items():
        a = arrays.get(k)
        if a is None:
            continue
        if a.shape != p.shape:
            problems.append(f"{k}: checkpoint has shape {a.shape}, the parameter {p.label} has {p.shape}")
        elif a.dtype != p.dtype:
            problems.append(f"{k}: checkpoint has dtype {a.dtype}, the parameter {p.label} has {p.dtype}")
    if problems:
        raise CheckpointError(f"{path} does not fit {type(obj).__name__} (nothing was loaded):\n  "
                              + "\n  ".join(problems), user_location())
    for k, p in state.items():
        if k in arrays:
            np.copyto(p.data.array, arrays[k])
    return obj

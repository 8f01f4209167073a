"""Checkpoints: parameters and optimizer state in one .npz, written atomically, checked on load.

gc.save writes to a temporary file in the same folder, flushes it to disk and renames it over the
target, so a crash at any moment leaves either the old checkpoint or the new one, never half a
file. gc.load checks every name, shape and dtype before it changes any parameter.

The file: arrays stored as a0, a1, ... with their names in a string array `names` (names are data,
never np.savez keywords, so any name works), and `format`. Loading never unpickles: a file that is
not such a checkpoint (empty, truncated, damaged, an object array) is a CheckpointError naming it.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from .errors import CheckpointError
from .ir import Node, user_location

__all__ = ["CheckpointError", "load", "named_state", "read", "save"]

FORMAT = "graphc-checkpoint-2"
OLD_FORMAT = "graphc-checkpoint-1"  # arrays stored under their names, beside __format__


def named_state(obj) -> dict[str, Node]:
    """The parameters a checkpoint of obj holds, by name.

    obj: anything with a named_state() method — a gc.nn.Module (paths such as '0.W'), an optimizer
    ('lr', 'step', '<i>.m'), a Trainer (model and optimizer), a compiled Function (its parameters by
    name; random keys left out) — or a dict of name -> parameter, or a list of parameters (names
    '0', '1', ...)."""
    if callable(getattr(obj, "named_state", None)):
        out = obj.named_state()
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


def save(path, obj) -> str:
    """Write obj's parameters (see named_state) to path (.npz), atomically. Returns the path.

    Data parallel (gc.distributed.init() called, more than one rank): rank 0 writes, and every rank
    returns once the file is there (the ranks hold equal parameters)."""
    state = named_state(obj)
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    from . import distributed
    world = distributed.current()
    if world is not None and world.size > 1:
        try:
            if world.is_root:
                _write(path, state)
        finally:
            world.comm.Barrier()
        return path
    _write(path, state)
    return path


def _write(path: str, state: dict) -> None:
    names = list(state)
    arrays = {f"a{k}": np.array(state[n].value, order="C") for k, n in enumerate(names)}  # 0-d stays 0-d
    arrays["names"] = np.array(names, dtype=str) if names else np.zeros(0, "<U1")
    arrays["format"] = np.array(FORMAT)
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


def load(path, obj=None, strict: bool = True):
    """Read a checkpoint. With obj, copy each array into obj's parameter of that name after checking
    them all (names, shapes, dtypes; strict=False tolerates missing and extra names) — on any
    mismatch nothing changes. Without obj, return the dict of arrays."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path += ".npz"
    arrays = read(path)
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


def read(path: str) -> dict[str, np.ndarray]:
    """The arrays of the checkpoint at path by name, or a CheckpointError saying why not."""
    def bad(why):
        return CheckpointError(f"{path} is not a readable graphc checkpoint: {why}", user_location())
    if not os.path.isfile(path):
        raise bad("no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = list(z.files)
            if "format" in files and "names" in files:
                fmt = str(z["format"])
                if fmt != FORMAT:
                    raise CheckpointError(f"{path}: unknown checkpoint format {fmt!r} (this graphc reads "
                                          f"{FORMAT} and {OLD_FORMAT})", user_location())
                names = z["names"]
                if names.dtype.kind != "U" or names.ndim != 1 or sorted(files) != sorted(
                        ["format", "names"] + [f"a{k}" for k in range(len(names))]):
                    raise bad("its table of names does not match its arrays")
                if len(set(names.tolist())) != len(names):
                    raise bad("a name appears twice")
                arrays = {str(n): z[f"a{k}"] for k, n in enumerate(names)}
            elif "__format__" in files and str(z["__format__"]) == OLD_FORMAT:
                arrays = {k: z[k] for k in files if k != "__format__"}
            else:
                raise bad("it has no graphc format marker")
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):  # an object array: graphc never unpickles
            raise bad("it holds a pickled object array, which graphc never loads") from None
        raise bad(str(e)) from None
    except Exception as e:  # a damaged file: zipfile's BadZipFile, EOFError, OSError, struct, zlib, ...
        raise bad(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise bad(f"array {k!r} has dtype {a.dtype}, not a parameter's")
    return arrays

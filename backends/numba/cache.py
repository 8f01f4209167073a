"""The content-addressed module cache: generated source is written once under GRAPHC_CACHE_DIR
and imported, so numba's own disk cache (cache=True) serves a second process."""
from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import sys
import tempfile

import numba
import numpy as np

import graphc


def cache_dir() -> str:
    """GRAPHC_CACHE_DIR, else the user's cache directory."""
    d = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "graphc")
    os.makedirs(d, exist_ok=True)
    return d


# generated modules import these by path, so their source is part of every key
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "intrinsics.py")) as _f:
    _INTRINSICS = _f.read()


def module_key(source: str, extra: str = "") -> str:
    """The cache key: the canonical source plus every version that changes what it compiles to
    (extra: a backend's own, e.g. numba-cuda's version)."""
    h = hashlib.sha256()
    for part in (source, graphc.__version__, numba.__version__, np.__version__, sys.version, _INTRINSICS, extra):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def load(source: str, extra: str = ""):
    """(module, path, reused): import the module for this source, writing it if it is new."""
    key = module_key(source, extra)
    name = f"graphc_gen_{key}"
    if name in sys.modules:  # the same graph compiled earlier in this process
        mod = sys.modules[name]
        return mod, mod.__file__, True
    folder = os.path.join(cache_dir(), key)
    path = os.path.join(folder, f"{name}.py")
    reused = os.path.exists(path)
    if not reused:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)  # atomic: a concurrent writer never leaves half a file
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    # numba's compiler makes millions of short-lived objects: Python's cyclic collector, left on,
    # walks the whole heap again and again meanwhile (1.5 s of the 8 s W3 took). Nothing made here
    # is a cycle that must be freed before the end of the compile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        spec.loader.exec_module(mod)  # compiles every kernel now (explicit signatures)
    except Exception:
        del sys.modules[name]
        raise
    finally:
        if collecting:
            gc.enable()
    return mod, path, reused

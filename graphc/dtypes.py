"""The dtypes graphc supports and NumPy's promotion rules between them and Python scalars."""
from __future__ import annotations

import numpy as np

from .errors import DTypeError

float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

SUPPORTED = (float32, float64, int32, int64, bool_)
FLOATS = (float32, float64)
INTS = (int32, int64)


def as_dtype(d) -> np.dtype:
    """Normalize 'float32', np.float32, float, bool, ... to a supported np.dtype."""
    try:
        dt = np.dtype(d)
    except TypeError as e:
        raise DTypeError(f"not a dtype: {d!r}") from e
    if dt not in SUPPORTED:
        names = ", ".join(str(s) for s in SUPPORTED)
        raise DTypeError(f"dtype {dt} is not supported; graphc supports {names}")
    return dt


def is_float(dt) -> bool:
    return np.dtype(dt).kind == "f"


def is_int(dt) -> bool:
    return np.dtype(dt).kind in "iu"


def result_type(*args) -> np.dtype:
    """NumPy's promotion of dtypes and scalars (NEP 50: Python scalars are weak, NumPy scalars are not)."""
    dt = np.result_type(*args)
    if dt not in SUPPORTED:
        # e.g. int32 with a uint64 NumPy scalar; keep to the supported set the way NumPy widens
        dt = float64 if dt.kind in "fc" else int64
    return dt


def float_result(dt) -> np.dtype:
    """dtype of a floating-point function of `dt`: floats keep theirs, ints and bools go to float64."""
    dt = np.dtype(dt)
    return dt if dt.kind == "f" else float64

"""`math` for kernels on numba's CUDA simulator, with the GPU's (and NumPy's) IEEE results.

On the simulator a kernel is plain Python, and Python's math raises where the GPU returns a value
(log(0) is -inf, exp(1000) is inf, sqrt(-1) is NaN). Generated modules import this module as
`math` only when NUMBA_ENABLE_CUDASIM is set; on a GPU they use math (libdevice)."""
import math as _math

import numpy as _np


def _ieee(fn):
    def f(*args):
        with _np.errstate(all="ignore"):
            return fn(*args)
    f.__name__ = fn.__name__
    return f


exp = _ieee(_np.exp)
expm1 = _ieee(_np.expm1)
log = _ieee(_np.log)
log1p = _ieee(_np.log1p)
log2 = _ieee(_np.log2)
log10 = _ieee(_np.log10)
sqrt = _ieee(_np.sqrt)
sin = _ieee(_np.sin)
cos = _ieee(_np.cos)
tan = _ieee(_np.tan)
tanh = _ieee(_np.tanh)
sinh = _ieee(_np.sinh)
cosh = _ieee(_np.cosh)
pow = _ieee(_np.power)  # noqa: A001 - math's name
isfinite = _np.isfinite
isnan = _np.isnan
isinf = _np.isinf


def erf(x):
    # float32 in, float32 out, as libdevice's erff
    return type(x)(_math.erf(x)) if _math.isfinite(x) or _math.isinf(x) else x


def __getattr__(name):  # anything else: Python's own
    return getattr(_math, name)

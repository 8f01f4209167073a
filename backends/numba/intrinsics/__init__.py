"""numba intrinsics the generated modules import (by this path): typed and lowered to LLVM directly,
so using them costs a kernel or a driver next to nothing to compile.

bits (bit casts, ldexp, maxnum, nonneg), calls (@kernel, kcall, pcall), blas (gemm) and views
(arena workspaces, reshape/transpose views, ints).
"""
from .bits import f32_as_i32, fmax, i32_as_f32, ldexp_f32, nonneg, radd
from .blas import gemm
from .calls import CHUNKS_MAX, CHUNKS_PER_THREAD, kcall, kernel, launch_threads, pcall
from .views import arena_view, ints, permuted, reshaped, transposed

__all__ = ["CHUNKS_MAX", "CHUNKS_PER_THREAD", "arena_view", "f32_as_i32", "fmax", "gemm", "i32_as_f32", "ints",
           "kcall", "kernel", "launch_threads", "ldexp_f32", "nonneg", "pcall", "permuted", "radd", "reshaped",
           "transposed"]

"""What the code-generating backends (numba, cuda) share: kernel sources and the per-op render rules."""

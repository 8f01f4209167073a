"""The contract between compile()/Function and a backend: a backend module declares its fusion
policy (FUSION) and build(program) -> Executable, where compile() has already scheduled the
program by that policy (program.kernels); Function uses nothing else of it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class Fusion:
    """A backend's fusion policy. kernels: compile() runs the fusion pass (elementwise work grouped
    into loop kernels); rows: also a row reduction and the elementwise work reading it as one
    "rows" kernel (backends whose kernels loop over rows: numba); batched_views: a swap of the last
    two axes that only matmuls read is a view for batches too, not only for matrices (backends
    whose products take each batch's matrix strided: numba's BLAS calls)."""

    kernels: bool = False
    rows: bool = False
    batched_views: bool = False


NO_FUSION = Fusion()


class Mirror(ABC):
    """A device backend's copy of a parameter's array (graphc.ir.Cell.mirror), which the backend
    creates and keeps current for its own calls. Everyone else sees the host array through these."""

    @abstractmethod
    def handed_out(self, host) -> None:
        """The host array is about to be read, or given to someone who may write it: copy a newer
        device copy into it first, and from then on treat the device copy as stale."""

    @abstractmethod
    def host_read(self, host) -> None:
        """A host backend is about to read the host array: copy a newer device copy into it first."""

    @abstractmethod
    def host_wrote(self) -> None:
        """A host backend wrote the host array: the device copy is stale."""


class Executable(ABC):
    """What a backend's build(program) returns: a compiled program that Function calls."""

    device: ClassVar[bool] = False     # parameters live in device memory (a graphc.ir.Cell.mirror)
    takes_out: ClassVar[bool] = False  # run(feeds, out={position: array}) fills the caller's arrays

    kernels: list  # the schedule's kernels, in order (graphc.schedule.Kernel)

    @abstractmethod
    def run(self, feeds: list, out: dict | None = None) -> list:
        """The outputs for these checked feeds; parameter updates applied in place, all or none."""

    def run_same(self, args) -> list | None:
        """run(args) when the feeds are exactly like the last call's (already checked), on a path
        cheaper than run's; None when they are not (or the backend has no such path), and the
        caller checks them and calls run."""
        return None

    @contextmanager
    def stepper(self, feed_shapes):
        """call(feeds, out) -> outputs, for many calls in a row with feeds of these shapes (a scan's
        steps): a backend may hold what it prepares for them (a plan, its argument list) between the
        calls. By default each call is run()."""
        yield (lambda feeds, out: self.run(feeds, out=out)) if self.takes_out else (lambda feeds, out: self.run(feeds))

    @abstractmethod
    def output_shapes(self, feeds: list) -> list[tuple]:
        """The concrete shape of each output for these feeds."""

    @abstractmethod
    def source(self) -> str:
        """The generated module (code-generating backends) or the graph's text."""

    def kernel_source(self, kernel) -> str:
        """The generated code that runs this kernel (its functions), or '' where there is none."""
        return ""

    @abstractmethod
    def profile(self, feeds: list, repeat: int):
        """Each kernel run alone on these feeds (no parameter changes): a graphc.profile.Profile."""

    @abstractmethod
    def cache_info(self) -> dict:
        """Where the compiled code lives and whether this build reused cached work."""


class Backend(Protocol):
    """A backend module (graphc.backends.<name>)."""

    FUSION: Fusion

    def build(self, program) -> Executable: ...

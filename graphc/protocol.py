"""The contract between compile()/Function and a backend: a backend module declares its fusion
policy (FUSION) and build(program) -> Executable; Function uses nothing else of it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class Fusion:
    """A backend's fusion policy. kernels: compile() runs the fusion pass (elementwise work grouped
    into loop kernels); rows: also a row reduction and the elementwise work reading it as one
    "rows" kernel (backends whose kernels loop over rows: numba)."""

    kernels: bool = False
    rows: bool = False


NO_FUSION = Fusion()


class Executable(ABC):
    """What a backend's build(program) returns: a compiled program that Function calls."""

    device: ClassVar[bool] = False     # parameters live in device memory (graphc.ir.Cell.device)
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

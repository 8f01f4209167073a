"""Seeds: one process-wide sequence so that scripts are reproducible without passing seeds around.

Initializers and dropout layers that get no seed draw the next one from here; `gc.seed(n)` restarts
the sequence, so the same script builds the same weights and masks on every run.
"""
from __future__ import annotations

import numpy as np

_state = {"base": 0, "count": 0}


def seed(n: int) -> None:
    """Restart graphc's seed sequence (initial weights and dropout keys of later layers)."""
    _state["base"], _state["count"] = int(n), 0


def next_seed() -> int:
    """The next seed of the sequence."""
    _state["count"] += 1
    return int(np.random.SeedSequence([_state["base"], _state["count"]]).generate_state(1, np.uint64)[0] >> 1)


def generator(seed) -> np.random.Generator:
    """A NumPy generator for seed (an int, a Generator, or None: the next seed of the sequence)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(next_seed() if seed is None else seed)


def key_for(seed) -> int:
    """A random key (int64 >= 0) for the counter-based generator: keys of different seeds start far
    apart, so two dropout layers never share numbers even though each key advances by 1 per step."""
    s = next_seed() if seed is None else int(seed)
    return int(np.random.SeedSequence([s, 0x6772617068]).generate_state(1, np.uint64)[0] >> 1)

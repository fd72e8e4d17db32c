"""Simulated out-of-memory: an attempt raises `SimulatedOOM` (a MemoryError) with probability `p`,
as a device too small for the model would (p2pfl-style node errors, https://github.com/p2pfl/p2pfl).

Drawn from generator(seed, "fault", "oom", round, client, epoch, attempt); `p: 1` with `clients`
models devices that never fit.
"""

from dataclasses import dataclass
from typing import ClassVar

from fedsweep.failures import SimulatedOOM
from fedsweep.faults.transient import Transient


@dataclass(frozen=True, kw_only=True)
class OOM(Transient):
    """Raise `SimulatedOOM` on an attempt with probability `p` (only for `clients`, if given)."""

    p: float = 0.05
    error: ClassVar[type[Exception]] = SimulatedOOM
    kind: ClassVar[str] = "oom"

"""Simulated out-of-memory: an attempt raises `SimulatedOOM` (a MemoryError) with probability `p`,
as a device too small for the model would (p2pfl-style node errors, https://github.com/p2pfl/p2pfl).

Drawn from generator(seed, "fault", "oom", round, client, epoch, attempt); `p: 1` with `clients`
models devices that never fit.
"""

from dataclasses import dataclass

from fedsweep.faults.base import (
    ClientCtx,
    Fault,
    SimulatedOOM,
    bernoulli,
    client_ids,
    probability,
    set_field,
    targets,
    where,
)


@dataclass(frozen=True, kw_only=True)
class OOM(Fault):
    """Raise `SimulatedOOM` on an attempt with probability `p` (only for `clients`, if given)."""

    p: float = 0.05
    clients: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        set_field(self, "p", probability(self, "p"))
        set_field(self, "clients", client_ids(self, "clients"))

    def before_epoch(self, ctx: ClientCtx) -> None:
        """Run out of memory if this attempt's coin says so."""
        coords = (ctx.seed, "fault", "oom", ctx.round, ctx.client, ctx.epoch, ctx.attempt)
        if targets(self.clients, ctx.client) and bernoulli(self.p, *coords):
            raise SimulatedOOM(f"injected out of memory ({where(ctx)})")

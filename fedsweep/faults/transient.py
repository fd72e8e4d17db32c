"""Transient client failures: an attempt fails with probability `p`, so a retry usually gets past it.

The random node errors of p2pfl's fault-tolerance scenarios (https://github.com/p2pfl/p2pfl) and the
`failures` Flower hands to `aggregate_fit`. Each attempt is an independent draw from
generator(seed, "fault", "transient", round, client, epoch, attempt).
"""

from dataclasses import dataclass
from typing import ClassVar

from fedsweep.failures import TransientFailure
from fedsweep.faults.base import (
    ClientCtx,
    Fault,
    bernoulli,
    client_ids,
    probability,
    set_field,
    targets,
    where,
)


@dataclass(frozen=True, kw_only=True)
class Transient(Fault):
    """Raise `TransientFailure` on an attempt with probability `p` (only for `clients`, if given)."""

    p: float = 0.1
    clients: tuple[int, ...] | None = None
    # What a failing attempt raises, and the name its draws are seeded with (OOM reuses the rest).
    error: ClassVar[type[Exception]] = TransientFailure
    kind: ClassVar[str] = "transient"

    def __post_init__(self) -> None:
        set_field(self, "p", probability(self, "p"))
        set_field(self, "clients", client_ids(self, "clients"))

    def before_epoch(self, ctx: ClientCtx) -> None:
        """Fail this attempt if its coin says so."""
        coords = (ctx.seed, "fault", self.kind, ctx.round, ctx.client, ctx.epoch, ctx.attempt)
        if targets(self.clients, ctx.client) and bernoulli(self.p, *coords):
            raise self.error(f"injected {self.kind} failure ({where(ctx)})")

"""Stragglers (systems heterogeneity): each round a `fraction` of the selected clients complete only
x local epochs, x uniform in [1, E], and/or run `delay_s` slower per epoch.

Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (FedProx), MLSys,
https://arxiv.org/abs/1812.06127, Section 5.2: FedAvg drops such clients, FedProx aggregates their
partial work (`aggregation.stragglers: drop | partial`, fedsweep/policy.py). Who straggles is drawn
from generator(seed, "fault", "straggler", round, client); x from (..., "epochs", round, client).
"""

from dataclasses import dataclass

import torch

from fedsweep.faults.base import (
    ClientCtx,
    ClientRound,
    Fault,
    bernoulli,
    interruptible_sleep,
    nonnegative,
    probability,
    set_field,
)
from fedsweep.rng import generator


@dataclass(frozen=True, kw_only=True)
class Stragglers(Fault):
    """Per round a `fraction` of clients run x ~ U{1..E} epochs (if `partial`), `delay_s` slower per epoch."""

    fraction: float = 0.5
    partial: bool = True
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "fraction", probability(self, "fraction"))
        set_field(self, "delay_s", nonnegative(self, "delay_s"))
        set_field(self, "partial", bool(self.partial))

    def is_straggler(self, ctx: ClientRound) -> bool:
        """Whether the client straggles this round."""
        return bernoulli(self.fraction, ctx.seed, "fault", "straggler", ctx.round, ctx.client)

    def epochs_to_run(self, ctx: ClientRound) -> int:
        """x uniform in [1, local_epochs] for a partial straggler; local_epochs otherwise."""
        if not (self.partial and self.is_straggler(ctx)):
            return ctx.local_epochs
        gen = generator(ctx.seed, "fault", "straggler", "epochs", ctx.round, ctx.client)
        return int(torch.randint(1, ctx.local_epochs + 1, (), generator=gen))

    def before_epoch(self, ctx: ClientCtx) -> None:
        """A straggler is also `delay_s` slower per epoch."""
        if self.delay_s > 0 and self.is_straggler(ctx):
            interruptible_sleep(self.delay_s)

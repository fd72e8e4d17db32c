"""Stragglers (systems heterogeneity): each round a `fraction` of the selected clients complete only
x local epochs, x uniform in [1, E], and/or run `delay_s` slower per epoch.

Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (FedProx), MLSys,
https://arxiv.org/abs/1812.06127, Section 5.2: FedAvg drops such clients, FedProx aggregates their
partial work (`aggregation.stragglers: drop | partial`, fedsweep/rounds/policy.py). Who straggles is drawn
from generator(seed, "fault", "straggler", round, client); x from (..., "epochs", round, client).

`from_systems: true` takes the slowness from the system model instead (conf/systems/, with a
`systems.deadline_s`), as FedProx's systems heterogeneity is meant: a device does the work it can
finish by the deadline. A client straggles when its simulated device cannot finish its E epochs (or
τ steps) in time, and then runs x = max(1, what fits) of them; `fraction` is not used. A straggler
whose single epoch does not fit either is cut by the deadline (not trained). Not in the yaml, so
existing cells keep their keys: `+faults.from_systems=true`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    """Per round a `fraction` of clients (or those the system model says) run x ~ U{1..E} epochs (or
    what fits), if `partial`, and `delay_s` slower per epoch."""

    fraction: float = 0.5
    partial: bool = True
    delay_s: float = 0.0
    from_systems: bool = False

    def __post_init__(self) -> None:
        set_field(self, "fraction", probability(self, "fraction"))
        set_field(self, "delay_s", nonnegative(self, "delay_s"))
        set_field(self, "partial", bool(self.partial))
        set_field(self, "from_systems", bool(self.from_systems))

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """`from_systems` needs a simulated deadline to measure the devices against."""
        super().check_config(config, key=key)
        if config[key].get("from_systems") and (config.get("systems") or {}).get("deadline_s") is None:
            raise ValueError(
                f"{key}.from_systems needs a simulated deadline: set systems=fleet systems.deadline_s=SECONDS"
            )

    def is_straggler(self, ctx: ClientRound) -> bool:
        """Whether the client straggles this round."""
        if self.from_systems:
            return ctx.affordable is not None and ctx.affordable < ctx.local_epochs
        return bernoulli(self.fraction, ctx.seed, "fault", "straggler", ctx.round, ctx.client)

    def epochs_to_run(self, ctx: ClientRound) -> int:
        """x uniform in [1, local_epochs] for a partial straggler (with `from_systems`: what its device
        can do by the deadline, at least 1); local_epochs otherwise."""
        if not (self.partial and self.is_straggler(ctx)):
            return ctx.local_epochs
        if self.from_systems:
            return max(1, ctx.affordable or 0)
        gen = generator(ctx.seed, "fault", "straggler", "epochs", ctx.round, ctx.client)
        return int(torch.randint(1, ctx.local_epochs + 1, (), generator=gen))

    def before_epoch(self, ctx: ClientCtx) -> None:
        """A straggler is also `delay_s` slower per epoch."""
        if self.delay_s > 0 and self.is_straggler(ctx):
            interruptible_sleep(self.delay_s)

    def before_batched_epoch(self, ctx: ClientCtx) -> float:
        """The straggler's delay, not slept (a batch decides: fedsweep/faults/base.py)."""
        return self.delay_s if self.delay_s > 0 and self.is_straggler(ctx) else 0.0

"""Permanent client failures: the listed clients, plus a seeded `fraction` of all, fail every attempt
of every round (a device that never comes back, e.g. p2pfl's killed nodes, https://github.com/p2pfl/p2pfl).

Membership is drawn once per client from generator(seed, "fault", "permanent", client).
"""

from dataclasses import dataclass

from fedsweep.failures import PermanentFailure
from fedsweep.faults.base import ClientCtx, Fault, bernoulli, client_ids, probability, set_field, where


@dataclass(frozen=True, kw_only=True)
class Permanent(Fault):
    """Raise `PermanentFailure` for `clients` and for each client drawn with probability `fraction`."""

    clients: tuple[int, ...] = ()
    fraction: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "clients", client_ids(self, "clients") or ())
        set_field(self, "fraction", probability(self, "fraction"))

    def is_failed(self, *, seed: int, client: int) -> bool:
        """Whether `client` is permanently failed under `seed`."""
        return client in self.clients or bernoulli(self.fraction, seed, "fault", "permanent", client)

    def before_epoch(self, ctx: ClientCtx) -> None:
        """Fail every attempt of a failed client."""
        if self.is_failed(seed=ctx.seed, client=ctx.client):
            raise PermanentFailure(f"injected permanent client failure ({where(ctx)})")

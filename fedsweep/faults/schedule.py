"""Scheduled node failures: the named clients are down in rounds [fail_at, recover_at) and back after
(p2pfl's fault-tolerance scenario: stop a node after round r, restart it, https://github.com/p2pfl/p2pfl).

`mode: unavailable` hides them from selection while down; `mode: fail` leaves them selectable and
fails them (`NodeDown`, not retried). A down client that is selected anyway fails in either mode.
"""

from dataclasses import dataclass
from typing import Literal

import torch

from fedsweep.failures import NodeDown
from fedsweep.faults.base import ClientCtx, Fault, FaultConfigError, client_ids, set_field, where


@dataclass(frozen=True, kw_only=True)
class Schedule(Fault):
    """`clients` are down in rounds [fail_at, recover_at) (recover_at null: for good)."""

    clients: tuple[int, ...]
    fail_at: int
    recover_at: int | None = None
    mode: Literal["unavailable", "fail"] = "unavailable"

    def __post_init__(self) -> None:
        name = type(self).__name__
        set_field(self, "clients", client_ids(self, "clients") or ())
        if isinstance(self.fail_at, bool) or not isinstance(self.fail_at, int) or self.fail_at < 1:
            raise FaultConfigError(name, "fail_at", f"must be a round >= 1, got {self.fail_at!r}")
        r = self.recover_at
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r <= self.fail_at):
            reason = f"must be a round > fail_at ({self.fail_at}) or null, got {r!r}"
            raise FaultConfigError(name, "recover_at", reason)
        if self.mode not in ("unavailable", "fail"):
            raise FaultConfigError(name, "mode", f"must be 'unavailable' or 'fail', got {self.mode!r}")

    def outage(self, round: int) -> bool:
        """Whether `round` is in [fail_at, recover_at): the named clients are down."""
        recovered = self.recover_at is not None and round >= self.recover_at
        return round >= self.fail_at and not recovered

    def down(self, *, round: int, client: int) -> bool:
        """Whether `client` is down in `round`."""
        return client in self.clients and self.outage(round)

    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        """Hidden from selection while down (mode `unavailable`)."""
        mask = torch.ones(num_clients, dtype=torch.bool)
        if self.mode == "unavailable" and self.clients and self.outage(round):
            ids = torch.tensor(self.clients, dtype=torch.int64)
            mask[ids[ids < num_clients]] = False
        return mask

    def before_epoch(self, ctx: ClientCtx) -> None:
        """A selected client that is down fails."""
        if self.down(round=ctx.round, client=ctx.client):
            raise NodeDown(f"node down in rounds [{self.fail_at}, {self.recover_at}) ({where(ctx)})")

"""Corrupted updates: a client sends parameters full of NaN or Inf (a diverged or bit-flipped device),
which the aggregation must reject rather than average (Flower's `failures`, https://flower.ai).

A client's round is corrupted with probability `p`, drawn from generator(seed, "fault", "corrupt",
round, client).
"""

from dataclasses import dataclass
from typing import Literal

import torch

from fedsweep.faults.base import (
    ClientRound,
    Fault,
    FaultConfigError,
    bernoulli,
    client_ids,
    probability,
    set_field,
    targets,
)
from fedsweep.weights import Params

VALUES = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def corrupt(params: Params, value: float) -> Params:
    """Every floating-point tensor filled with `value`; integer buffers kept (a new dict)."""
    return {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in params.items()}


@dataclass(frozen=True, kw_only=True)
class Corrupt(Fault):
    """Replace a client's update by `value` (nan | inf | -inf) with probability `p` per round."""

    p: float = 1.0
    value: Literal["nan", "inf", "-inf"] = "nan"
    clients: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        set_field(self, "p", probability(self, "p"))
        set_field(self, "clients", client_ids(self, "clients"))
        if self.value not in VALUES:
            reason = f"must be one of {list(VALUES)}, got {self.value!r}"
            raise FaultConfigError(type(self).__name__, "value", reason)

    def after_training(self, ctx: ClientRound, params: Params, global_params: Params) -> Params:
        """The corrupted update, or `params` untouched."""
        coords = (ctx.seed, "fault", "corrupt", ctx.round, ctx.client)
        if targets(self.clients, ctx.client) and bernoulli(self.p, *coords):
            return corrupt(params, VALUES[self.value])
        return params

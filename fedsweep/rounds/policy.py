"""Aggregation policy: which client updates a round accepts, and whether enough of them arrived.

Two decisions, pure functions of counts, configured by the group-free `aggregation` block:

    aggregation:
      min_fit: 1            # usable updates a round needs: a count (int >= 1) or a fraction (0, 1]
      on_insufficient: skip # fewer than that: skip (keep the global model) | fail (the cell fails)
      stragglers: partial   # a client that ran fewer than E local epochs: drop | partial | strategy
      round_timeout_s: null # a round's deadline in seconds from the start of its training; null = none

- `min_fit` follows Flower's `min_fit_clients` (a count) and `fraction_fit` (a fraction): an int is
  a count, a float a fraction of the clients selected in the round, rounded up (`1` is one client,
  `1.0` is all of them). Zero usable updates are never enough.
- `stragglers` follows Li et al. 2020 (FedProx), https://arxiv.org/abs/1812.06127, Section 5.2:
  FedAvg *drops* devices that did not finish their E epochs; FedProx aggregates their *partial*
  work. A client that did no epoch at all has no update under either policy. `strategy` does what
  the cell's method does in its paper: partial for a strategy whose `partial_work` is true (FedProx,
  FedNova), drop for the others (the quickstart compares FedAvg and FedProx so).
- `round_timeout_s` follows p2pfl's aggregation timeout (https://github.com/p2pfl/p2pfl): once the
  deadline passes, the clients still training are cut off, recorded as `deadline` failures, and
  the round aggregates what arrived under `min_fit` / `on_insufficient` (fedsweep/rounds/deadline.py).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from fedsweep.config.errors import did_you_mean

Decision = Literal["aggregate", "skip", "fail"]
OnInsufficient = Literal["skip", "fail"]
StragglerPolicy = Literal["drop", "partial", "strategy"]

KEYS = ("min_fit", "on_insufficient", "stragglers", "round_timeout_s")


class CellFailed(Exception):
    """A round had fewer usable updates than `min_fit` and the policy is `fail`."""


def _is_count(min_fit: object) -> bool:
    return isinstance(min_fit, int) and not isinstance(min_fit, bool)


def required_clients(min_fit: float, selected: int) -> int:
    """Usable updates a round of `selected` clients needs: the count, or ceil(fraction·selected), >= 1."""
    if _is_count(min_fit):
        if min_fit < 1:
            raise ValueError(f"min_fit must be >= 1 as a count, got {min_fit}")
        return int(min_fit)
    if isinstance(min_fit, bool) or not isinstance(min_fit, float) or not 0.0 < min_fit <= 1.0:
        raise ValueError(f"min_fit must be an int >= 1 or a float in (0, 1], got {min_fit!r}")
    # Rounded first: 0.7 * 10 is 7.000000000000001 in floating point, which must not become 8.
    return max(1, math.ceil(round(min_fit * selected, 9)))


def decide(ok: int, selected: int, *, min_fit: float, on_insufficient: OnInsufficient) -> Decision:
    """`aggregate` if `ok` usable updates suffice, else `skip` (keep the global model) or `fail`."""
    if on_insufficient not in ("skip", "fail"):
        raise ValueError(f"on_insufficient must be 'skip' or 'fail', got {on_insufficient!r}")
    return "aggregate" if ok >= required_clients(min_fit, selected) else on_insufficient


def accept_straggler(epochs_done: int, epochs_planned: int, policy: StragglerPolicy) -> bool:
    """Whether an update after `epochs_done` of `epochs_planned` local epochs is aggregated."""
    if policy == "partial":
        return epochs_done >= 1
    if policy == "drop":
        return epochs_done >= epochs_planned
    raise ValueError(f"stragglers must be 'drop' or 'partial', got {policy!r}")


@dataclass(frozen=True, kw_only=True)
class AggregationPolicy:
    """The `aggregation` block; the constructor rejects impossible values naming the key."""

    min_fit: int | float = 1
    on_insufficient: OnInsufficient = "skip"
    stragglers: StragglerPolicy = "partial"
    round_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if _is_count(self.min_fit):
            if self.min_fit < 1:
                raise ValueError(f"aggregation.min_fit must be >= 1 as a count, got {self.min_fit}")
        elif not (isinstance(self.min_fit, float) and 0.0 < self.min_fit <= 1.0):  # bool is not a float
            raise ValueError(
                "aggregation.min_fit must be a count (int >= 1) or a fraction in (0, 1], "
                f"got {self.min_fit!r}"
            )
        if self.on_insufficient not in ("skip", "fail"):
            raise ValueError(
                f"aggregation.on_insufficient must be 'skip' or 'fail', got {self.on_insufficient!r}"
            )
        if self.stragglers not in ("drop", "partial", "strategy"):
            raise ValueError(
                f"aggregation.stragglers must be 'drop', 'partial' or 'strategy', got {self.stragglers!r}"
            )
        timeout = self.round_timeout_s
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf
        ):
            raise ValueError(
                f"aggregation.round_timeout_s must be null or a number of seconds > 0, got {timeout!r}"
            )

    def check_against(self, *, clients_per_round: int) -> None:
        """A count above clients_per_round could never be met."""
        if _is_count(self.min_fit) and self.min_fit > clients_per_round:
            raise ValueError(
                f"aggregation.min_fit must be <= clients_per_round ({clients_per_round}), got {self.min_fit}"
            )

    def required(self, selected: int) -> int:
        """Usable updates a round of `selected` clients needs."""
        return required_clients(self.min_fit, selected)

    def decide(self, ok: int, selected: int) -> Decision:
        """`aggregate`, `skip` or `fail` for a round with `ok` usable updates."""
        return decide(ok, selected, min_fit=self.min_fit, on_insufficient=self.on_insufficient)

    def for_strategy(self, partial_work: bool) -> "AggregationPolicy":
        """The policy with `stragglers: strategy` resolved for a strategy that does (or does not)
        aggregate partial work."""
        if self.stragglers != "strategy":
            return self
        return replace(self, stragglers="partial" if partial_work else "drop")

    def accept(self, epochs_done: int, epochs_planned: int) -> bool:
        """Whether a (possibly partial) update is aggregated."""
        return accept_straggler(epochs_done, epochs_planned, self.stragglers)

    def failure(self, *, round: int, ok: int, selected: int) -> CellFailed:
        """The error the loop raises for a `fail` decision."""
        return CellFailed(
            f"round {round}: {ok} usable client updates of {selected} selected, "
            f"aggregation.min_fit={self.min_fit} needs {self.required(selected)} (on_insufficient=fail)"
        )


def aggregation_policy(
    cfg: Mapping[str, Any] | None, *, clients_per_round: int, key: str = "aggregation"
) -> AggregationPolicy:
    """The policy a config block describes (missing keys take defaults), or a ValueError naming the key."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        hint = did_you_mean(unknown[0], KEYS)
        raise ValueError(f"{key}.{unknown[0]}: unknown key{hint} (expected one of: {', '.join(KEYS)})")
    try:
        policy = AggregationPolicy(**cfg)
        policy.check_against(clients_per_round=clients_per_round)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("aggregation."):
            message = key + message[len("aggregation") :]
        raise ValueError(message) from None
    return policy

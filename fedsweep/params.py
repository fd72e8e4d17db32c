"""Hyper-parameter checks shared by the plug-ins' constructors and `check_config` hooks (strategies,
selectors): a neutral module, so that neither package imports the other.

A constructor refuses a value that is impossible on its own (a server learning rate <= 0, a decay
outside [0, 1)) with `ParamError`, whose `field` and `reason` the config validator turns into
one line naming the key: `strategy.eta must be > 0 (got -0.1)` (fedsweep/config/plugins.py). Rules
that depend on the cell (Krum's f against clients_per_round) live in the class's `check_config`,
which reads the cell's clients per round with `clients_per_round`.
"""

from collections.abc import Mapping
from typing import Any


class ParamError(ValueError):
    """An impossible hyper-parameter; `field` names it, `reason` says which bound it breaks."""

    def __init__(self, owner: str, field: str, reason: str) -> None:
        super().__init__(f"{owner}: {field} {reason}")
        self.field = field
        self.reason = reason


def _number(owner: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(owner, field, f"must be a number (got {value!r})")
    return float(value)


def positive(owner: str, field: str, value: Any) -> float:
    """`value` as a float, refused unless > 0 (and finite)."""
    x = _number(owner, field, value)
    if not 0.0 < x < float("inf"):
        raise ParamError(owner, field, f"must be > 0 (got {value!r})")
    return x


def non_negative(owner: str, field: str, value: Any) -> float:
    """`value` as a float, refused unless >= 0 (and finite)."""
    x = _number(owner, field, value)
    if not 0.0 <= x < float("inf"):
        raise ParamError(owner, field, f"must be >= 0 (got {value!r})")
    return x


def decay(owner: str, field: str, value: Any) -> float:
    """A decay or momentum coefficient: a float in [0, 1)."""
    x = _number(owner, field, value)
    if not 0.0 <= x < 1.0:
        raise ParamError(owner, field, f"must be in [0, 1) (got {value!r})")
    return x


def count(owner: str, field: str, value: Any, *, least: int) -> int:
    """An integer >= `least`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ParamError(owner, field, f"must be an integer >= {least} (got {value!r})")
    return value


def clients_per_round(config: Mapping[str, Any]) -> int:
    """How many clients a round of this cell selects (its upper bound on the updates aggregated)."""
    return min(int(config["clients_per_round"]), int(config["num_clients"]))

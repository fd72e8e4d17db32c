"""A round on the simulated clock, as pure functions of the selected clients' simulated durations.

Given each selected client's duration (fedsweep/systems/base.py, for the work it will actually do),
the round's `k` (clients_per_round) and the system model's deadline:

- the clients are ranked by duration (ties by client id); the first k that finish by the deadline
  are **on time** and are trained;
- if k finished on time and more were selected (over-selection), the round ends at the k-th finish
  and the others are **late**: dropped untrained, `clients_late` (not failures: they were asked for
  as spares, and real servers discard them the same way);
- otherwise the clients over the deadline are **cut**: not trained, failures of kind `deadline`;
- the round's simulated time is the k-th finish when some were late, the deadline when some were
  cut, else the slowest on-time client's duration (0 when no client was selected).

Whether an on-time client's update is then aggregated is decided as without a clock (faults, the
straggler policy, `min_fit`); the server has waited for it either way.
"""

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Arrivals:
    """Who of the selected clients is trained, cut by the deadline, or late; the round's seconds."""

    on_time: tuple[int, ...]
    cut: tuple[int, ...]
    late: tuple[int, ...]
    seconds: float


def arrivals(seconds: Mapping[int, float], *, k: int, deadline_s: float | None) -> Arrivals:
    """Rank the selected clients by simulated duration and split them (module docstring)."""
    ranked = sorted(seconds, key=lambda c: (seconds[c], c))
    meets = [c for c in ranked if deadline_s is None or seconds[c] <= deadline_s]
    on_time = meets[:k]
    rest = [c for c in ranked if c not in set(on_time)]
    late = rest if len(on_time) == k else []
    cut = [] if late else rest
    if late:
        clock = seconds[on_time[-1]]
    elif cut:
        assert deadline_s is not None  # only a deadline cuts
        clock = float(deadline_s)
    else:
        clock = max((seconds[c] for c in on_time), default=0.0)
    return Arrivals(
        on_time=tuple(sorted(on_time)), cut=tuple(sorted(cut)), late=tuple(sorted(late)), seconds=float(clock)
    )

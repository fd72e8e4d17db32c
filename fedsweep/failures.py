"""Why a client contributed nothing to a round: the failure kinds, their exceptions and records.

A failure is data, passed to aggregation as Flower passes `failures` to `aggregate_fit`
(fedsweep/strategies/base.py) and counted in the round's metrics (`failed_<kind>`). Rules:

- **Kinds.** `FAILURE_KINDS` lists every kind a record may carry. Exceptions say theirs with a class
  attribute `kind` (the injected faults' `transient`, `permanent`, `node_down`, `oom`; the round's
  `deadline`); a `TimeoutError` is `timeout`; any other exception is `other`. Kinds that are no
  exception: `straggler` (the aggregation policy dropped partial work), `invalid_update` (NaN/Inf),
  and the system model's `deadline` (a simulated round over its deadline).
- **Retries.** `retryable(exc)` says whether a failed client-epoch attempt is worth another try
  (Prefect's `retry_condition_fn`): not a permanent failure, not a passed deadline (no attempt can
  make it), never a KeyboardInterrupt or SystemExit.
- **Records.** `Failure` is the one shape a failure has everywhere: JSON-able (it crosses task
  boundaries and is hashed into the aggregation's cache key) and sorted by client in a round.
- A deadline is not a fault: `DeadlinePassed` lives here, not in fedsweep/faults/, and the round's
  deadline (fedsweep/rounds/deadline.py) raises it.
"""

from typing import NotRequired, TypedDict

FAILURE_KINDS = (
    *("transient", "permanent", "node_down", "oom", "timeout"),  # a client-epoch attempt raised
    *("deadline", "straggler", "invalid_update", "other"),
)


class Failure(TypedDict):
    """A client's failure in a round: `kind` one of FAILURE_KINDS, `retries` the attempts it spent."""

    client: int
    kind: str
    message: str
    retries: NotRequired[int]


class TransientFailure(Exception):
    """An injected error that a retry may get past."""

    kind = "transient"


class PermanentFailure(Exception):
    """An injected error that every retry repeats: not worth retrying."""

    kind = "permanent"


class NodeDown(PermanentFailure):
    """The client is down for this round (a scheduled outage)."""

    kind = "node_down"


class SimulatedOOM(MemoryError):
    """An injected out-of-memory error."""

    kind = "oom"


class DeadlinePassed(Exception):
    """Not injected: the round's deadline (aggregation.round_timeout_s) passed during the attempt."""

    kind = "deadline"


def retryable(exc: BaseException) -> bool:
    """Whether a failed client-epoch attempt is worth retrying (Prefect's `retry_condition_fn`)."""
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: never swallowed by a retry
        return False
    return not isinstance(exc, PermanentFailure | DeadlinePassed)


def failure_kind(exc: BaseException) -> str:
    """The kind a failed attempt is reported under: its class's `kind`, `timeout`, or `other`."""
    kind = getattr(type(exc), "kind", None)
    if isinstance(kind, str) and kind in FAILURE_KINDS:
        return kind
    return "timeout" if isinstance(exc, TimeoutError) else "other"


def failure_record(client: int, error: BaseException, *, retries: int) -> Failure:
    """What a client whose attempts all failed contributes to aggregation and to the metrics."""
    message = f"{type(error).__name__}: {error}"[:500]
    return Failure(
        client=client, kind=failure_kind(error), message=message, retries=retries if retryable(error) else 0
    )


def failure(client: int, kind: str, message: str) -> Failure:
    """A failure that is no exception (a dropped straggler, an invalid update, a simulated deadline)."""
    if kind not in FAILURE_KINDS:
        raise ValueError(f"unknown failure kind {kind!r} (one of {', '.join(FAILURE_KINDS)})")
    return Failure(client=client, kind=kind, message=message)

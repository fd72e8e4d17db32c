"""Waiting for a round's task runs: the next one to finish, until a deadline (flows/round.py and
flows/batches.py)."""

from typing import Any

from prefect.futures import as_completed

from fedsweep.rounds import deadline as deadlines


class Ran:
    """A task run that already finished in this thread, read like a finished PrefectFuture."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def result(self, raise_on_failure: bool = False) -> Any:
        return self.state.result(raise_on_failure=raise_on_failure)


def next_done(pending: dict, deadline: deadlines.Deadline | None) -> Any:
    """The next finished task run; None once a round deadline is a grace period past."""
    ran = next((f for f in pending if isinstance(f, Ran)), None)
    if ran is not None:
        return ran
    wait = None if deadline is None else max(0.0, deadline.left() + deadlines.GRACE_S)
    try:
        return next(iter(as_completed(list(pending), timeout=wait)))
    except TimeoutError:
        return None

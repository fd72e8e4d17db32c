"""A round's training: each selected client's chain of client-epoch tasks, until the round's deadline.

A client's local epochs are a chain of tasks (one per epoch, or one per client with
`runner.granularity=client`), at most `parallel` chains at once; each task's persisted result is
reused by a re-run. Under a round deadline (fedsweep/deadline.py) the loop waits no longer than the
deadline plus a grace period, starts nothing once it has passed, and reports which clients it cut.
"""

import logging
from typing import Any

from prefect.futures import PrefectFuture, as_completed

from fedsweep import deadline as deadlines
from fedsweep import rounds
from fedsweep.cell import cell_env
from fedsweep.faults.base import DeadlinePassed
from tasks.train import train_client_epoch

log = logging.getLogger("fedsweep")


class _Ran:
    """A task run that already finished in this thread, read like a finished PrefectFuture."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def result(self, raise_on_failure: bool = False) -> Any:
        return self.state.result(raise_on_failure=raise_on_failure)


def _next_done(pending: dict, deadline: deadlines.Deadline | None) -> Any:
    """The next finished task run; None once a round deadline is a grace period past."""
    ran = next((f for f in pending if isinstance(f, _Ran)), None)
    if ran is not None:
        return ran
    wait = None if deadline is None else max(0.0, deadline.left() + deadlines.GRACE_S)
    try:
        return next(iter(as_completed(list(pending), timeout=wait)))
    except TimeoutError:
        return None


def train_clients(
    cell_dir: str,
    plan: rounds.RoundPlan,
    global_ref: dict,
    parallel: int,
    deadline: deadlines.Deadline | None = None,
) -> tuple[list[dict], list[dict], int, set[int]]:
    """Run each client's chain of epoch tasks, at most `parallel` chains at once, until `deadline`.

    Returns (final references, failures, tasks reused from an earlier run's persisted results,
    clients the deadline cut off: those an earlier run cut, and those whose chain did not complete).
    """
    env = cell_env(cell_dir)
    runner, blobs = env.runtime.settings.runner, env.blobs
    task = train_client_epoch.with_options(  # under a deadline the task bounds its attempts (tasks/train.py)
        retries=runner.retries,
        retry_delay_seconds=runner.retry_delay_s,
        timeout_seconds=None if deadline else runner.task_timeout_s or None,
    )
    cut = set(deadline.earlier) if deadline else set()
    late = (lambda: False) if deadline is None else deadline.passed
    per_client = runner.granularity == "client"
    # One client at a time: run its tasks in this (the flow's) thread rather than hop through the task
    # runner's thread for nothing (the work itself goes where the cell's executor puts it).
    inline = parallel == 1
    pending: dict[PrefectFuture | _Ran, tuple[int, int, dict | None]] = {}

    def submit(client: int, epoch: int, input_ref: dict | None, refresh: bool = False) -> None:
        epochs = plan.epochs[client]
        chosen = task.with_options(refresh_cache=True) if refresh else task
        args = (
            cell_dir,
            plan.round,
            client,
            epoch,
            epochs - epoch if per_client else 1,
            epochs,
            global_ref,
            input_ref,
            plan.states[client],
            deadline.at if deadline else None,
        )
        future = _Ran(chosen(*args, return_state=True)) if inline else chosen.submit(*args)
        pending[future] = (client, epoch, input_ref)

    waiting = sorted(set(plan.epochs) - cut)
    for client in waiting[:parallel]:
        submit(client, 0, None)
    waiting = waiting[parallel:]
    results, failures, reused = [], [], 0
    while pending:
        future = _next_done(pending, deadline)
        if future is None:  # chains still running a grace period past the deadline: left behind
            break
        client, epoch, input_ref = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, DeadlinePassed):
            cut.add(client)
        elif isinstance(outcome, BaseException):
            failures.append(rounds.failure_record(client, outcome, retries=runner.retries))
            log.warning(
                "round %d: client %d failed at epoch %d: %s",
                plan.round,
                client,
                epoch,
                failures[-1]["message"],
            )
        elif future.state.name == "Cached" and not blobs.holds(outcome):
            # A persisted result whose blob is gone or changed (moved, pruned, damaged): recompute.
            log.warning(
                "round %d: cached result of client %d epoch %d is stale; recomputing",
                plan.round,
                client,
                epoch,
            )
            submit(client, epoch, input_ref, refresh=True)
            continue
        else:
            reused += future.state.name == "Cached"
            if outcome["epochs_done"] < plan.epochs[client] and not late():
                submit(client, outcome["epochs_done"], outcome)
                continue
            if outcome["epochs_done"] < plan.epochs[client]:
                cut.add(client)
            else:
                results.append(outcome)
        if waiting and not late():  # a chain ended: start the next client's
            submit(waiting.pop(0), 0, None)
    cut.update(waiting, (client for client, _, _ in pending.values()))
    results.sort(key=lambda r: r["client"])
    return results, sorted(failures, key=lambda f: f["client"]), reused, cut

"""The client-epoch task: local epochs of one client, persisted and keyed by content.

By default a task is one epoch (`span=1`), so a kill loses at most one client epoch. Where an epoch
is tiny (a logistic regression on a few hundred samples) Prefect's per-task cost dominates, and
`runner.granularity=client` runs all of a client's epochs of a round in one task (`span=E`). The
training itself is a job handed to the execution seam (fedsweep/execution/).

With a round deadline (`aggregation.round_timeout_s`, fedsweep/rounds/deadline.py) the task bounds each
attempt itself, by `runner.task_timeout_s` or the time left, whichever is shorter, with Prefect's
timeout machinery, which raises into the thread waiting for the job. What that ends depends on
where the job runs: in this thread (`runner/engine=thread`), the job itself (the hang fault sleeps in
short steps); in a worker process, the worker is killed and a warm spare takes its place (or one
started in the background, fedsweep/execution/workers.py); on Dask, the future is cancelled and a
job already running goes on on its worker until it ends, its answer dropped. A deadline that cuts
the attempt raises
`DeadlinePassed`, which is not retried; a retry that would start after the deadline fails at once.

With `runner.batch_clients` (fedsweep/rounds/batch.py) a group of clients trains as one task,
`client-batch`, named by round and client range (`r3-c0-c9`), keyed by every member's inputs and
attempt; its members' retries are the round's (flows/batches.py), not Prefect's.
"""

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.context import TaskRunContext
from prefect.task_engine import TaskRunTimeoutError
from prefect.utilities.timeout import timeout

from fedsweep import jobs
from fedsweep.cell.cell import Cell
from fedsweep.cell.layout import round_dir
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.execution import executor_for
from fedsweep.failures import DeadlinePassed, retryable
from fedsweep.rounds.batch import BatchAnswer, MemberTask
from fedsweep.rounds.refs import ClientRef


def client_epoch_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    """Coordinates + the hashes of the inputs: a resumed run finds the result, a changed input misses."""
    inp = (p["input_ref"] or {}).get("sha256", "global")[:16]
    state = f"-s{p['state_ref']['sha256'][:16]}" if p["state_ref"] else ""
    return (
        f"{p['cell'].key}/{round_dir(p['round'])}/"
        f"c{p['client']:05d}-e{p['epoch']}x{p['span']}of{p['epochs']}-{p['global_ref']['sha256'][:16]}-{inp}{state}"
    )


@contextmanager
def bounded(deadline: float | None, task_timeout_s: float) -> Iterator[None]:
    """An attempt under a round deadline (`time.monotonic()` time): cut by the task timeout
    (TaskRunTimeoutError, retried) or by the deadline (DeadlinePassed), whichever comes first.
    Without a deadline Prefect's own `timeout_seconds` bounds the attempt and this does nothing."""
    if deadline is None:
        yield
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed("the round deadline passed before this attempt started")
    if 0 < task_timeout_s < left:
        with timeout(seconds=task_timeout_s, timeout_exc_type=TaskRunTimeoutError):
            yield
        return
    try:
        with timeout(seconds=left):
            yield
    except TimeoutError:
        raise DeadlinePassed("the round deadline passed during this attempt") from None


def retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: permanent failures (a node that is down) are not retried."""
    error = state.data
    return retryable(error) if isinstance(error, BaseException) else True


@task(
    name="client-epoch",
    task_run_name="r{round}-c{client}-e{epoch}",
    cache_key_fn=client_epoch_key,
    retry_condition_fn=retry_if_retryable,
    persist_result=True,
    result_serializer="json",
)
def train_client_epoch(
    cell: Cell,
    round: int,
    client: int,
    epoch: int,
    span: int,
    epochs: int,
    global_ref: BlobRef,
    input_ref: ClientRef | None,
    state_ref: BlobRef | None,
    deadline: float | None = None,
) -> ClientRef:
    """Train one client for `span` of its `epochs` local epochs from `epoch`, before `deadline`
    (the round's, on `time.monotonic()`'s clock) if any; returns a reference to the last result."""
    context = TaskRunContext.get()
    assert context is not None and context.task_run is not None  # a task run's body
    attempt = context.task_run.run_count  # 1 on the first try, 2 on the first retry
    with bounded(deadline, cell.runner.task_timeout_s):
        executor = executor_for(cell)
        for e in range(epoch, epoch + span):
            kwargs = {
                "round": round,
                "client": client,
                "epoch": e,
                "epochs": epochs,
                "global_ref": global_ref,
                "input_ref": input_ref,
                "state_ref": state_ref,
                "attempt": attempt,
            }
            input_ref = executor.run(jobs.client_epoch, kwargs)
    assert input_ref is not None  # span >= 1
    return input_ref


def batch_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    """The round, the global model and every member's coordinates, inputs and attempt (a member's
    attempt decides its faults, hence who trains in the batch): a resumed run finds the result."""
    members = [
        (m["client"], m["epoch"], m["span"], m["epochs"], (m["input_ref"] or {}).get("sha256", "global")[:16],
         (m["state_ref"] or {}).get("sha256", "")[:16], m["attempt"])
        for m in p["members"]
    ]  # fmt: skip
    digest = hashlib.sha256(json.dumps([p["global_ref"]["sha256"], members]).encode()).hexdigest()[:32]
    first, last = p["members"][0]["client"], p["members"][-1]["client"]
    return f"{p['cell'].key}/{round_dir(p['round'])}/batch-c{first:05d}-c{last:05d}-{digest}"


@task(
    name="client-batch",
    task_run_name="{name}",
    cache_key_fn=batch_key,
    persist_result=True,
    result_serializer="json",
)
def train_client_batch(
    cell: Cell,
    round: int,
    name: str,
    members: list[MemberTask],
    global_ref: BlobRef,
    deadline: float | None = None,
) -> BatchAnswer:
    """Train a batch of clients (`members`, in id order) together for their span of tasks, before
    `deadline` if any: what each finished and how each failed (fedsweep/rounds/batch.py). A member's
    attempts are counted by the round (flows/batches.py), so Prefect does not retry this task; the task
    timeout is `runner.task_timeout_s` per member and task of the batch (a batch does their work)."""
    work = max(m["span"] for m in members) * len(members)
    limit = cell.runner.task_timeout_s * work
    with bounded(deadline, limit) if deadline is not None else _timeout(limit):
        left = None if deadline is None else deadline - time.monotonic()
        kwargs = {"round": round, "global_ref": global_ref, "members": members, "seconds_left": left}
        answer: BatchAnswer = executor_for(cell).run(jobs.client_batch, kwargs)
    return answer


@contextmanager
def _timeout(seconds: float) -> Iterator[None]:
    """Prefect's timeout machinery for `seconds` (0: none), raising TaskRunTimeoutError."""
    if seconds <= 0:
        yield
        return
    with timeout(seconds=seconds, timeout_exc_type=TaskRunTimeoutError):
        yield

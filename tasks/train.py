"""The client-epoch task: one local epoch of one client, persisted and keyed by content."""

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep import steps
from fedsweep.faults.base import retryable
from tasks.context import cell_env


def client_epoch_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    """Coordinates + the hashes of the inputs: a resumed run finds the result, a changed input misses."""
    env = cell_env(p["cell_dir"])
    inp = (p["input_ref"] or {}).get("sha256", "global")[:16]
    return (
        f"{env.key}/{steps.round_prefix(p['round'])}/"
        f"c{p['client']:05d}-e{p['epoch']}-{p['global_ref']['sha256'][:16]}-{inp}"
    )


def retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: permanent failures and invalid updates are not retried."""
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
    cell_dir: str, round: int, client: int, epoch: int, global_ref: dict, input_ref: dict | None
) -> dict:
    """Train one client for one local epoch; returns a reference to the written result."""
    env = cell_env(cell_dir)
    attempt = TaskRunContext.get().task_run.run_count  # 1 on the first try, 2 on the first retry
    return steps.client_epoch(
        env.runtime, env.blobs, round=round, client=client, epoch=epoch,
        global_ref=global_ref, input_ref=input_ref, attempt=attempt,
    )

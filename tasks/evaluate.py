"""The evaluation task: the new global model on the test split, split over the executor's width."""

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep import jobs
from fedsweep.cell.cell import Cell
from fedsweep.cell.layout import round_dir
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.execution import executor_for
from fedsweep.rounds.evaluate import combine_evaluations


def evaluate_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    return f"{p['cell'].key}/{round_dir(p['round'])}/evaluate-{p['ref']['sha256'][:24]}"


@task(
    name="evaluate",
    task_run_name="r{round}-evaluate",
    cache_key_fn=evaluate_key,
    persist_result=True,
    result_serializer="json",
)
def evaluate_round(cell: Cell, round: int, ref: BlobRef) -> dict[str, float]:
    """{"accuracy": ..., "loss": ...} of the model at `ref`: one part of the test split per slot of
    the executor, side by side (one intra-op thread each beats two threads in one process)."""
    executor = executor_for(cell)
    calls = [(ref, part, executor.width) for part in range(executor.width)]
    return combine_evaluations(executor.map(jobs.evaluate_part, calls))

"""The evaluation task: the new global model on the test split."""

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep import steps
from tasks.context import cell_env, evaluate


def evaluate_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    env = cell_env(p["cell_dir"])
    return f"{env.key}/{steps.round_prefix(p['round'])}/evaluate-{p['ref']['sha256'][:24]}"


@task(
    name="evaluate",
    task_run_name="r{round}-evaluate",
    cache_key_fn=evaluate_key,
    persist_result=True,
    result_serializer="json",
)
def evaluate_round(cell_dir: str, round: int, ref: dict) -> dict:
    """{"accuracy": ..., "loss": ...} of the model at `ref`."""
    return evaluate(cell_dir, ref)

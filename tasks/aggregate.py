"""The aggregation task: successful client results (and failures) into the next global model."""

import hashlib
import json
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep import steps
from tasks.context import cell_env


def aggregate_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    inputs = json.dumps(
        [p["global_ref"]["sha256"], sorted(r["sha256"] for r in p["results"]), p["failures"]], sort_keys=True
    )
    digest = hashlib.sha256(inputs.encode()).hexdigest()[:24]
    return f"{cell_env(p['cell_dir']).key}/{steps.round_prefix(p['round'])}/aggregate-{digest}"


@task(
    name="aggregate",
    task_run_name="r{round}-aggregate",
    cache_key_fn=aggregate_key,
    persist_result=True,
    result_serializer="json",
)
def aggregate_round(
    cell_dir: str, round: int, global_ref: dict, results: list[dict], failures: list[dict]
) -> dict:
    """Returns {"global": ref, "failures": [...]} (rejected NaN/Inf updates join the failures)."""
    env = cell_env(cell_dir)
    ref, all_failures = steps.aggregate(
        env.runtime, env.blobs, round=round, global_ref=global_ref, results=results, failures=failures
    )
    return {"global": ref, "failures": all_failures}

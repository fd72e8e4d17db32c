"""The aggregation task: the round's valid client results into the start of the next round."""

import hashlib
import json
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep import steps
from fedsweep.cell import cell_env
from fedsweep.checkpoint.store import round_dir


def aggregate_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    inputs = [
        p["start"],
        sorted((r["sha256"], r.get("client_state")) for r in p["results"]),
        p["failures"],
        p["keep"],
    ]
    if p.get("weights") is not None:  # the selector's aggregation weights (absent: the key of before)
        inputs.append(sorted(p["weights"].items()))
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]
    return f"{cell_env(p['cell_dir']).key}/{round_dir(p['round'])}/aggregate-{digest}"


@task(
    name="aggregate",
    task_run_name="r{round}-aggregate",
    cache_key_fn=aggregate_key,
    persist_result=True,
    result_serializer="json",
)
def aggregate_round(
    cell_dir: str,
    round: int,
    start: dict,
    results: list[dict],
    failures: list[dict],
    selected: list[int],
    keep: bool,
    weights: dict[int, float] | None = None,
) -> dict:
    """{"global": ref, "server": ref} of round `round + 1` (`steps.aggregate`), on the server."""
    return steps.aggregate(
        cell_env(cell_dir),
        round=round,
        start=start,
        results=results,
        failures=failures,
        selected=selected,
        keep=keep,
        weights=weights,
    )

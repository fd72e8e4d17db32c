"""The aggregation task: the round's valid client results into the start of the next round."""

import hashlib
import json
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep.cell.cell import Cell
from fedsweep.cell.layout import round_dir
from fedsweep.failures import Failure
from fedsweep.rounds.aggregate import aggregate
from fedsweep.rounds.refs import ClientRef, RoundStart


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
    return f"{p['cell'].key}/{round_dir(p['round'])}/aggregate-{digest}"


@task(
    name="aggregate",
    task_run_name="r{round}-aggregate",
    cache_key_fn=aggregate_key,
    persist_result=True,
    result_serializer="json",
)
def aggregate_round(
    cell: Cell,
    round: int,
    start: RoundStart,
    results: list[ClientRef],
    failures: list[Failure],
    selected: list[int],
    keep: bool,
    weights: dict[int, float] | None = None,
) -> RoundStart:
    """{"global": ref, "server": ref} of round `round + 1` (`fedsweep.rounds.aggregate`), on the server."""
    return aggregate(
        cell, round=round, start=start, results=results, failures=failures, selected=selected, keep=keep,
        weights=weights,
    )  # fmt: skip

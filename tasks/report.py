"""The sweep's MLflow parent run at the end: headline metrics and comparison plots.

The cells' histories are read back from their child runs (every round is there once the cells have
finished), so a resumed sweep plots the rounds of its earlier runs too. matplotlib is imported only
when the plots are drawn (seconds of start-up otherwise).
"""

import math
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.tags import CELL_KEY
from tasks.track import client

if TYPE_CHECKING:
    from fedsweep.plots import CellCurve


def headline(rows: list[dict[str, Any]], wall_s: float) -> dict[str, float]:
    """The sweep's figures on its parent run: best final accuracy, cells finished and failed, and
    the wall time of this run of the sweep."""
    finals = [
        r["final_accuracy"] for r in rows if r["status"] == "FINISHED" and not math.isnan(r["final_accuracy"])
    ]
    metrics = {
        "cells_finished": sum(r["status"] == "FINISHED" for r in rows),
        "cells_failed": sum(r["status"] == "FAILED" for r in rows),
        "sweep_wall_s": wall_s,
    }
    return {"best_final_accuracy": max(finals), **metrics} if finals else metrics


def curves(uri: str, parent_run_id: str, cell_keys: list[str]) -> list["CellCurve"]:
    """The histories of the parent's child runs for `cell_keys`, in that order."""
    from fedsweep.plots import CellCurve  # noqa: PLC0415 - matplotlib: seconds, only to draw

    mlc = client(uri)
    parent = mlc.get_run(parent_run_id)
    children = mlc.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=1000,
    )
    by_key = {run.data.tags.get(CELL_KEY): run for run in children}
    found = []
    for key in cell_keys:
        run = by_key.get(key)
        if run is None:
            continue
        accuracy = sorted((m.step, m.value) for m in mlc.get_metric_history(run.info.run_id, "accuracy"))
        failed = sorted(
            {m.step: m.value for m in mlc.get_metric_history(run.info.run_id, "clients_failed")}.items()
        )
        found.append(
            CellCurve(
                name=run.info.run_name,
                method=run.data.tags.get("strategy", run.info.run_name),
                num_clients=int(run.data.tags.get("num_clients", 0)),
                rounds=tuple(s for s, _ in accuracy),
                accuracy=tuple(v for _, v in accuracy),
                failed=tuple(v for _, v in failed),
                failure_rounds=tuple(s for s, _ in failed),
            )
        )
    return found


@task(cache_policy=NO_CACHE, name="report-sweep")
def report_sweep(
    tracking: dict[str, Any],
    cell_keys: list[str],
    rows: list[dict[str, Any]],
    wall_s: float,
    plots: bool = True,
) -> tuple[dict[str, float], dict[str, bytes]]:
    """(headline metrics, plot files) for the parent run; no plots with `plots=False` (a sweep
    being stopped: drawing them would delay the exit by seconds)."""
    if not plots:
        return headline(rows, wall_s), {}
    from fedsweep.plots import sweep_figures  # noqa: PLC0415 - matplotlib: seconds, only to draw

    return headline(rows, wall_s), sweep_figures(
        curves(tracking["uri"], tracking["parent_run_id"], cell_keys)
    )

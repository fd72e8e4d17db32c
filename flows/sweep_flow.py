"""The sweep flow: one child flow run per cell (flows/cell_flow.py), `runner.parallel_cells` at a
time, then the summary.

The cells' subflows run in threads of this process (each with a copy of the flow's context, so
Prefect files them under the sweep), their client work sharing the sweep's engines: `parallel_cells`
train at once, and one more cell's flow run is started ahead and waits for its turn (flows/turns.py),
so that Prefect's calls to start and end a cell's flow run are made while another cell trains, not
between them; a cell whose flow run is late to start trains anyway, under the sweep's flow run.

The summary keeps the grid's order, marks this run's rows with the run's start time and the cell's
key, and is appended to the sweep folder's summary.csv (fedsweep/summary.py). A cell stopped by the
memory guard, Ctrl-C or SIGTERM, or a lost engine, leaves the cells not yet started NOT RUN (the one
started ahead ends Cancelled); its flow run, and the sweep's, end Cancelled with the reason (a clean,
resumable end, as its MLflow run ends KILLED).
"""

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.context import TagsContext
from prefect.states import State

from fedsweep import execution, summary
from fedsweep.interrupt import stop_requested
from flows.artifacts import link_artifact, sweep_artifact
from flows.cell_flow import planned, run_one, stopped, take_over
from flows.turns import Turns
from server.records import records
from tasks import track
from tasks.report import report_sweep

ENDING_THREADS = 6
# The records tokens of the sweep's flow run starting and ending (set by the command line: cli/run.py).
SWEEP_WAITS: contextvars.ContextVar[dict[str, int]] = contextvars.ContextVar("fedsweep_sweep_waits")


def run_cells(cells: list[dict[str, Any]], tracking: dict[str, Any], parallel: int) -> list[dict[str, Any]]:
    """Every cell's row, in the grid's order; after a STOPPED or LOST cell, no new cell starts."""
    rows: list[dict[str, Any] | None] = [None] * len(cells)
    turns = Turns(parallel)

    def run(i: int) -> None:
        if not turns.admit(i):
            rows[i] = {"cell": cells[i]["name"], "status": "NOT RUN"}
            return
        row = rows[i] = run_one(cells[i], tracking, turns, i)
        if row["status"] in ("STOPPED", "LOST"):
            turns.halt()

    # A thread per cell between its admission and the end of its flow run: those training, the one
    # started ahead, and a few whose flow runs are still ending (a busy server) while others train.
    threads = min(len(cells), turns.width + 1 + ENDING_THREADS)
    done = threading.Event()
    watch = threading.Thread(
        target=contextvars.copy_context().run,
        args=(turns.watch, lambda start: take_over(start, tracking), done),
        name="fedsweep-turns",
        daemon=True,
    )
    watch.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="fedsweep-cell") as pool:
            # One copy of the flow's context per cell: a Context cannot be entered by two threads.
            futures = [pool.submit(contextvars.copy_context().run, run, i) for i in range(len(cells))]
            for future in futures:
                future.result()
    finally:
        done.set()
        watch.join()
    return [
        row if row["status"] != "LOST" else {**row, "status": "FAILED"} for row in rows if row is not None
    ]


@flow(name="sweep", persist_result=False)
def sweep_flow(sweep: dict[str, Any], tracking: dict[str, Any]) -> list[dict[str, Any]] | State:
    """Run every cell of `sweep` (its name, folder and cells' compact views; a failed cell does not
    stop the others; the memory guard, Ctrl-C, SIGTERM and a lost engine do); write the summary, show
    it as an artifact, and log it with the headline metrics and plots to MLflow."""
    started = time.perf_counter()
    waits = SWEEP_WAITS.get(None)
    if waits is not None:  # the flow run is up: what waited for it no longer does
        records().done(waits.pop("start"))
    for info in execution.describe():
        for key, link, description in info.links:
            link_artifact(key, link, description)
    cells = [planned(cell["key"]) for cell in sweep["cells"]]
    parallel = cells[0]["config"]["runner"]["parallel_cells"] if cells else 1
    rows = [
        {"run": sweep["run"], **row, "key": cell["key"]}
        for cell, row in zip(cells, run_cells(cells, tracking, parallel), strict=True)
    ]
    report = summary.report_settings(cells[0]["config"].get("report") if cells else None)
    rows = summary.with_time_to_target(rows, report)  # one target for the whole sweep
    out = Path(sweep["dir"])
    summary.append_summary(out, rows)
    files = {"summary.csv": summary.to_csv(rows), "summary.md": summary.to_markdown(rows)}  # this run's
    print("\n" + summary.to_text(rows) + f"\n\nsummary: {out / 'summary.md'} (every run's rows)", flush=True)
    sweep_artifact(sweep["name"], sweep["dir"], files["summary.md"], tracking)
    if tracking:
        statuses = {r["status"] for r in rows}
        status = "FINISHED" if statuses == {"FINISHED"} else "KILLED" if "STOPPED" in statuses else "FAILED"
        wall_s = time.perf_counter() - started
        # Untagged, as the cells' tasks are: a tagged task run first asks the server for its tags'
        # concurrency slots (a write to its database, waiting whenever the database is busy).
        step = records().wait("the sweep's metrics and plots in MLflow", phase="finishing")
        try:
            with TagsContext(current_tags=set()):
                metrics, plots = report_sweep(
                    tracking, [c["key"] for c in cells], rows, wall_s, plots=not stop_requested()
                )
                logged = {**{name: text.encode() for name, text in files.items()}, **plots}
                track.finish_run(
                    tracking["uri"], tracking["parent_run_id"], status, {}, logged, metrics=metrics
                )
        finally:
            records().done(step)
    halted = [row for row in rows if row["status"] == "STOPPED"]
    if waits is not None:
        waits["end"] = records().wait("the sweep's flow run to end", lambda: False)
    return stopped(f"cell {halted[0]['cell']} {halted[0]['message']}", rows) if halted else rows

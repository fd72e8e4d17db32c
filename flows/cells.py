"""The sweep flow: one child flow run per cell, `runner.parallel_cells` at a time, then the summary.

With `parallel_cells` > 1 the cells' subflows run in threads of this process (each with a copy of
the flow's context, so Prefect files them under the sweep), their client work sharing the execution
backend (worker processes or a Dask cluster). The summary keeps the grid's order, marks this run's
rows with the run's start time and the cell's key, and is appended to the sweep folder's summary.csv
(fedsweep/summary.py). A cell stopped by
the memory guard, Ctrl-C or SIGTERM, or a lost Dask scheduler, leaves the cells not yet started
NOT RUN; its flow run, and the sweep's, end Cancelled with the reason (a clean, resumable end, as
its MLflow run ends KILLED).

The flows receive compact views (flows/view.py), so the UI shows readable parameters; the full cells
are registered here by the runner (`register`), by key, before the sweep flow starts.
"""

import contextvars
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prefect import flow, tags
from prefect.artifacts import create_link_artifact
from prefect.context import TagsContext
from prefect.states import Cancelled, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from cli.finished import append_summary
from fedsweep import summary
from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.execution import describe, parallel_clients
from fedsweep.execution.dask import SchedulerLost
from fedsweep.interrupt import stop_requested
from fedsweep.policy import CellFailed
from flows import view
from flows.artifacts import sweep_artifact
from flows.experiment import run_cell
from tasks import track
from tasks.report import report_sweep

log = logging.getLogger("fedsweep")
# A cell that ends for one of these reasons says so in one line; any other exception is a bug and
# gets its traceback.
KNOWN_FAILURES = (CheckpointError, CellFailed)
_PLANNED: dict[str, dict[str, Any]] = {}  # cell key -> the full cell (config, params, folder)


def register(cells: list[dict[str, Any]]) -> None:
    """Make the full cells known to the flows, which receive only their compact views."""
    _PLANNED.update({cell["key"]: cell for cell in cells})


def task_runner(cell: dict[str, Any]) -> ThreadPoolTaskRunner:
    """Client-epoch tasks run in threads of this process; each hands its training to the cell's
    executor (fedsweep/execution/)."""
    return ThreadPoolTaskRunner(
        max_workers=parallel_clients(cell["config"]["runner"]["max_parallel_clients"])
    )


@flow(name="cell", log_prints=False, persist_result=False)
def cell_flow(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any] | State:
    """One cell (the round loop of flows/experiment.py); `cell` is its compact view, the registered
    cell of its key is run. A failure ends the flow run in a Failed state carrying its one-line
    reason: Prefect then neither logs an engine traceback nor persists the exception (as a pickle)
    among the sweep's results. A stop (Ctrl-C, SIGTERM, the memory guard) ends it Cancelled, carrying
    the STOPPED row. A lost Dask scheduler ends the cell LOST."""
    cell = _PLANNED[cell["key"]]
    try:
        # The cell's tasks carry no tags (the flow runs do): Prefect asks its server for a tag's
        # concurrency slots at the start of every tagged task run, a round trip to a server that
        # runs at a lower priority than training, which stalled rounds by ~2 s every few rounds.
        with TagsContext(current_tags=set()):
            row = run_cell.fn(cell, tracking)
        return _stopped(row["message"], row) if row["status"] == "STOPPED" else row
    except SchedulerLost as err:
        print(f"cell {cell['name']} stopped: {err}", flush=True)
        return {"cell": cell["name"], "status": "LOST", "message": str(err)}
    except KNOWN_FAILURES as err:
        return Failed(message=f"{type(err).__name__}: {' '.join(str(err).split())}")
    except Exception as err:  # a bug: its traceback, then the same Failed state
        log.exception("cell %s: unexpected error", cell["name"])
        return Failed(message=f"{type(err).__name__}: {err}")


def run_one(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """One cell's subflow, tagged with its options; its summary row (FAILED with the reason printed
    when it fails)."""
    run = cell_flow.with_options(flow_run_name=cell["name"], task_runner=task_runner(cell))
    with tags(*view.cell_tags(cell)):
        state = run(view.compact_cell(cell), tracking, return_state=True)
    if state.is_completed() or state.is_cancelled():  # LOST and STOPPED are clean, resumable ends
        return rows_of(state)
    print(f"cell {cell['name']} failed: {state.message}", flush=True)
    return {"cell": cell["name"], "status": "FAILED"}


def run_cells(cells: list[dict[str, Any]], tracking: dict[str, Any], parallel: int) -> list[dict[str, Any]]:
    """Every cell's row, in the grid's order; after a STOPPED or LOST cell, no new cell starts."""
    rows: list[dict[str, Any] | None] = [None] * len(cells)
    halted = threading.Event()

    def run(i: int) -> None:
        if halted.is_set() or stop_requested():
            rows[i] = {"cell": cells[i]["name"], "status": "NOT RUN"}
            return
        rows[i] = run_one(cells[i], tracking)
        if rows[i]["status"] in ("STOPPED", "LOST"):
            halted.set()

    if parallel <= 1 or len(cells) <= 1:
        for i in range(len(cells)):
            run(i)
    else:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="fedsweep-cell") as pool:
            # One copy of the flow's context per cell: a Context cannot be entered by two threads.
            futures = [pool.submit(contextvars.copy_context().run, run, i) for i in range(len(cells))]
            for future in futures:
                future.result()
    return [
        row if row["status"] != "LOST" else {**row, "status": "FAILED"} for row in rows if row is not None
    ]


def _stopped(message: str, rows: Any) -> State:
    """The end of a flow run stopped cleanly: Cancelled, with the reason, carrying its rows."""
    return Cancelled(message=f"{message}; committed rounds are kept and re-running resumes", data=rows)


def rows_of(state: State) -> Any:
    """What a cell's or the sweep's flow run returned: a Cancelled one (a clean stop) carries it too."""
    return state.result(raise_on_failure=not state.is_cancelled())


@flow(name="sweep", persist_result=False)
def sweep_flow(sweep: dict[str, Any], tracking: dict[str, Any]) -> list[dict[str, Any]] | State:
    """Run every cell of `sweep` (its name, folder and cells' compact views; a failed cell does not
    stop the others; the memory guard, Ctrl-C, SIGTERM and a lost Dask scheduler do); write the
    summary, show it as an artifact, and log it with the headline metrics and plots to MLflow."""
    started = time.perf_counter()
    where = describe()
    if where:
        create_link_artifact(
            key="dask-dashboard",
            link=where["dask_dashboard"],
            description=f"Dask scheduler {where['dask_scheduler']}",
        )
    cells = [_PLANNED[cell["key"]] for cell in sweep["cells"]]
    parallel = cells[0]["config"]["runner"]["parallel_cells"] if cells else 1
    rows = [
        {"run": sweep["run"], **row, "key": cell["key"]}
        for cell, row in zip(cells, run_cells(cells, tracking, parallel), strict=True)
    ]
    report = summary.report_settings(cells[0]["config"].get("report") if cells else None)
    rows = summary.with_time_to_target(rows, report)  # one target for the whole sweep
    out = Path(sweep["dir"])
    append_summary(out, rows)
    files = {"summary.csv": summary.to_csv(rows), "summary.md": summary.to_markdown(rows)}  # this run's
    print("\n" + summary.to_text(rows) + f"\n\nsummary: {out / 'summary.md'} (every run's rows)", flush=True)
    sweep_artifact(sweep["name"], files["summary.md"], tracking)
    if tracking:
        statuses = {r["status"] for r in rows}
        status = "FINISHED" if statuses == {"FINISHED"} else "KILLED" if "STOPPED" in statuses else "FAILED"
        metrics, plots = report_sweep(
            tracking,
            [c["key"] for c in cells],
            rows,
            time.perf_counter() - started,
            plots=not stop_requested(),
        )
        track.finish_run(
            tracking["uri"],
            tracking["parent_run_id"],
            status,
            {},
            {**{name: text.encode() for name, text in files.items()}, **plots},
            metrics=metrics,
        )
    stopped = [row for row in rows if row["status"] == "STOPPED"]
    return _stopped(f"cell {stopped[0]['cell']} {stopped[0]['message']}", rows) if stopped else rows

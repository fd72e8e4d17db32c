"""The sweep flow: one child flow run per cell, then the summary table."""

import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from fedsweep import summary
from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.policy import CellFailed
from flows.experiment import run_cell
from flows.interrupt import stop_requested
from tasks import track
from fedsweep.execution import parallel_clients

log = logging.getLogger("fedsweep")
# A cell that ends for one of these reasons says so in one line; any other exception is a bug and
# gets its traceback.
KNOWN_FAILURES = (CheckpointError, CellFailed)


def task_runner(cell: dict[str, Any]) -> ThreadPoolTaskRunner:
    """Client-epoch tasks run in threads of this process; each hands its training to the cell's
    executor (fedsweep/execution/)."""
    return ThreadPoolTaskRunner(max_workers=parallel_clients(cell["config"]["runner"]["max_parallel_clients"]))


@flow(name="cell", log_prints=False, persist_result=False)
def cell_flow(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any] | State:
    """One cell (the round loop of flows/experiment.py). A failure ends the flow run in a Failed
    state carrying its one-line reason: Prefect then neither logs an engine traceback nor persists
    the exception (as a pickle) among the sweep's results."""
    try:
        return run_cell.fn(cell, tracking)
    except KNOWN_FAILURES as err:
        return Failed(message=f"{type(err).__name__}: {' '.join(str(err).split())}")
    except Exception as err:  # noqa: BLE001 - a bug: its traceback, then the same Failed state
        log.exception("cell %s: unexpected error", cell["name"])
        return Failed(message=f"{type(err).__name__}: {err}")


@flow(name="sweep", persist_result=False)
def sweep_flow(sweep: dict[str, Any], tracking: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every cell (a failed cell does not stop the others; the memory guard, Ctrl-C and SIGTERM
    do); write and log the summary."""
    rows = []
    for cell in sweep["cells"]:
        if stop_requested() or (rows and rows[-1]["status"] == "STOPPED"):
            rows.append({"cell": cell["name"], "status": "NOT RUN"})
            continue
        run = cell_flow.with_options(flow_run_name=cell["name"], task_runner=task_runner(cell))
        state = run(cell, tracking, return_state=True)
        if state.is_completed():  # STOPPED (memory guard, Ctrl-C) is a clean, resumable end
            rows.append(state.result())
        else:
            print(f"cell {cell['name']} failed: {state.message}", flush=True)
            rows.append({"cell": cell["name"], "status": "FAILED"})
    out = Path(sweep["dir"])
    files = {"summary.csv": summary.to_csv(rows), "summary.md": summary.to_markdown(rows)}
    for name, text in files.items():
        (out / name).write_text(text)
    print("\n" + summary.to_text(rows) + f"\n\nsummary: {out / 'summary.md'}", flush=True)
    if tracking:
        statuses = {r["status"] for r in rows}
        status = "FINISHED" if statuses == {"FINISHED"} else "KILLED" if "STOPPED" in statuses else "FAILED"
        track.finish_run(
            tracking["uri"], tracking["parent_run_id"], status, {},
            {name: text.encode() for name, text in files.items()},
        )
    return rows

"""The sweep flow: one child flow run per cell, then the summary table."""

import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from fedsweep import summary
from flows.experiment import run_cell
from tasks import track
from fedsweep.execution import parallel_clients

log = logging.getLogger("fedsweep")


def task_runner(cell: dict[str, Any]) -> ThreadPoolTaskRunner:
    """Client-epoch tasks run in threads of this process; each hands its training to the cell's
    executor (fedsweep/execution/)."""
    return ThreadPoolTaskRunner(max_workers=parallel_clients(cell["config"]["runner"]["max_parallel_clients"]))


@flow(name="sweep")
def sweep_flow(sweep: dict[str, Any], tracking: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every cell (a failed cell does not stop the others, the memory guard does); write and log
    the summary."""
    rows = []
    for cell in sweep["cells"]:
        if rows and rows[-1]["status"] == "STOPPED":
            rows.append({"cell": cell["name"], "status": "NOT RUN"})
            continue
        cell_flow = run_cell.with_options(flow_run_name=cell["name"], task_runner=task_runner(cell))
        state = cell_flow(cell, tracking, return_state=True)
        if state.is_completed():  # STOPPED by the memory guard is a clean, resumable end
            rows.append(state.result())
        else:
            error = state.result(raise_on_failure=False)
            print(f"cell {cell['name']} failed: {type(error).__name__}: {error}", flush=True)
            rows.append({"cell": cell["name"], "status": "FAILED"})
    out = Path(sweep["dir"])
    files = {"summary.csv": summary.to_csv(rows), "summary.md": summary.to_markdown(rows)}
    for name, text in files.items():
        (out / name).write_text(text)
    print("\n" + summary.to_text(rows) + f"\n\nsummary: {out / 'summary.md'}", flush=True)
    if tracking:
        status = "FINISHED" if all(r["status"] == "FINISHED" for r in rows) else "FAILED"
        track.finish_run(
            tracking["uri"], tracking["parent_run_id"], status, {},
            {name: text.encode() for name, text in files.items()},
        )
    return rows

"""The sweep flow: one child flow run per cell, then the summary table."""

import logging
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from fedsweep import summary
from flows.experiment import run_cell
from tasks import track

log = logging.getLogger("fedsweep")


@flow(name="sweep")
def sweep_flow(sweep: dict[str, Any], tracking: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every cell (a failed cell does not stop the others); write and log the summary."""
    rows = []
    for cell in sweep["cells"]:
        workers = int(cell["config"]["runner"]["max_parallel_clients"])
        cell_flow = run_cell.with_options(
            flow_run_name=cell["name"], task_runner=ThreadPoolTaskRunner(max_workers=workers)
        )
        state = cell_flow(cell, tracking, return_state=True)
        if state.is_completed():
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

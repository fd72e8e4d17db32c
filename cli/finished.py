"""A sweep whose every cell is finished and recorded: decided from files alone, in a few seconds.

When a run of a sweep ends with every cell FINISHED (and, with tracking on, its MLflow parent run
finished), the sweep flow leaves a receipt in the sweep folder, `.finished/<plan key>.json`: the
tracking settings it ran with, each cell's folder, and its summary rows. Re-running the same command
(same plan key, so the same cells) then:

- checks the receipt against the plan (same tracking settings, same cell folders) and each cell's
  last checkpoint (every file against its manifest's sha256: `verified_round`), under the sweep
  folder's lock;
- appends the receipt's rows to summary.csv / summary.md as a skip (`rounds_run` 0, this run's
  `run`), prints the same lines and table as a full run would, and exits 0.

It starts no Prefect server and imports neither Prefect nor MLflow: nothing needs writing there, the
cells' MLflow child runs and the parent run are FINISHED with their final metrics and weights, and
Prefect's records of the run that finished them stand. Anything else (a receipt that does not match,
a cell with fewer committed rounds, `resume=false`) takes the full path, which deletes the receipt
before it starts and writes a new one only if it finishes everything again.
"""

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedsweep import summary
from fedsweep.checkpoint.storage import LocalStorage
from fedsweep.summary import append_summary
from server.leftovers import lock_sweep

log = logging.getLogger("fedsweep")
RECEIPTS = ".finished"


def receipt_path(sweep_dir: Path, plan_key: str) -> Path:
    return Path(sweep_dir) / RECEIPTS / f"{plan_key}.json"


def forget(sweep_dir: Path, plan_key: str) -> None:
    """Delete the plan's receipt: a full run is starting (called under the sweep's lock)."""
    receipt_path(sweep_dir, plan_key).unlink(missing_ok=True)


def write_receipt(
    *,
    sweep_dir: Path,
    plan_key: str,
    tracking: Mapping[str, Any],
    cells: list[Mapping[str, Any]],
    rows: list[Mapping[str, Any]],
) -> None:
    """Record that every cell of the plan is FINISHED and tracked (call only then)."""
    body = {
        "plan_key": plan_key,
        "tracking": dict(tracking),
        "dirs": {c["key"]: c["dir"] for c in cells},
        "rows": [dict(r) for r in rows],
    }
    LocalStorage(Path(sweep_dir) / RECEIPTS).write(f"{plan_key}.json", json.dumps(body, default=str).encode())


def finished_rows(plan: Any) -> list[dict[str, Any]] | None:
    """The receipt's rows when the plan's sweep is finished and recorded exactly as planned, else None."""
    from fedsweep.cell.layout import verified_round  # noqa: PLC0415 - torch: only with a receipt

    if not plan.resume or not plan.cells:
        return None
    try:
        body = json.loads(receipt_path(plan.dir, plan.key).read_text())
    except (OSError, ValueError):
        return None
    if body.get("tracking") != plan.tracking.model_dump() or body.get("plan_key") != plan.key:
        return None
    if body.get("dirs") != {c["key"]: c["dir"] for c in plan.cells}:
        return None
    store = plan.tracking.uri.removeprefix("sqlite:///")
    if plan.tracking.enabled and store != plan.tracking.uri and not Path(store).is_file():
        return None  # the local MLflow store was deleted: the full path records the runs again
    rows = {row.get("key"): row for row in body.get("rows", [])}
    if set(rows) != {c["key"] for c in plan.cells} or any(
        r.get("status") != "FINISHED" for r in rows.values()
    ):
        return None
    if any(verified_round(c["dir"]) < int(c["config"]["rounds"]) for c in plan.cells):
        return None  # a checkpoint is gone or damaged: the full path says what and recomputes
    return [rows[c["key"]] for c in plan.cells]


def skip_if_finished(plans: list[Any]) -> bool:
    """Every job of the command finished and recorded: say so for each (start-up line, skipped cells,
    summary) and return True; otherwise False, with nothing printed or written."""
    from cli.preview import announce  # noqa: PLC0415 - torch, as verified_round

    if not plans or not all(receipt_path(p.dir, p.key).is_file() and finished_rows(p) for p in plans):
        return False
    for plan in plans:
        announce(plan)
        if not skip_finished(plan):  # changed since the check above (a neighbour's run): run it all
            return False
    return True


def skip_finished(plan: Any) -> bool:
    """If the plan's sweep is finished and recorded: append the skip's rows, print what a full run
    prints, and return True (having started nothing); else False, having written nothing."""

    if not plan.resume or not receipt_path(plan.dir, plan.key).is_file():
        return False
    lock = lock_sweep(plan.dir)  # SweepLocked if the same sweep runs: the caller says so
    try:
        done = finished_rows(plan)
        if done is None:
            return False
        run = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = [{**row, "run": run, "rounds_run": 0} for row in done]
        for cell, row in zip(plan.cells, rows, strict=True):
            print(f"cell {cell['name']} is already finished ({row['rounds']} rounds): skipped", flush=True)
        append_summary(plan.dir, rows)
        print(
            "\n" + summary.to_text(rows) + f"\n\nsummary: {plan.dir / 'summary.md'} (every run's rows)",
            flush=True,
        )
        print(
            "every cell is finished and recorded: nothing to run (no Prefect server started, "
            "MLflow's runs unchanged)",
            flush=True,
        )
        return True
    finally:
        lock.close()

"""Runs a sweep plan: the Prefect API, the sweep flow, the summary.

Start-up work overlaps: the private Prefect server boots while data is loaded and MLflow opens its
database, so a sweep pays roughly the longest of them rather than their sum.
"""

import logging
import os
import shutil
import threading
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flows.plan import SweepPlan
from flows.server import LocalServer, private_server

RESULTS_DIR = "prefect-results"


def _prefect_env(plan: SweepPlan) -> LocalServer | None:
    """Point Prefect at the user's server, or at our private one; set quiet console defaults."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return private_server(plan.dir)


def _start_over(plan: SweepPlan) -> None:
    """`resume=false`: forget every cell's checkpoints and persisted task results."""
    from fedsweep.checkpoint.storage import open_storage  # noqa: PLC0415

    for cell in plan.cells:
        parent, _, leaf = cell["dir"].rstrip("/").rpartition("/")
        open_storage(parent).delete_tree(leaf)
        shutil.rmtree(plan.dir / RESULTS_DIR / cell["key"], ignore_errors=True)


def _prepare(plan: SweepPlan) -> None:
    """Write each cell's config and warm the first cell's runtime (dataset loaded once per process)."""
    from fedsweep.cell import cell_env, write_cell_config  # noqa: PLC0415

    for cell in plan.cells:
        write_cell_config(cell["dir"], key=cell["key"], name=cell["name"], config=cell["config"])
    if plan.cells:
        cell_env(plan.cells[0]["dir"])


def run_sweep(plan: SweepPlan) -> int:
    """Run the sweep; returns the number of failed cells."""
    plan.dir.mkdir(parents=True, exist_ok=True)
    server = _prefect_env(plan)  # first: its start-up is the longest chain of all
    from fedsweep import execution  # noqa: PLC0415

    # Worker processes next, while this process has no other thread: they fork (no imports to pay).
    execution.start([(cell["config"], cell["dir"]) for cell in plan.cells])
    where = execution.describe()
    if where:
        print(f"dask: scheduler {where['dask_scheduler']}, dashboard {where['dask_dashboard']}", flush=True)
    try:
        return _run(plan, server)
    finally:
        execution.shutdown()


def _run(plan: SweepPlan, server: LocalServer | None) -> int:
    from flows.guard import guard_results  # noqa: PLC0415
    from flows.leftovers import clean_temp_files, crash_stale_flow_runs, lock_sweep  # noqa: PLC0415 - torch

    lock = lock_sweep(plan.dir)  # noqa: F841 - held until exit; the kernel drops it if we are killed

    if not plan.resume:
        _start_over(plan)
    clean_temp_files([cell["dir"] for cell in plan.cells])
    guard_results(plan.dir / RESULTS_DIR)  # before Prefect can read a planted or damaged record
    with ThreadPoolExecutor(max_workers=2) as pool:
        prepared = pool.submit(_prepare, plan)
        tracking = pool.submit(_open_tracking, plan) if plan.tracking.enabled else None
        prepared.result()
        if server is not None:
            server.wait_ready()
        tracking_info = tracking.result() if tracking else {}
    from prefect.settings import (  # noqa: PLC0415
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    from flows.sweep_flow import sweep_flow  # noqa: PLC0415

    # Client epochs run in worker threads, where Prefect warns on every task that a timeout cannot
    # interrupt a blocking call; fedsweep's hangs are interruptible, so the warning is noise.
    logging.getLogger("prefect.task_runs").addFilter(
        lambda record: "running in a worker thread" not in record.getMessage()
    )

    settings = {
        # The heartbeat thread costs ~1 s per flow run at exit and our runs are local anyway.
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: str((plan.dir / RESULTS_DIR).absolute()),
    }
    with temporary_settings(updates=settings):
        # Flow runs of a killed earlier run of this sweep are still Running in Prefect: they are
        # marked Crashed beside the sweep (created before now, so never this run's own).
        stale = threading.Thread(
            target=crash_stale_flow_runs, name="fedsweep-crash-stale",
            args=([plan.name, *(cell["name"] for cell in plan.cells)], datetime.now(timezone.utc)),
        )
        stale.start()
        try:
            rows = sweep_flow.with_options(flow_run_name=plan.name)(
                sweep={"name": plan.name, "dir": str(plan.dir), "cells": plan.cells}, tracking=tracking_info
            )
        finally:
            stale.join()
            _flush_prefect_client()
    return sum(1 for row in rows if row["status"] != "FINISHED")


def _flush_prefect_client() -> None:
    """Send what Prefect's client still holds (task-run events, logs) to the API now: at exit it
    would race the private server's shutdown, and the last task runs would be missing in the UI."""
    from prefect.events.worker import EventsWorker  # noqa: PLC0415
    from prefect.logging.handlers import APILogWorker  # noqa: PLC0415

    for service in (EventsWorker, APILogWorker):
        service.drain_all(timeout=15, at_exit=False)


def _open_tracking(plan: SweepPlan) -> dict[str, Any]:
    """The sweep's MLflow experiment and parent run (before Prefect is up: plain calls, not tasks)."""
    from tasks import track  # noqa: PLC0415

    uri, root = plan.tracking.uri, plan.tracking.artifact_root
    exp_id, parent = track.open_sweep_run.fn(uri, root, plan.name, plan.key, plan.params, fresh=not plan.resume)
    from fedsweep.execution import describe  # noqa: PLC0415

    for tag, value in describe().items():  # tags, not params: a resumed sweep may run on another cluster
        track.client(uri).set_tag(parent, tag, value)
    return {"uri": uri, "experiment_id": exp_id, "parent_run_id": parent}

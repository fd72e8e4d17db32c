"""Runs a sweep plan: the Prefect API, the sweep flow, the summary.

Start-up work overlaps: the Prefect server (when one must be started) boots while data is loaded
and MLflow opens its database, so a sweep pays roughly the longest of them rather than their sum.
"""

import logging
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from prefect import tags
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import (
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_RESULTS_LOCAL_STORAGE_PATH,
    temporary_settings,
)
from tqdm import tqdm

from cli.finished import forget, write_receipt
from cli.plan import SweepPlan
from fedsweep import execution
from fedsweep.cell.cell import forget_cell, open_cell
from fedsweep.cell.layout import write_cell_config
from fedsweep.checkpoint.storage import open_storage
from fedsweep.failures import failure_kind
from fedsweep.interrupt import run_interruptible, stop_requested
from flows import view
from flows.cell_flow import register, rows_of
from flows.sweep_flow import SWEEP_WAITS, sweep_flow
from server.leftovers import clean_temp_files, crash_stale_flow_runs, lock_sweep, run_tags, stop_own_flow_runs
from server.private import LocalServer, SharedServer, prefect_server
from server.records import Records, finish_records, records
from server.untrusted import guard_results
from tasks import track

RESULTS_DIR = "prefect-results"
T = TypeVar("T")


class _LineHandler(logging.StreamHandler):
    """Each record on a line of its own, above the cells' progress bars (tqdm redraws them below)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own rule: a failed line never breaks the run
            self.handleError(record)


def _show_info_lines() -> None:
    """fedsweep's INFO lines (a resume, a stop, routine clean-up) on stderr as plain lines; its
    warnings go to the console handler Prefect puts on the root logger (here until it exists)."""
    logger = logging.getLogger("fedsweep")
    if not any(getattr(h, "fedsweep_info", False) for h in logger.handlers):
        handler = _LineHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        # Warnings too until Prefect (imported later) has put its console handler on the root logger.
        handler.addFilter(lambda record: record.levelno < logging.WARNING or not logging.getLogger().handlers)
        handler.fedsweep_info = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _start_over(plan: SweepPlan) -> None:
    """`resume=false`: forget every cell's checkpoints and persisted task results (its MLflow runs
    are superseded by `_open_tracking`)."""
    for cell in plan.cells:
        parent, _, leaf = cell["dir"].rstrip("/").rpartition("/")
        open_storage(parent).delete_tree(leaf)
        shutil.rmtree(plan.dir / RESULTS_DIR / cell["key"], ignore_errors=True)


def _prepare(plan: SweepPlan) -> None:
    """Write each cell's config and warm the first cell's runtime (dataset loaded once per process)."""
    for cell in plan.cells:
        write_cell_config(
            cell["dir"], key=cell["key"], name=cell["name"], config=cell["config"], suffix=cell.get("suffix")
        )
        forget_cell(cell["dir"])  # an earlier job of this process may have opened it with other rounds
    if plan.cells:
        open_cell(plan.cells[0]["dir"])


def run_sweep(plan: SweepPlan) -> int:
    """Run the sweep; returns the number of failed cells (SweepLocked if it already runs)."""
    plan.dir.mkdir(parents=True, exist_ok=True)
    lock = lock_sweep(plan.dir)  # noqa: F841 - held until exit; the kernel drops it if we are killed
    forget(plan.dir, plan.key)  # a full run: the receipt is written again only if it finishes everything
    _show_info_lines()
    server = prefect_server(plan.dir)  # found or started: the command line already started it
    execution.start(plan.cells)  # already started by the command line for its first job
    for info in execution.describe():
        print(info.line, flush=True)
    try:
        return _run(plan, server)
    finally:
        execution.shutdown()


def _run(plan: SweepPlan, server: LocalServer | SharedServer | None) -> int:
    started = datetime.now(UTC)
    run = started.strftime("%Y-%m-%dT%H:%M:%SZ")  # names this run's rows in summary.csv (and its flow run)
    if not plan.resume:
        _start_over(plan)
    clean_temp_files([cell["dir"] for cell in plan.cells])
    guard_results(plan.dir / RESULTS_DIR)  # before Prefect can read a planted or damaged record
    watch = records()  # says what the start-up waits for, if it waits long (server/records.py)
    with ThreadPoolExecutor(max_workers=2) as pool:
        prepared = pool.submit(_prepare, plan)
        tracking = pool.submit(_open_tracking, plan) if plan.tracking.enabled else None
        _step(watch, "the data to be ready", prepared.result)
        if server is not None:
            _step(watch, "the Prefect server to start", server.wait_ready)
        tracking_info = _step(watch, "MLflow's database", tracking.result) if tracking else {}
    logging.getLogger("prefect.task_runs").addFilter(_task_log_worth_showing)
    view.quiet_task_runs()

    settings = {
        # The heartbeat thread costs ~1 s per flow run at exit and our runs are local anyway.
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        # fedsweep's servers hold a request their sqlite database refuses for up to 20 s, then answer
        # 503 with Retry-After: 1 (server/process.py): 8 retries ride out ~3 min of a locked database,
        # each within a second of its release. A server of the user's own (PREFECT_API_URL) keeps
        # Prefect's exponential back-off (2, 4, ... s: ~8 min in all), and nothing of it blocks a
        # round: flow runs start ahead of their cell's turn, artifacts go in the background
        # (server/records.py), and the terminal says when records are late.
        PREFECT_CLIENT_MAX_RETRIES: 8,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: str((plan.dir / RESULTS_DIR).absolute()),
    }
    # Flow runs left Running by a killed earlier run of this sweep folder are marked Crashed beside
    # the sweep; they are found by the tags every flow run of ours carries (server/leftovers.py).
    stale = threading.Thread(
        target=crash_stale_flow_runs, name="fedsweep-crash-stale", args=(plan.dir,), daemon=True
    )
    stale.start()
    register(plan.cells)
    sweep = {
        "name": plan.name,
        "dir": str(plan.dir),
        "cells": [view.compact_cell(cell) for cell in plan.cells],
        "run": run,
    }
    name = view.sweep_run_name(plan.name, started)
    with temporary_settings(updates=settings), tags(*run_tags(plan.dir), view.experiment_tag(plan.name)):
        waits = {"start": records().wait("the sweep's flow run to start")}  # the watch starts too
        SWEEP_WAITS.set(waits)
        try:
            rows = run_interruptible(
                lambda: rows_of(
                    sweep_flow.with_options(flow_run_name=name)(
                        sweep=sweep, tracking=tracking_info, return_state=True
                    )
                ),
                timeout_s=max(float(cell["config"]["runner"]["stop_timeout_s"]) for cell in plan.cells),
                on_hard_stop=_hard_stop_steps(plan, server, tracking_info),
            )
        finally:
            for token in waits.values():
                records().done(token)
            _wrap_up_records(stale)
    failed = sum(1 for row in rows if row["status"] != "FINISHED")
    if not failed and len(rows) == len(plan.cells) and not stop_requested():
        write_receipt(
            sweep_dir=plan.dir,
            plan_key=plan.key,
            tracking=plan.tracking.model_dump(),
            cells=plan.cells,
            rows=rows,
        )
    return failed


def _task_log_worth_showing(record: logging.LogRecord) -> bool:
    """Prefect's task-run lines, less the noise: tracebacks are for bugs.

    - A client epoch that failed for a known reason (a fault: transient, oom, timeout, ...) is data
      for aggregation and has its one warning line from the round loop; Prefect's ERROR line with
      the traceback, and its "Finished in state Failed" line, are dropped. Other exceptions keep
      their traceback.
    - Client epochs run in worker threads, where Prefect warns on every task that a timeout cannot
      interrupt a blocking call; fedsweep's hangs are interruptible, so the warning is noise.
    """
    message = record.getMessage()
    if "running in a worker thread" in message or message.startswith("Finished in state Failed("):
        return False
    error = record.exc_info[1] if record.exc_info else None
    return error is None or failure_kind(error) == "other"


def _hard_stop_steps(
    plan: SweepPlan, server: LocalServer | SharedServer | None, tracking: dict[str, Any]
) -> list:
    """What a hard stop (a second Ctrl-C, or a round that did not end in time) does before exiting:
    tell Prefect and MLflow that this process's runs stopped, flush, stop the server last."""
    steps = [lambda: stop_own_flow_runs(plan.dir), lambda: _flush_prefect_client(timeout_s=2)]
    if tracking:
        steps.insert(0, lambda: track.stop_runs(tracking["uri"], tracking["parent_run_id"]))
    if server is not None:
        steps.append(lambda: server.stop(idle_wait_s=1))
    return steps


def _step(watch: Records, what: str, call: Callable[[], T], phase: str = "starting") -> T:
    """A step of the start-up (or wrap-up), said in the terminal if the phase is silent for a few seconds."""
    token = watch.wait(what, phase=phase)
    try:
        return call()
    finally:
        watch.done(token)


def _wrap_up_records(stale: threading.Thread) -> None:
    """Send what Prefect's client and the records writer still hold, each bounded; the watch says
    so if it takes more than a few seconds (server/records.py)."""
    watch = records()
    watch.ending = True
    _step(
        watch,
        "marking flow runs of a killed earlier run Crashed",
        lambda: stale.join(timeout=30),
        phase="finishing",
    )
    _step(watch, "the sweep's artifacts", lambda: watch.drain(timeout_s=30), phase="finishing")
    # After the steps above, which may queue Prefect events too (flushed first, one was left at exit:
    # Prefect's "Still processing items" warning, 2 csfl runs in 3).
    _step(watch, "the last task runs and logs", _flush_prefect_client, phase="finishing")
    finish_records(timeout_s=30)  # what drain left unsent is said; the watch stops


def _flush_prefect_client(timeout_s: float = 15) -> None:
    """Send what Prefect's client still holds (task-run events, logs) to the API now: at exit it
    would race the private server's shutdown, and the last task runs would be missing in the UI."""
    for service in (EventsWorker, APILogWorker):
        service.drain_all(timeout=timeout_s, at_exit=False)


def _open_tracking(plan: SweepPlan) -> dict[str, Any]:
    """The sweep's MLflow experiment and parent run (before Prefect is up: plain calls, not tasks)."""
    uri, root = plan.tracking.uri, plan.tracking.artifact_root
    exp_id, parent = track.open_sweep_run.fn(
        uri,
        root,
        plan.name,
        plan.key,
        plan.params,
        fresh=not plan.resume,
        cell_keys=tuple(cell["key"] for cell in plan.cells),
    )
    for info in execution.describe():  # tags, not params: a resumed sweep may run on another cluster
        for tag, value in info.tags.items():
            track.client(uri).set_tag(parent, tag, value)
    return {"uri": uri, "experiment_id": exp_id, "parent_run_id": parent, "ui_url": plan.tracking.ui_url}

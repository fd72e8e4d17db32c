"""What a killed run leaves behind, and how the next run deals with it.

- An orphaned private Prefect server: impossible, it dies with us (server/private.py). The shared
  server outlives us by design and exits when no sweep holds its lease (server/shared.py).
- Temp files of interrupted atomic writes: removed when their writer's pid is dead.
- Flow runs stuck in Running in Prefect: marked Crashed, so the UI tells the truth. A flow run is
  ours if its tags name this sweep folder and this host, and stale if the process its tag names is
  dead; runs of a live process (a neighbour's sweep of the same name) are never touched.
- A second copy of the same sweep running at once: refused, by an flock on the sweep folder that
  the kernel releases when its holder dies, so a lock is never stale.
"""

import fcntl
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO

import psutil

from fedsweep.checkpoint.storage import LocalStorage, open_storage

log = logging.getLogger("fedsweep")
DIR_TAG, HOST_TAG, PID_TAG = "fedsweep-dir:", "fedsweep-host:", "fedsweep-pid:"


class SweepLocked(RuntimeError):
    """Another live process runs this sweep."""


def lock_sweep(sweep_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the sweep folder for this process's lifetime."""
    handle = (sweep_dir / ".lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SweepLocked(
            f"sweep folder {sweep_dir} is in use by pid {holder}; wait for it or stop it"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def clean_temp_files(cell_dirs: list[str]) -> int:
    """Remove temp files left by killed writers in local cell folders; returns how many."""
    removed = 0
    for cell_dir in cell_dirs:
        storage = open_storage(cell_dir)
        if isinstance(storage, LocalStorage) and Path(cell_dir).exists():
            removed += len(storage.clean_temp())
    if removed:  # what an interrupted write leaves: cleaning it is routine, not a problem
        log.info("removed %d temp file(s) left by an interrupted run", removed)
    return removed


def run_tags(sweep_dir: Path) -> list[str]:
    """Prefect tags naming who runs a flow run: this sweep folder, this host, this process.

    Leftovers are recognised by them, never by the sweep's name: another sweep of the same name, in
    another folder or by another user sharing PREFECT_HOME, is not ours to touch.
    """
    return [
        f"{DIR_TAG}{Path(sweep_dir).resolve()}",
        f"{HOST_TAG}{socket.gethostname()}",
        f"{PID_TAG}{os.getpid()}",
    ]


def crash_stale_flow_runs(sweep_dir: Path) -> int:
    """Mark Crashed the flow runs of this sweep folder on this host left Running/Pending by a
    process that is gone (a kill -9, a power cut); returns how many."""
    message = "the process running this flow was killed; a later run of the same sweep resumed it"
    marked = _mark_flow_runs(sweep_dir, _dead, "Crashed", message)
    if marked:
        log.info("marked %d flow run(s) left Running by a killed process as Crashed", marked)
    return marked


def stop_own_flow_runs(sweep_dir: Path) -> int:
    """Mark this process's Running/Pending flow runs Cancelled (a hard stop: the process exits next)."""
    message = "stopped by Ctrl-C or SIGTERM; committed rounds are kept and re-running resumes"
    return _mark_flow_runs(sweep_dir, lambda pid, _: pid == os.getpid(), "Cancelled", message)


def _dead(pid: int, created: datetime) -> bool:
    """Whether the process `pid` that created a flow run at `created` is gone (its pid may be reused)."""
    if pid == os.getpid():
        return False
    try:
        return psutil.Process(pid).create_time() > created.timestamp() + 1.0
    except psutil.Error:
        return True


def _mark_flow_runs(
    sweep_dir: Path, select: Callable[[int, datetime], bool], state: str, message: str
) -> int:
    from prefect.client.orchestration import get_client  # noqa: PLC0415 - Prefect: only once a server answers
    from prefect.client.schemas.filters import (  # noqa: PLC0415 - as get_client
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415 - as get_client
    from prefect.client.schemas.sorting import FlowRunSort  # noqa: PLC0415 - as get_client
    from prefect.states import Cancelled, Crashed  # noqa: PLC0415 - as get_client

    here = run_tags(sweep_dir)[:2]  # this folder on this host, any process
    stuck = FlowRunFilter(
        tags=FlowRunFilterTags(all_=here),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
    )
    new_state = {"Crashed": Crashed, "Cancelled": Cancelled}[state]
    marked = 0
    try:
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(flow_run_filter=stuck, sort=FlowRunSort.ID_DESC, limit=200):
                pids = [
                    int(t[len(PID_TAG) :])
                    for t in run.tags
                    if t.startswith(PID_TAG) and t[len(PID_TAG) :].isdigit()
                ]
                if len(pids) == 1 and select(pids[0], run.created):
                    client.set_flow_run_state(run.id, new_state(message=message), force=True)
                    marked += 1
    except Exception as exc:  # noqa: BLE001 - housekeeping for the UI: never a reason to fail the sweep
        log.warning("could not mark flow runs as %s: %s", state, exc)
    return marked

"""What a killed run leaves behind, and how the next run deals with it.

- An orphaned private Prefect server: impossible, it dies with us (flows/server.py).
- Temp files of interrupted atomic writes: removed when their writer's pid is dead.
- Flow runs stuck in Running in Prefect: marked Crashed, so the UI tells the truth.
- A second copy of the same sweep running at once: refused, by an flock on the sweep folder that
  the kernel releases when its holder dies, so a lock is never stale.
"""

import fcntl
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import IO

from fedsweep.checkpoint.storage import LocalStorage, open_storage

log = logging.getLogger("fedsweep")


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
        raise SweepLocked(f"sweep folder {sweep_dir} is in use by pid {holder}; wait for it or stop it") from None
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
    if removed:
        log.warning("removed %d temp file(s) left by an interrupted run", removed)
    return removed


def crash_stale_flow_runs(names: list[str], created_before: datetime) -> int:
    """Mark flow runs of these names, created before `created_before` and still Running/Pending, as
    Crashed (their process is gone: the sweep folder's lock says no other process runs it)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415
    from prefect.client.schemas.sorting import FlowRunSort  # noqa: PLC0415
    from prefect.states import Crashed  # noqa: PLC0415

    stuck = FlowRunFilter(
        name=FlowRunFilterName(any_=names),
        expected_start_time=FlowRunFilterExpectedStartTime(before_=created_before),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
    )
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=stuck, sort=FlowRunSort.ID_DESC, limit=200)
            for run in runs:
                message = "the process running this flow was killed; a later run of the same sweep resumed it"
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    except Exception as exc:  # noqa: BLE001 - housekeeping for the UI: never a reason to fail the sweep
        log.warning("could not mark the flow runs of a killed earlier run as Crashed: %s", exc)
        return 0
    if runs:
        log.warning("marked %d flow run(s) left Running by a killed process as Crashed", len(runs))
    return len(runs)

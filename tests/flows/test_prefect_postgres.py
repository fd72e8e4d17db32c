"""The private Prefect server on PostgreSQL (PREFECT_SERVER_DATABASE_CONNECTION_URL): a tiny sweep
with two cells at once records its flow and task runs there, read back through Prefect's own API.

The test starts its own PostgreSQL server (Debian's `postgresql` package, which .ci/run installs).
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres import Postgres, binaries
from sweep_cli import run_sweep, sweep_env

pytestmark = pytest.mark.slow
ARGS = (
    "+experiment=quickstart",
    "num_clients=10",
    "rounds=1",
    "runner.parallel_cells=2",
    "runner.progress=false",
)
CELLS = {"fedavg-c10-r1-s0", "fedprox-c10-r1-s0"}


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    where = binaries()
    if where is None:
        pytest.skip("PostgreSQL's binaries are absent (apt-get install -y postgresql)")
    server = Postgres(where)
    try:
        yield server
    finally:
        server.stop()


def test_sweep_records_its_runs_in_postgresql(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: an empty PREFECT_HOME, so that a sqlite database there would show
    url = postgres.create_database("prefect")
    home = tmp_path / "prefect-home"
    cwd = tmp_path / "sweep"
    cwd.mkdir()
    # Execute
    run_sweep(cwd, home, *ARGS, env={"PREFECT_SERVER_DATABASE_CONNECTION_URL": url})
    flow_runs, task_runs = _read_back(url, home, tmp_path / "reader.log", monkeypatch)
    # Assert: the sweep's flow run and one per cell, completed, under the sweep; every task run too
    states = {
        re.sub(r"-\d{8}-\d{6}$", "", run.name): run.state_type.value for run in flow_runs
    }  # <sweep>-<start>
    assert states == {"quickstart": "COMPLETED", **dict.fromkeys(CELLS, "COMPLETED")}, states
    sweep = next(run for run in flow_runs if run.name.startswith("quickstart-"))
    assert all(run.parent_task_run_id is not None for run in flow_runs if run.name in CELLS)
    assert {run.flow_run_id for run in task_runs} >= {sweep.id}
    assert task_runs and {run.state_type.value for run in task_runs} == {"COMPLETED"}
    assert postgres.query("select count(*) from flow_run", "prefect") == "3"
    assert not (home / "prefect.db").exists()


def _read_back(url: str, home: Path, log: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """Flow runs and task runs as Prefect's REST API serves them, from the server on that database
    (the one the sweep used, still up for its idle timeout; a new one if it has gone), then stopped."""
    import signal

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from server.private import _shared

    for name, value in sweep_env(home).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", url)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    server = _shared()
    assert server is not None, log
    try:
        server.wait_ready(timeout_s=600)
        with (
            temporary_settings(updates={PREFECT_API_URL: server.url}),
            get_client(sync_client=True) as client,
        ):
            # The server records task runs in batches (about a second behind): read until they settle.
            deadline = time.monotonic() + 120
            while True:
                flow_runs = client.read_flow_runs(sort=FlowRunSort.ID_DESC, limit=50)
                task_runs = client.read_task_runs(sort=TaskRunSort.ID_DESC, limit=200)
                settled = all(
                    run.state_type is not None and run.state_type.value == "COMPLETED" for run in task_runs
                )
                if (task_runs and settled) or time.monotonic() > deadline:
                    return flow_runs, task_runs
                time.sleep(1)
    finally:
        server.stop(idle_wait_s=0)
        os.kill(server.pid, signal.SIGUSR1)  # now, not after its idle timeout: PostgreSQL stops next

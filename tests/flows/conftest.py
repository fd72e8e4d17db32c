import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def prefect_harness(prefect_server, tmp_path_factory: pytest.TempPathFactory):
    """In-process flow runs against the session's one Prefect server (tests/conftest.py), as
    `prefect_test_harness` would point them at a server of its own (DESIGN: shared harness)."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    results = tmp_path_factory.mktemp("prefect-results")
    settings = {
        PREFECT_API_URL: prefect_server.url,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(results),
    }
    with temporary_settings(updates=settings), _temporary_global_settings_context(get_settings_context()):
        yield
        APILogWorker.drain_all()  # what was sent reaches the server before the session lets it go
        EventsWorker.drain_all()


@pytest.fixture
def run_cell_here(prefect_harness, tmp_path, cell_config):
    """`run_cell_here(*overrides)` -> (summary row, checkpoint history) of one cell run in-process,
    its round loop (`flows.cell_flow.run_cell`) inside a flow run of its own, errors raised as they are."""
    from prefect import flow

    from fedsweep.cell.cell import open_cell
    from fedsweep.cell.layout import write_cell_config
    from fedsweep.checkpoint.storage import open_storage
    from fedsweep.checkpoint.store import CheckpointStore
    from fedsweep.grid import cell_key
    from flows.cell_flow import run_cell

    @flow(name="test-cell", persist_result=False)
    def one_cell(cell_dir: str) -> dict:
        return run_cell(open_cell(cell_dir), {})

    def run(*overrides: str, where: str = "a", location: str | None = None):
        config = cell_config(*overrides)
        key = cell_key(config)
        cell_dir = f"{location or tmp_path / where}/{key}"
        write_cell_config(cell_dir, key=key, name=f"test-{where}", config=config)
        row = one_cell(cell_dir)
        latest = CheckpointStore(storage=open_storage(f"{cell_dir}/checkpoints")).load_latest()
        return row, latest.meta["history"] if latest else []

    return run


@pytest.fixture(scope="session")
def state_reference(tmp_path_factory: pytest.TempPathFactory, prefect_home: Path) -> Path:
    """The folder of an uninterrupted run of sweep_cli.STATE_GRID (every kind of state, side by
    side): what killed and resumed runs of it must equal, bit for bit."""
    from gate import open_gate
    from sweep_cli import STATE_GRID, STATE_ROUNDS, run_sweep

    cwd = tmp_path_factory.mktemp("state-reference")
    open_gate(cwd, STATE_ROUNDS)  # no round waits
    run_sweep(cwd, prefect_home, *STATE_GRID, python_path=str(Path(__file__).parent))
    return cwd

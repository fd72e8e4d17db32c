import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """One Prefect test server for the session's in-process flow runs (DESIGN: shared harness)."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    results = tmp_path_factory.mktemp("prefect-results")
    settings = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_RESULTS_LOCAL_STORAGE_PATH: str(results)}
    with prefect_test_harness(server_startup_timeout=120), temporary_settings(updates=settings):
        yield


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

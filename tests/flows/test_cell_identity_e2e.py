"""A cell's identity end to end: a semantic setting (runner.amp) makes new cells and MLflow runs, a
non-semantic one (runner.progress, runner.retries) finds the finished cells and adds nothing."""

from pathlib import Path

import pytest
from sweep_cli import run_sweep

pytestmark = pytest.mark.slow
ARGS = ("+experiment=quickstart", "rounds=2", "strategy=fedavg", "num_clients=10")  # one cell


def children(cwd: Path) -> dict[str, dict[str, str]]:
    """The sweep's child runs in cwd/mlruns: {run id: {cell_key, status, sha256}}."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("quickstart")
    return {
        run.info.run_id: {
            "cell_key": run.data.tags["fedsweep.cell_key"],
            "status": run.info.status,
            "sha256": run.data.tags.get("final_weights_sha256", ""),
        }
        for run in client.search_runs([exp.experiment_id])
        if "fedsweep.cell_key" in run.data.tags
    }


def cell_dirs(cwd: Path) -> set[str]:
    return {p.name for p in (cwd / "outputs" / "quickstart" / "cells").iterdir()}


def test_amp_makes_new_cells_and_progress_reuses_the_finished_ones(
    tmp_path: Path, prefect_home: Path
) -> None:
    # Prepare: the plain run
    run_sweep(tmp_path, prefect_home, *ARGS)
    plain, plain_dirs = children(tmp_path), cell_dirs(tmp_path)
    # Execute
    run_sweep(tmp_path, prefect_home, *ARGS, "runner.amp=true")
    with_amp, amp_dirs = children(tmp_path), cell_dirs(tmp_path)
    run_sweep(tmp_path, prefect_home, *ARGS, "runner.amp=true", "runner.progress=false", "runner.retries=1")
    again, again_dirs = children(tmp_path), cell_dirs(tmp_path)
    # Assert: amp is a new cell with its own folder and its own finished child run
    assert len(plain) == 1 and len(plain_dirs) == 1
    new = {run_id: run for run_id, run in with_amp.items() if run_id not in plain}
    assert len(new) == 1 and len(amp_dirs - plain_dirs) == 1
    (amp_run,) = new.values()
    (plain_run,) = plain.values()
    assert amp_run["status"] == "FINISHED" and amp_run["cell_key"] != plain_run["cell_key"]
    assert amp_run["sha256"] and amp_run["sha256"] != plain_run["sha256"]
    assert with_amp[next(iter(plain))] == plain_run  # the float32 cell is left as it was
    # ... and settings that do not change the maths reuse it: no new cell, no new run
    assert again == with_amp and again_dirs == amp_dirs

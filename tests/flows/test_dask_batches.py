"""Batched clients on a Dask cluster (a LocalCluster of two single-thread workers on loopback): a
round's batch tasks run side by side, one per worker, and the cell finishes."""

import sqlite3
from pathlib import Path

import pytest
from sweep_cli import recorded, run_sweep

pytestmark = pytest.mark.slow
ARGS = (
    "+experiment=quickstart",
    "sweep_name=dask-batches",
    "faults=none",  # every client trains its whole round
    "strategy=fedavg",
    "num_clients=10",
    "rounds=2",
    "runner=dask",
    "runner.engine.n_workers=2",
    "runner.batch_clients=3",
    "runner.progress=false",
)


def test_a_rounds_batches_spread_over_the_workers(tmp_path: Path, prefect_home: Path) -> None:
    # Execute
    run_sweep(tmp_path, prefect_home, *ARGS)
    # Assert: FINISHED; both workers served every round; the batch tasks r<round>-c0-c2 ... ran two at a time
    run, metrics, _ = recorded(tmp_path, "dask-batches")["fedavg-c10-r2-s0"]
    assert run.info.status == "FINISHED" and run.data.tags["final_weights_sha256"]
    assert [value for _, value in metrics["workers"]] == [2.0, 2.0]
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        rows = db.execute(
            "SELECT name, start_time, end_time FROM task_run WHERE name GLOB 'r1-c*-c*' AND flow_run_id IN "
            "(SELECT id FROM flow_run WHERE name = 'fedavg-c10-r2-s0')"
        ).fetchall()
    spans = {name: (start, end) for name, start, end in rows}
    assert sorted(spans) == ["r1-c0-c2", "r1-c3-c5", "r1-c6-c8", "r1-c9-c9"]
    (a0, a1), (b0, b1) = spans["r1-c0-c2"], spans["r1-c3-c5"]
    assert a0 < b1 and b0 < a1, "the first two batches ran side by side"

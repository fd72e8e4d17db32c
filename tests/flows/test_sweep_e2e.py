"""The quickstart command end to end: real Prefect (the session's server) and real MLflow (sqlite),
read from the session's finished quickstart (`quickstart_sweep`, tests/conftest.py)."""

import csv
import re
import sqlite3

import pytest
from sweep_cli import QUICKSTART, QUICKSTART_CELLS, recorded, run_sweep
from test_interrupts import flow_runs

from fedsweep.weights import from_bytes, weights_sha256

pytestmark = pytest.mark.slow
METRICS = {
    "accuracy",
    "loss",
    "clients_ok",
    "clients_failed",
    "round_seconds",
    "train_seconds",
    "eval_seconds",
    "rss_mb",
}


@pytest.fixture(scope="module")
def first(quickstart_sweep):
    return quickstart_sweep


def test_mlflow_holds_one_parent_and_one_finished_child_per_cell(first) -> None:
    # Prepare
    cwd, _ = first
    # Execute
    runs = recorded(cwd, "quickstart")
    # Assert
    assert set(runs) == {"quickstart", "fedavg-c10-r2-s0", "fedprox-c10-r2-s0"}
    parent = runs["quickstart"][0]
    assert parent.info.status == "FINISHED"
    for name in ("fedavg-c10-r2-s0", "fedprox-c10-r2-s0"):
        run, metrics, client = runs[name]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert set(metrics) >= METRICS
        assert all([step for step, _ in metrics[key]] == [1, 2] for key in METRICS)
        assert run.data.params["local_epochs"] == "2" and "rounds" not in run.data.params  # a metric:
        assert run.data.metrics["rounds"] == 2  # a cell's run grows when the cell is extended
        assert run.data.params["choice.strategy"] == name.split("-")[0]
        assert "dataset.alpha" in run.data.params and "lr" in run.data.params


def test_artifacts_hold_the_config_and_the_weights_the_tag_hashes(first, tmp_path) -> None:
    cwd, _ = first
    run, _, client = recorded(cwd, "quickstart")["fedprox-c10-r2-s0"]
    config = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    weights = client.download_artifacts(run.info.run_id, "model/final.safetensors", str(tmp_path))
    assert "strategy:" in open(config).read()
    assert weights_sha256(from_bytes(open(weights, "rb").read())) == run.data.tags["final_weights_sha256"]


def test_summary_is_printed_and_saved(first) -> None:
    cwd, out = first
    rows = list(csv.DictReader(open(cwd / "outputs" / "quickstart" / "summary.csv")))
    assert [r["cell"] for r in rows] == ["fedavg-c10-r2-s0", "fedprox-c10-r2-s0"]
    assert all(r["status"] == "FINISHED" and r["rounds"] == "2" for r in rows)
    assert "final_accuracy" in out and "fedprox-c10-r2-s0" in out


def test_another_clone_with_other_engine_settings_gets_the_same_hashes(first, tmp_path, prefect_home) -> None:
    # Prepare
    cwd, _ = first
    before = {n: r[0].data.tags.get("final_weights_sha256") for n, r in recorded(cwd, "quickstart").items()}
    # Execute: the same sweep in another folder, its clients in worker processes two at a time
    run_sweep(
        tmp_path,
        prefect_home,
        *QUICKSTART,
        "runner.pool=process",
        "runner.max_parallel_clients=2",
        "runner.torch_threads=1",
    )
    # Assert
    elsewhere = recorded(tmp_path, "quickstart")
    assert {n: r[0].data.tags.get("final_weights_sha256") for n, r in elsewhere.items()} == before
    rows = list(csv.DictReader(open(tmp_path / "outputs" / "quickstart" / "summary.csv")))
    assert [(r["cell"], r["status"], r["rounds"]) for r in rows] == [
        (c, "FINISHED", "2") for c in QUICKSTART_CELLS
    ]
    assert all(float(r["final_accuracy"]) > 0.1 for r in rows)


def test_the_memory_guard_stops_the_sweep_cleanly_with_advice(tmp_path, prefect_home) -> None:
    # Prepare: a stop level every machine is above
    from sweep_cli import start_sweep

    memory = ("runner.memory.warn=0.001", "runner.memory.backpressure=0.002", "runner.memory.stop=0.003")
    # Execute
    proc = start_sweep(tmp_path, prefect_home, *QUICKSTART, "tracking.enabled=false", *memory)
    out, _ = proc.communicate(timeout=300)
    # Assert: a non-zero exit that says what to change, and no further cell started
    assert proc.returncode == 1
    assert "max_parallel_clients" in out and "Traceback" not in out
    rows = list(csv.DictReader(open(tmp_path / "outputs" / "quickstart" / "summary.csv")))
    # the cell that trained first (the first whose flow run was ready, flows/turns.py) stopped
    assert sorted(r["status"] for r in rows) == ["NOT RUN", "STOPPED"]
    # the sweep, the stopped cell, and the cell started ahead that never got its turn
    assert sorted(flow_runs(prefect_home, tmp_path).values()) == ["Cancelled"] * 3


def test_prefect_records_the_sweep_its_cells_and_their_tasks(first, prefect_home) -> None:
    # Prepare: the session server's database (its UI reads the same tables)
    cwd, _ = first
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        # Execute: this sweep's flow runs (by the tag of its folder) and their task runs
        runs = {
            name: (run_id, state)
            for run_id, name, state, tags in db.execute("SELECT id, name, state_type, tags FROM flow_run")
            if f'"fedsweep-dir:{cwd.resolve()}/outputs/' in tags
        }
        tasks = {
            cell: db.execute(
                "SELECT name, state_type FROM task_run WHERE flow_run_id = ?", (runs[cell][0],)
            ).fetchall()
            for cell in QUICKSTART_CELLS
        }
    # Assert: the sweep, and per cell a task per client epoch, aggregation, evaluation and checkpoint,
    # all Completed (the sweep leaves the server only once it has recorded what it was sent)
    (sweep,) = [name for name in runs if name.startswith("quickstart-")]
    assert {state for _, state in runs.values()} == {"COMPLETED"} and len(runs) == 3, runs
    for cell, rows in tasks.items():
        names = [name for name, _ in rows]
        assert all(state == "COMPLETED" for _, state in rows), (
            cell,
            [r for r in rows if r[1] != "COMPLETED"],
        )
        for rnd in (1, 2):
            assert {f"r{rnd}-aggregate", f"r{rnd}-evaluate", f"r{rnd}-checkpoint"} <= set(names), cell
            epochs = {n.rsplit("-", 1)[1] for n in names if re.fullmatch(rf"r{rnd}-c\d+-e\d+", n)}
            assert epochs == {"e0", "e1"}, cell

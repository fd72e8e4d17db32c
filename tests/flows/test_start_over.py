"""`resume=false` starts the cells over everywhere: new MLflow child runs under a new parent with
new metrics (the old runs stay, marked superseded), new checkpoints, new Prefect results."""

import time

import pytest
from mlflow import MlflowClient
from sweep_cli import run_sweep

pytestmark = pytest.mark.slow
ARGS = ("+experiment=quickstart", "sweep_name=over", "num_clients=10", "rounds=2")
CELLS = {"fedavg-c10-r2-s0", "fedprox-c10-r2-s0"}


def test_resume_false_records_new_runs_and_supersedes_the_old_ones(tmp_path, prefect_home) -> None:
    # Prepare: a finished sweep
    run_sweep(tmp_path, prefect_home, *ARGS)
    results = tmp_path / "outputs" / "over" / "prefect-results"
    old_results = {p.relative_to(results) for p in results.rglob("*") if p.is_file()}
    started = time.time()
    # Execute
    run_sweep(tmp_path, prefect_home, *ARGS, "resume=false")
    # Assert: MLflow
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("over")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    new_parent = max(parents, key=lambda r: r.info.start_time)
    old_parent = min(parents, key=lambda r: r.info.start_time)
    assert len(parents) == 2 and new_parent.info.status == "FINISHED"
    assert (old_parent.info.run_name[:8], new_parent.info.run_name[:8]) == (
        "over #1 ",
        "over #2 ",
    )  # told apart
    children = {parent.info.run_id: {} for parent in parents}
    for run in runs:
        if run.info.run_name in CELLS:
            children[run.data.tags["mlflow.parentRunId"]][run.info.run_name] = run
    assert set(children[new_parent.info.run_id]) == set(children[old_parent.info.run_id]) == CELLS
    for name, run in children[new_parent.info.run_id].items():
        history = client.get_metric_history(run.info.run_id, "accuracy")
        assert [m.step for m in history] == [1, 2], name
        assert all(m.timestamp >= started * 1000 for m in history), name
        assert run.info.status == "FINISHED" and "fedsweep.superseded_by" not in run.data.tags
        old = children[old_parent.info.run_id][name]
        assert old.data.tags["fedsweep.superseded_by"] == new_parent.info.run_id
        assert old.data.tags["final_weights_sha256"] == run.data.tags["final_weights_sha256"]
    assert old_parent.data.tags["fedsweep.superseded_by"] == new_parent.info.run_id
    # Assert: checkpoints and Prefect results were written again
    manifests = list(tmp_path.glob("outputs/over/cells/*/checkpoints/round-000002/MANIFEST.json"))
    assert len(manifests) == 2 and all(m.stat().st_mtime >= started for m in manifests)
    new_files = [p for p in results.rglob("*") if p.is_file()]
    assert {p.relative_to(results) for p in new_files} == old_results
    assert all(p.stat().st_mtime >= started for p in new_files)

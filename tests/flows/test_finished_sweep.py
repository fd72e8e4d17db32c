"""A sweep whose cells are all finished and recorded exits from its receipt and checkpoints alone
(cli/finished.py): no Prefect server, MLflow untouched, the skip's rows appended to summary.csv.
And a private Prefect server when FEDSWEEP_PREFECT_SERVER=private, beside a shared one."""

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from sweep_cli import recorded, run_sweep

from cli.finished import finished_rows, write_receipt
from fedsweep.config.schema import TrackingSettings

TINY = ("+experiment=quickstart", "strategy=fedavg", "num_clients=10", "rounds=1", "runner.progress=false")


def plan_of(
    tmp_path: Path, *, rounds: int, resume: bool = True, enabled: bool = True, where: str = "a"
) -> SimpleNamespace:
    """What finished_rows reads of a SweepPlan: one cell, without checkpoints; MLflow in tmp_path."""
    cell = {
        "name": "fedavg-c10",
        "key": "k1",
        "dir": str(tmp_path / where / "k1"),
        "config": {"rounds": rounds},
    }
    tracking = TrackingSettings(
        uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root="mlruns", enabled=enabled, ui_url=None
    )
    return SimpleNamespace(dir=tmp_path, key="plan1", cells=[cell], resume=resume, tracking=tracking)


def test_the_receipt_is_trusted_only_for_the_same_plan_with_its_rounds_committed(tmp_path) -> None:
    # Prepare: a receipt for a plan whose one cell has no rounds to commit (rounds=0)
    plan = plan_of(tmp_path, rounds=0)
    (tmp_path / "mlflow.db").touch()
    row = {"cell": "fedavg-c10", "status": "FINISHED", "rounds": 0, "key": "k1", "run": "earlier"}
    write_receipt(
        sweep_dir=tmp_path,
        plan_key="plan1",
        tracking=plan.tracking.model_dump(),
        cells=plan.cells,
        rows=[row],
    )
    # Execute
    same = finished_rows(plan)
    others = {
        "rounds not committed": finished_rows(plan_of(tmp_path, rounds=1)),
        "resume=false": finished_rows(plan_of(tmp_path, rounds=0, resume=False)),
        "other tracking": finished_rows(plan_of(tmp_path, rounds=0, enabled=False)),
        "other folder": finished_rows(plan_of(tmp_path, rounds=0, where="b")),
    }
    (tmp_path / "mlflow.db").unlink()
    others["MLflow store gone"] = finished_rows(plan)
    # Assert
    assert same == [row]
    assert others == dict.fromkeys(others)


@pytest.mark.slow
def test_a_finished_sweep_exits_without_a_server_and_a_private_one_is_forced(tmp_path, prefect_home) -> None:
    # Prepare: a finished sweep (shared server), and MLflow's record of it
    run_sweep(tmp_path, prefect_home, *TINY)
    before = {
        name: (run.info.status, run.info.end_time, dict(run.data.metrics))
        for name, (run, _, _) in recorded(tmp_path, "quickstart").items()
    }
    state = [json.loads(p.read_text()) for p in (prefect_home / "run").glob("prefect-server-*.json")]
    # Execute: the same command again, with the shared server's files out of reach
    again = run_sweep(tmp_path, prefect_home, *TINY, env={"FEDSWEEP_PREFECT_SERVER": "private"})
    # Assert: skipped from the files alone; no server started (not even the forced private one)
    assert (
        again.splitlines()[0] == "starting 1 cell of quickstart in outputs/quickstart: 1 finished (skipped)"
    )
    assert "cell fedavg-c10-r1-s0 is already finished (1 rounds): skipped" in again
    assert "nothing to run (no Prefect server started" in again
    assert not (tmp_path / "outputs" / "quickstart" / "prefect-server.log").exists()
    after = {
        name: (run.info.status, run.info.end_time, dict(run.data.metrics))
        for name, (run, _, _) in recorded(tmp_path, "quickstart").items()
    }
    assert after == before and {status for status, _, _ in after.values()} == {"FINISHED"}
    rows = list(csv.DictReader(open(tmp_path / "outputs" / "quickstart" / "summary.csv")))
    assert [r["rounds_run"] for r in rows] == ["1", "0"] and rows[0]["wall_s"] == rows[1]["wall_s"]
    # Execute: a new sweep with a private server forced, while the shared one is up
    run_sweep(tmp_path, prefect_home, *TINY, "sweep_name=own", env={"FEDSWEEP_PREFECT_SERVER": "private"})
    # Assert: its own server (its log in its folder); the shared one neither used nor replaced (it
    # may have gone idle meanwhile on a loaded machine)
    assert len(state) == 1 and (tmp_path / "outputs" / "own" / "prefect-server.log").is_file()
    assert all(
        json.loads(p.read_text()) == state[0] for p in (prefect_home / "run").glob("prefect-server-*.json")
    )

"""A finished sweep run again (real command, real Prefect and MLflow), in one folder, one step after
another:

1. the same command exits from its receipt and checkpoints alone (cli/finished.py): no Prefect
   server (not even a private one forced by FEDSWEEP_PREFECT_SERVER=private), MLflow and Prefect's
   records untouched, its start-up line and one line per cell saying they are skipped, the skip's
   rows appended to summary.csv with the time each cell trained;
2. without the receipt, and with settings that do not change the maths (`runner.progress`,
   `runner.retries`): the same cells and MLflow runs, the cells' new flow runs saying they are skipped;
3. a setting that changes the maths (`runner.amp`): a new cell with its own folder and MLflow run;
4. a new sweep with a private server forced while the shared one is up: its own server;
5. the first command with `resume=false`: its cells start over everywhere, new MLflow child runs
   under a new parent with new metrics (the old runs stay, marked superseded), new checkpoints, new
   Prefect results; the other setting's cell is left alone.
"""

import csv
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sweep_cli import recorded, run_sweep
from test_story_ui import flow_runs, logs_and_tasks

from cli.finished import finished_rows, write_receipt
from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.config.schema import TrackingSettings
from fedsweep.summary import training_seconds

TWO = ("+experiment=quickstart", "rounds=2", "num_clients=10")
CELLS = ("fedavg-c10-r2-s0", "fedprox-c10-r2-s0")
PRIVATE = {"FEDSWEEP_PREFECT_SERVER": "private"}


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


def mlflow_runs(cwd: Path, experiment: str = "quickstart") -> list[Any]:
    """The experiment's MLflow runs in cwd (two runs may share a name: the cells of a setting and
    of another)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def mlflow_state(cwd: Path) -> dict[str, Any]:
    """{run name: (status, end time, metrics, tags)} of the quickstart's runs in cwd, its float32
    cells and the sweep's parent run (named after the sweep)."""
    return {
        run.info.run_name if "mlflow.parentRunId" in run.data.tags else "quickstart": (
            run.info.status,
            run.info.end_time,
            dict(run.data.metrics),
            dict(run.data.tags),
        )
        for run in mlflow_runs(cwd)
        if run.data.params.get("runner.amp") != "True"
    }


def recorded_history(cwd: Path, run_id: str, metric: str = "accuracy") -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))


def cell_runs(cwd: Path) -> dict[str, dict[str, str]]:
    """The sweep's cell runs in cwd/mlruns: {run id: {cell_key, status, sha256}}."""
    return {
        run.info.run_id: {
            "cell_key": run.data.tags["fedsweep.cell_key"],
            "status": run.info.status,
            "sha256": run.data.tags.get("final_weights_sha256", ""),
        }
        for run in mlflow_runs(cwd)
        if "fedsweep.cell_key" in run.data.tags
    }


def trained_seconds(folder: Path) -> float:
    """The training time of a cell folder's history, as its latest checkpoint has it."""
    store = CheckpointStore(storage=open_storage(str(folder / "checkpoints")))
    return training_seconds(store.load_latest().meta["history"])


def shared_servers(prefect_home: Path) -> dict[str, Any]:
    """The shared servers' state files in the session's runtime folder (other tests' too)."""
    return {p.name: json.loads(p.read_text()) for p in (prefect_home / "run").glob("prefect-server-*.json")}


def cells_of(cwd: Path) -> list[Path]:
    return list((cwd / "outputs" / "quickstart" / "cells").iterdir())


def cell_dirs(cwd: Path) -> set[str]:
    return {p.name for p in cells_of(cwd)}


@pytest.fixture(scope="module")
def steps(tmp_path_factory, prefect_home, prefect_harness) -> dict[str, Any]:
    """Each step's output, and the sweep folder's records before and after it."""
    cwd = tmp_path_factory.mktemp("finished")
    seen: dict[str, Any] = {"cwd": cwd}

    def snapshot(name: str) -> None:
        folders = (cwd / "outputs" / "quickstart" / "cells").iterdir()
        seen[name] = {
            "trained": {
                json.loads((f / "cell.json").read_text())["key"]: trained_seconds(f) for f in folders
            },
            "mlflow": mlflow_state(cwd),
            "cells": cell_runs(cwd),
            "dirs": cell_dirs(cwd),
            "flow_runs": {run.id for run in flow_runs(cwd)},
            "rows": list(csv.DictReader(open(cwd / "outputs" / "quickstart" / "summary.csv"))),
        }

    seen["first"] = run_sweep(cwd, prefect_home, *TWO, "runner.progress=false")
    snapshot("before")
    # the same command, the shared server's files out of reach
    seen["again"] = run_sweep(cwd, prefect_home, *TWO, "runner.progress=false", env=PRIVATE)
    snapshot("after again")
    for receipt in (cwd / "outputs" / "quickstart" / ".finished").glob("*.json"):
        receipt.unlink()
    seen["no receipt"] = run_sweep(cwd, prefect_home, *TWO, "runner.retries=1", "runner.progress=true")
    snapshot("after no receipt")
    seen["amp"] = run_sweep(
        cwd, prefect_home, *TWO, "strategy=fedavg", "runner.amp=true", "runner.progress=false"
    )
    snapshot("after amp")
    own = ("+experiment=quickstart", "strategy=fedavg", "num_clients=10", "rounds=1", "sweep_name=own")
    seen["servers"] = shared_servers(prefect_home)
    seen["own"] = run_sweep(cwd, prefect_home, *own, "runner.progress=false", env=PRIVATE)
    seen["servers after"] = shared_servers(prefect_home)
    results = cwd / "outputs" / "quickstart" / "prefect-results"
    keys = {run["cell_key"] for run in seen["after no receipt"]["cells"].values()}
    seen["results"] = {
        p.relative_to(results) for key in keys for p in (results / key).rglob("*") if p.is_file()
    }
    seen["started"] = time.time()
    seen["over"] = run_sweep(cwd, prefect_home, *TWO, "runner.progress=false", "resume=false")
    return seen


@pytest.mark.slow
def test_the_same_command_exits_from_its_receipt_without_a_server(steps) -> None:
    # Prepare
    cwd, again, before, after = steps["cwd"], steps["again"], steps["before"], steps["after again"]
    # Assert: skipped from the files alone; no server started (not even the forced private one)
    assert (
        again.splitlines()[0] == "starting 2 cells of quickstart in outputs/quickstart: 2 finished (skipped)"
    )
    for name in CELLS:
        assert f"cell {name} is already finished (2 rounds): skipped" in again
    assert "already finished" not in steps["first"]
    assert "nothing to run (no Prefect server started" in again
    assert not (cwd / "outputs" / "quickstart" / "prefect-server.log").exists()
    # Assert: MLflow and Prefect untouched; every run finished with its weights
    assert after["mlflow"] == before["mlflow"] and after["flow_runs"] == before["flow_runs"]
    assert {status for status, _, _, _ in after["mlflow"].values()} == {"FINISHED"}
    assert all(before["mlflow"][name][3]["final_weights_sha256"] for name in CELLS)
    # Assert: the skip's rows appended, with the time each cell trained, not the skip's
    first, skip = before["rows"], after["rows"][len(before["rows"]) :]
    assert [r["cell"] for r in first] == [r["cell"] for r in skip] == list(CELLS)
    assert [r["rounds_run"] for r in first] == ["2", "2"] and [r["rounds_run"] for r in skip] == ["0", "0"]
    assert [r["wall_s"] for r in skip] == [r["wall_s"] for r in first] and all(
        float(r["wall_s"]) > 0 for r in first
    )
    for key, seconds in before["trained"].items():
        times = [float(r["wall_s"]) for r in first + skip if r["key"] == key]
        assert len(times) == 2 and all(t == pytest.approx(seconds, abs=1e-4) for t in times)


@pytest.mark.slow
def test_without_its_receipt_the_cells_say_they_are_skipped_and_nothing_is_recorded_again(steps) -> None:
    # Prepare
    cwd, before, after = steps["cwd"], steps["after again"], steps["after no receipt"]
    # Execute: the cells' flow runs of the re-run
    new = after["flow_runs"] - before["flow_runs"]
    latest = {run.name: run for run in flow_runs(cwd) if run.id in new and run.name in CELLS}
    logs, _ = logs_and_tasks([latest[name].id for name in CELLS])
    # Assert: each cell's flow run says it is skipped and trains nothing
    assert "starting 2 cells of quickstart in outputs/quickstart: 2 finished (skipped)" in steps["no receipt"]
    for name in CELLS:
        said = [log.message for log in logs if log.flow_run_id == latest[name].id]
        assert f"cell {name} already finished its 2 rounds: nothing to train (skipped)" in said, said
        assert not any(m.startswith("round ") for m in said), said
    # Assert: settings that do not change the maths find the same cells: no new folder, no new run,
    # the cells' MLflow records as they were, the parent's name too
    assert after["dirs"] == before["dirs"] and after["cells"] == before["cells"]
    children = lambda state: {n: (s[0], s[2]) for n, s in state["mlflow"].items() if n != "quickstart"}  # noqa: E731
    assert children(after) == children(before) and sorted(children(after)) == sorted(CELLS)
    runs = {run.info.run_id: run for run in mlflow_runs(cwd) if run.info.start_time < steps["started"] * 1000}
    float32 = [run for run in runs.values() if run.data.params.get("runner.amp") == "False"]
    assert sorted(run.info.run_name for run in float32) == sorted(CELLS)
    (parent,) = {run.data.tags["mlflow.parentRunId"] for run in float32}
    assert runs[parent].info.run_name.startswith("quickstart #1 ")
    for run in float32:
        assert [step for step, _ in recorded_history(cwd, run.info.run_id)] == [1, 2], run.info.run_name


@pytest.mark.slow
def test_a_setting_that_changes_the_maths_makes_a_new_cell_and_run(steps) -> None:
    # Prepare
    before, after = steps["after no receipt"], steps["after amp"]
    # Assert: amp is a new cell with its own folder and its own finished child run
    new = {run_id: run for run_id, run in after["cells"].items() if run_id not in before["cells"]}
    assert len(new) == 1 and len(after["dirs"] - before["dirs"]) == 1, steps["amp"][-3000:]
    ((run_id, amp_run),) = new.items()
    assert amp_run["status"] == "FINISHED" and amp_run["sha256"]
    assert amp_run["cell_key"] not in {r["cell_key"] for r in before["cells"].values()}
    assert amp_run["sha256"] not in {r["sha256"] for r in before["cells"].values()}
    # ... and the float32 cells are left as they were
    assert {k: v for k, v in after["cells"].items() if k != run_id} == before["cells"]


@pytest.mark.slow
def test_a_private_server_is_forced_beside_the_shared_one(steps, prefect_home) -> None:
    # Prepare
    cwd, before, after = steps["cwd"], steps["servers"], steps["servers after"]
    # Assert: its own server (its log in its folder); no shared server started or replaced for it
    assert before and (cwd / "outputs" / "own" / "prefect-server.log").is_file()
    assert all(before.get(name) == state for name, state in after.items()), (before, after)
    assert recorded(cwd, "own")["fedavg-c10-r1-s0"][0].info.status == "FINISHED"


@pytest.mark.slow
def test_resume_false_records_new_runs_and_supersedes_the_old_ones(steps) -> None:
    # Prepare
    cwd, started, old_results = steps["cwd"], steps["started"], steps["results"]
    # Execute
    runs = {run.info.run_id: run for run in mlflow_runs(cwd)}
    # Assert: MLflow, a new parent (told apart by its number) with new children, the old ones superseded
    parents = sorted(
        (r for r in runs.values() if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time
    )
    old_parent, new_parent = parents[0], parents[-1]
    assert old_parent.info.run_name.startswith("quickstart #1 ") and new_parent.info.status == "FINISHED"
    assert new_parent.info.run_name.startswith(f"quickstart #{len(parents)} ")
    children: dict[str, dict[str, Any]] = {parent.info.run_id: {} for parent in parents}
    for run in runs.values():
        if "mlflow.parentRunId" in run.data.tags:
            children[run.data.tags["mlflow.parentRunId"]][run.info.run_name] = run
    assert set(children[new_parent.info.run_id]) == set(children[old_parent.info.run_id]) == set(CELLS)
    for name, run in children[new_parent.info.run_id].items():
        history = [(step, value) for step, value in recorded_history(cwd, run.info.run_id)]
        assert [step for step, _ in history] == [1, 2], name
        assert run.info.status == "FINISHED" and "fedsweep.superseded_by" not in run.data.tags
        assert run.info.start_time >= started * 1000
        old = children[old_parent.info.run_id][name]
        assert old.data.tags["fedsweep.superseded_by"] == new_parent.info.run_id
        assert old.data.tags["final_weights_sha256"] == run.data.tags["final_weights_sha256"]
    assert old_parent.data.tags["fedsweep.superseded_by"] == new_parent.info.run_id
    amp = [run for run in runs.values() if run.data.params.get("runner.amp") == "True"]
    assert len(amp) == 1 and "fedsweep.superseded_by" not in amp[0].data.tags  # another cell: left alone
    # Assert: the cells' checkpoints and Prefect results were written again
    manifests = [
        cwd / "outputs" / "quickstart" / "cells" / folder / "checkpoints" / "round-000002" / "MANIFEST.json"
        for folder in steps["after no receipt"]["dirs"]
    ]
    assert len(manifests) == 2 and all(m.stat().st_mtime >= started for m in manifests)
    results = cwd / "outputs" / "quickstart" / "prefect-results"
    new_files = [results / path for path in old_results]
    assert old_results and all(p.is_file() and p.stat().st_mtime >= started for p in new_files)

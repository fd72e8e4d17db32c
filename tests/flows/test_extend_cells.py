"""Rounds are where a cell stops (cli/identity.py), and evaluation may skip rounds (`evaluate_every`),
through the real command: a 5-round cell run again with `rounds=10` continues from its round-5
checkpoint and ends bitwise equal to a fresh 10-round run, in the same folder and MLflow run; a run
that evaluates every 3rd round trains the same model, and everything that reads `accuracy` (the
summary, time to target, the Prefect page, MLflow, the compare command) reads the rounds that have it."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_cli import REPO, recorded, run_sweep

pytestmark = pytest.mark.slow
# One FedProx cell of the quickstart's kind, spelled out (the preset's own grid may change).
CELL = (
    "sweep_name=ext",
    "dataset=synthetic",
    "partition=natural",
    "model=logreg",
    "strategy=fedprox",
    "num_clients=10",
    "clients_per_round=10",
    "batch_size=10",
    "lr=0.01",
    "runner.progress=false",
)


def dry_run(cwd: Path, *args: str) -> str:
    """What `--dry-run` prints for the command in `cwd` (planned here, in this process: seconds)."""
    from cli.main import check_command
    from cli.preview import dry_run_text

    before = os.getcwd()
    os.chdir(cwd)
    try:
        return dry_run_text(check_command(list(args)))
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_home) -> dict[str, object]:
    """5 rounds evaluated every 3rd, then the same cell extended to 10 (the dry run in between), and
    a fresh 10-round run evaluated every round."""
    extended, fresh = tmp_path_factory.mktemp("extended"), tmp_path_factory.mktemp("fresh")
    first = run_sweep(extended, prefect_home, *CELL, "rounds=5", "evaluate_every=3")
    dry = dry_run(extended, *CELL, "rounds=10", "evaluate_every=3")
    second = run_sweep(extended, prefect_home, *CELL, "rounds=10", "evaluate_every=3")
    run_sweep(fresh, prefect_home, *CELL, "rounds=10")
    return {"extended": extended, "fresh": fresh, "first": first, "dry": dry, "second": second}


def rows(cwd: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(cwd / "outputs" / "ext" / "summary.csv")))


def test_a_larger_rounds_extends_the_cell_bitwise(runs) -> None:
    # Prepare
    extended, fresh = recorded(runs["extended"], "ext"), recorded(runs["fresh"], "ext")
    # Assert: one cell folder and one MLflow run, renamed for its rounds; the fresh run's final weights
    assert "fedprox-c10-r10-s0  extends from round 5 to 10" in runs["dry"]
    assert "resuming cell fedprox-c10-r10-s0 after round 5 of 10" in runs["second"]
    (folder,) = (runs["extended"] / "outputs" / "ext" / "cells").iterdir()
    assert folder.name.startswith("fedprox-c10-s0-")
    assert json.loads((folder / "cell.json").read_text())["config"]["rounds"] == 10
    assert set(extended) == set(fresh) == {"ext", "fedprox-c10-r10-s0"}
    run, metrics, _ = extended["fedprox-c10-r10-s0"]
    fresh_run, fresh_metrics, _ = fresh["fedprox-c10-r10-s0"]
    assert run.info.status == "FINISHED" and "rounds" not in run.data.params
    assert run.data.tags["final_weights_sha256"] == fresh_run.data.tags["final_weights_sha256"]
    assert [s for s, _ in metrics["round_seconds"]] == list(range(1, 11))
    assert (
        run.data.metrics["rounds"] == 10
        and run.data.metrics["final_accuracy"] == fresh_run.data.metrics["final_accuracy"]
    )
    # ... and the summary: the 5-round row, then the extension's (5 rounds run, 10 in all)
    first, second = rows(runs["extended"])
    assert (first["cell"], first["rounds"], first["rounds_run"]) == ("fedprox-c10-r5-s0", "5", "5")
    assert (second["cell"], second["rounds"], second["rounds_run"]) == ("fedprox-c10-r10-s0", "10", "5")
    assert (
        first["key"] == second["key"] and second["final_accuracy"] == rows(runs["fresh"])[0]["final_accuracy"]
    )


def test_rounds_without_evaluation_leave_no_accuracy_and_break_nothing(runs) -> None:
    # Prepare
    run, metrics, client = recorded(runs["extended"], "ext")["fedprox-c10-r10-s0"]
    _, fresh_metrics, _ = recorded(runs["fresh"], "ext")["fedprox-c10-r10-s0"]
    # Assert: evaluated every 3rd round and in each run's last (5, then 10), with the fresh run's values
    assert [s for s, _ in metrics["accuracy"]] == [3, 5, 6, 9, 10]
    assert dict(metrics["accuracy"]) == {s: v for s, v in fresh_metrics["accuracy"] if s in (3, 5, 6, 9, 10)}
    assert [s for s, _ in metrics["loss"]] == [3, 5, 6, 9, 10]
    second = rows(runs["extended"])[1]
    assert float(second["final_accuracy"]) == pytest.approx(metrics["accuracy"][-1][1], abs=1e-4)
    assert float(second["best_accuracy"]) == pytest.approx(max(v for _, v in metrics["accuracy"]), abs=1e-4)
    assert second["rounds_to_target"] in {"3", "5", "6", "9", "10"}  # the first evaluated round at the target
    # ... the parent run's plots were drawn, and the compare command reads the cell
    parent = recorded(runs["extended"], "ext")["ext"][0]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "plots")} >= {
        "plots/accuracy_vs_round.png"
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "cli" / "compare.py"), "--experiment", "ext", "--target", "0.3",
         "--tracking-uri", f"sqlite:///{runs['extended'] / 'mlruns' / 'mlflow.db'}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "fedprox-c10-r10" in proc.stdout, proc.stdout + proc.stderr

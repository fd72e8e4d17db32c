"""Sweeps side by side on one machine, sharing PREFECT_HOME: each finishes with its own correct
records and never touches the other's flow runs; the same sweep twice in one folder is refused."""

import csv
import json
import re
import signal
import sqlite3
from pathlib import Path

import pytest
from sweep_cli import recorded, start_sweep
from test_interrupts import wait_for

pytestmark = pytest.mark.slow
TWIN = ("+experiment=quickstart", "sweep_name=twin", "strategy=fedavg", "num_clients=10", "rounds=2")
# The long sweep's clients sleep 1 s an epoch (their maths unchanged): it runs through the whole test
# without taking the CPU from its neighbours. Its rounds (5 epochs: ~5 s) end well within the stop's
# wait, made generous for a loaded machine: Ctrl-C always stops it cleanly, after its round.
IDLE = (
    "clients_per_round=2",
    "faults=stragglers",
    "faults.fraction=1.0",
    "faults.partial=false",
    "faults.delay_s=1",
    "runner.stop_timeout_s=60",
)


def finish(proc) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    return out


def prefect_record(prefect_home: Path, cwd: Path) -> dict[str, list[str]]:
    """{flow run name: its state history} of the sweep run from cwd, from Prefect's database (the
    sweep's flow run, named `<sweep>-<start>`, under the sweep's name)."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        runs = db.execute("SELECT id, name, tags FROM flow_run").fetchall()
        record = {}
        for run_id, name, tags in runs:
            if any(t.startswith(f"fedsweep-dir:{cwd.resolve()}/") for t in json.loads(tags)):
                states = db.execute(
                    "SELECT name FROM flow_run_state WHERE flow_run_id = ? ORDER BY timestamp", (run_id,)
                ).fetchall()
                name = re.sub(r"-\d{8}-\d{6}$", "", name)  # the sweep's run, under the sweep's name
                assert name not in record, f"two flow runs named {name} from {cwd}"
                record[name] = [state for (state,) in states]
    return record


def test_neighbours_keep_separate_records_and_the_same_sweep_twice_is_refused(tmp_path, prefect_home) -> None:
    # Prepare: a long sweep (stopped with Ctrl-C at the end) running in one folder
    here, there = tmp_path / "clone-a", tmp_path / "clone-b"
    here.mkdir()
    there.mkdir()
    long = (*TWIN[:-1], "rounds=1000", *IDLE)
    other = ("+experiment=quickstart", "sweep_name=other", "strategy=fedprox", "num_clients=10", "rounds=2")
    first = start_sweep(here, prefect_home, *long)
    wait_for(first, here, "outputs/twin/cells/*/checkpoints/round-000001/MANIFEST.json")
    # Execute: a sweep of the same name in another folder (another clone), another sweep in the same
    # folder (one mlruns/), and the long one again while it runs
    twin = start_sweep(there, prefect_home, *TWIN)
    neighbour = start_sweep(here, prefect_home, *other)
    again = start_sweep(here, prefect_home, *long)
    refused, _ = again.communicate(timeout=900)
    outs = [finish(twin), finish(neighbour)]
    assert first.poll() is None, "the long sweep ended before the checks"
    first.send_signal(signal.SIGINT)
    stopped, _ = first.communicate(timeout=900)
    # Assert: refused with one line; the first went on and stopped cleanly
    assert again.returncode == 2, refused
    assert refused.strip().splitlines()[-1].startswith("error: sweep folder outputs/twin is in use by pid")
    assert "Traceback" not in refused
    assert first.returncode == 130 and "Traceback" not in stopped, stopped[-3000:]
    for out in outs:
        assert "Crashed" not in out and "WARNING" not in out, out[-3000:]
    # Assert: MLflow, each sweep's own runs in its folder's database
    runs = recorded(there, "twin")
    assert sorted(runs) == ["fedavg-c10-r2-s0", "twin"]
    run, metrics, _ = runs["fedavg-c10-r2-s0"]
    assert run.info.status == "FINISHED" and runs["twin"][0].info.status == "FINISHED"
    assert [step for step, _ in metrics["accuracy"]] == [1, 2]
    runs = recorded(here, "other")
    assert sorted(runs) == ["fedprox-c10-r2-s0", "other"]
    run, metrics, _ = runs["fedprox-c10-r2-s0"]
    assert run.info.status == "FINISHED" and [step for step, _ in metrics["accuracy"]] == [1, 2]
    run, metrics, _ = recorded(here, "twin")["fedavg-c10-r1000-s0"]
    steps = [step for step, _ in metrics["accuracy"]]
    assert run.info.status == "KILLED" and steps == list(range(1, len(steps) + 1)) and steps
    # Assert: Prefect, one record per folder, never marked Crashed by a neighbour
    theirs, ours = prefect_record(prefect_home, there), prefect_record(prefect_home, here)
    assert sorted(theirs) == ["fedavg-c10-r2-s0", "twin"], theirs
    assert sorted(ours) == sorted(["twin", "fedavg-c10-r1000-s0", "other", "fedprox-c10-r2-s0"]), ours
    # (the Ctrl-C'd sweep and its cell end Cancelled after a clean stop: its STOPPED row is in the summary)
    for record, stopped in ((theirs, set()), (ours, {"twin", "fedavg-c10-r1000-s0"})):
        assert all(
            states[-1] == ("Cancelled" if name in stopped else "Completed") and "Crashed" not in states
            for name, states in record.items()
        ), record
    rows = list(csv.DictReader(open(here / "outputs" / "twin" / "summary.csv")))
    assert [row["status"] for row in rows] == ["STOPPED"], rows

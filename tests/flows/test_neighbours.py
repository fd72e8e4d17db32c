"""Sweeps side by side on one machine, sharing PREFECT_HOME: each finishes with its own correct
records and never touches the other's flow runs; the same sweep twice in one folder is refused."""

import json
import re
import signal
import sqlite3
from pathlib import Path

import pytest
from sweep_cli import recorded, start_sweep
from test_interrupts import wait_for

pytestmark = pytest.mark.slow
TWIN = ("+experiment=quickstart", "sweep_name=twin", "strategy=fedavg", "num_clients=10", "rounds=8")


def finish(proc) -> str:
    out, _ = proc.communicate(timeout=600)
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


def test_two_sweeps_of_the_same_name_in_two_folders_leave_each_other_alone(tmp_path, prefect_home) -> None:
    # Prepare: one sweep running; a second one, of the same name, started in another folder
    here, there = tmp_path / "clone-a", tmp_path / "clone-b"
    here.mkdir()
    there.mkdir()
    first = start_sweep(here, prefect_home, *TWIN)
    wait_for(first, here, "outputs/twin/cells/*/checkpoints/round-000001/MANIFEST.json")
    # Execute
    second = start_sweep(there, prefect_home, *TWIN)
    outs = [finish(first), finish(second)]
    # Assert: MLflow, in each folder
    hashes = []
    for cwd in (here, there):
        runs = recorded(cwd, "twin")
        assert sorted(runs) == ["fedavg-c10-r8-s0", "twin"]
        run, metrics, _ = runs["fedavg-c10-r8-s0"]
        assert run.info.status == "FINISHED" and runs["twin"][0].info.status == "FINISHED"
        assert [step for step, _ in metrics["accuracy"]] == list(range(1, 9))
        hashes.append(run.data.tags["final_weights_sha256"])
    assert hashes[0] == hashes[1]
    # Assert: Prefect, one record per folder, never marked Crashed by the neighbour
    for cwd, out in zip((here, there), outs, strict=True):
        record = prefect_record(prefect_home, cwd)
        assert sorted(record) == ["fedavg-c10-r8-s0", "twin"], record
        assert all(states[-1] == "Completed" and "Crashed" not in states for states in record.values()), record
        assert "Crashed" not in out and "WARNING" not in out, out[-3000:]


def test_two_sweeps_in_one_folder_and_the_same_sweep_twice(tmp_path, prefect_home) -> None:
    # Prepare: a long sweep (stopped with Ctrl-C at the end) and a short one, in one folder (one mlruns/)
    long = (*TWIN[:-1], "rounds=1000")
    other = ("+experiment=quickstart", "sweep_name=other", "strategy=fedprox", "num_clients=10", "rounds=6")
    first = start_sweep(tmp_path, prefect_home, *long)
    second = start_sweep(tmp_path, prefect_home, *other)
    wait_for(first, tmp_path, "outputs/twin/cells/*/checkpoints/round-000001/MANIFEST.json")
    # Execute: the long one started again, while it runs
    again = start_sweep(tmp_path, prefect_home, *long)
    refused, _ = again.communicate(timeout=300)
    finish(second)
    assert first.poll() is None, "the long sweep ended before the checks"
    first.send_signal(signal.SIGINT)
    stopped, _ = first.communicate(timeout=120)
    # Assert: refused with one line; the first went on
    assert again.returncode == 2, refused
    assert refused.strip().splitlines()[-1].startswith("error: sweep folder outputs/twin is in use by pid")
    assert "Traceback" not in refused
    assert first.returncode == 130 and "Traceback" not in stopped, stopped[-3000:]
    # Assert: both records, in one MLflow database and in Prefect's
    runs = recorded(tmp_path, "other")
    assert sorted(runs) == ["fedprox-c10-r6-s0", "other"]
    run, metrics, _ = runs["fedprox-c10-r6-s0"]
    assert run.info.status == "FINISHED" and [step for step, _ in metrics["accuracy"]] == list(range(1, 7))
    run, metrics, _ = recorded(tmp_path, "twin")["fedavg-c10-r1000-s0"]
    steps = [step for step, _ in metrics["accuracy"]]
    assert run.info.status == "KILLED" and steps == list(range(1, len(steps) + 1)) and steps
    record = prefect_record(prefect_home, tmp_path)
    assert sorted(record) == sorted(["twin", "fedavg-c10-r1000-s0", "other", "fedprox-c10-r6-s0"])
    assert all(states[-1] == "Completed" for states in record.values()), record

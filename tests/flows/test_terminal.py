"""What the terminal and the sweep folder say across runs of one sweep name (real command, real
Prefect): the start-up line, one summary.csv that keeps every run's rows and each cell's true
training time (a kill -9 and a resume included), failures by what happened, the dry run, a key set
on the command line for the grid's FedProx cells only, and `-m` jobs at other rounds that extend the
cells of earlier ones (their names saying where they stop, and what differs). Skipped cells:
test_finished_sweep.py."""

import csv
import json
import re
import signal
import time
from pathlib import Path

import pytest
from sweep_cli import run_sweep, start_sweep

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.summary import training_seconds

pytestmark = pytest.mark.slow
TINY = ("+experiment=quickstart", "num_clients=10", "tracking.enabled=false", "runner.progress=false")


def summary_rows(cwd: Path, sweep: str) -> list[dict[str, str]]:
    return list(csv.DictReader(open(cwd / "outputs" / sweep / "summary.csv")))


def files_of(cwd: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in cwd.rglob("*")}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, prefect_home) -> tuple[Path, list[str]]:
    """The 2-cell sweep at 2 rounds, then `-m` jobs at 1 and 3 rounds with FedProx's mu set: the
    FedAvg cell is finished at 1 (it has 2 rounds), then extended to 3; FedProx at mu=0.1 is a new
    cell, named apart from the mu=1 one, run to 1 round, then extended to 3. (The same command again,
    its cells skipped: test_finished_sweep.py.)"""
    cwd = tmp_path_factory.mktemp("terminal")
    first = run_sweep(cwd, prefect_home, *TINY, "rounds=2")
    jobs = run_sweep(cwd, prefect_home, "-m", *TINY, "rounds=1,3", "strategy.mu=0.1")
    return cwd, [first, jobs]


def test_one_summary_keeps_every_run_and_true_training_times(two_runs) -> None:
    # Prepare
    cwd, _ = two_runs
    # Execute
    rows = summary_rows(cwd, "quickstart")
    # Assert: 2 cells x (1 run + 2 jobs), each run's rows marked with its own run
    runs = list(dict.fromkeys(r["run"] for r in rows))
    assert len(rows) == 6 and len(runs) == 3
    said = [[(r["cell"], r["rounds"], r["rounds_run"]) for r in rows if r["run"] == run] for run in runs]
    assert said == [
        [("fedavg-c10-r2-s0", "2", "2"), ("fedprox-c10-r2-s0", "2", "2")],
        [("fedavg-c10-r2-s0", "2", "0"), ("fedprox-c10-r1-s0-mu0.1", "1", "1")],  # 2 rounds there: skipped
        [("fedavg-c10-r3-s0", "3", "1"), ("fedprox-c10-r3-s0-mu0.1", "3", "2")],  # extended
    ]
    assert all(r["status"] == "FINISHED" for r in rows)
    assert rows[2]["wall_s"] == rows[0]["wall_s"] and all(float(r["wall_s"]) > 0 for r in rows)
    assert len({r["key"] for r in rows if r["cell"].startswith("fedavg")}) == 1  # one FedAvg cell
    for cell in (cwd / "outputs" / "quickstart" / "cells").iterdir():  # the time is the history's
        name = json.loads((cell / "cell.json").read_text())["name"]
        history = (
            CheckpointStore(storage=open_storage(str(cell / "checkpoints"))).load_latest().meta["history"]
        )
        times = [float(r["wall_s"]) for r in rows if r["cell"] == name and cell.name.endswith(r["key"][:8])]
        assert times and all(t == pytest.approx(training_seconds(history), abs=1e-4) for t in times)


def test_the_start_up_line_comes_first(two_runs) -> None:
    _, (first, jobs) = two_runs
    assert first.splitlines()[0] == "starting 2 cells of quickstart in outputs/quickstart: 2 new"
    assert "already finished" not in first
    assert "starting 2 cells of quickstart in outputs/quickstart: 1 finished (skipped), 1 new" in jobs
    assert "starting 2 cells of quickstart in outputs/quickstart: 2 to extend" in jobs


def test_a_command_line_key_reaches_the_fedprox_cells_of_the_grid_only(two_runs) -> None:
    # Prepare
    cwd, _ = two_runs
    # Execute
    configs = [
        json.loads((c / "cell.json").read_text())
        for c in (cwd / "outputs" / "quickstart" / "cells").iterdir()
    ]
    mu = {c["name"]: c["config"]["strategy"].get("mu") for c in configs}
    # Assert: the -m jobs' FedProx cell has mu=0.1 (a cell of its own), their FedAvg cell no mu (the
    # first run's, extended), the first run's FedProx the default
    assert mu == {"fedavg-c10-r3-s0": None, "fedprox-c10-r2-s0": 1.0, "fedprox-c10-r3-s0-mu0.1": 0.1}


def test_the_dry_run_says_which_cells_are_finished_and_writes_nothing(two_runs) -> None:
    # Prepare
    import subprocess
    import sys

    from sweep_cli import SWEEP, sweep_env

    cwd, _ = two_runs
    before = files_of(cwd)
    # Execute
    proc = subprocess.run(
        [
            sys.executable,
            str(SWEEP),
            *TINY,
            "rounds=2",
            "grid.strategy=[fedavg,fedprox,fedadam]",
            "--dry-run",
        ],
        cwd=cwd,
        env=sweep_env(cwd / "none"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line.split()[:2] for line in proc.stdout.splitlines()[1:]] == [
        ["fedavg-c10-r3-s0", "finished"],  # 3 rounds there: finished, and named for them
        ["fedprox-c10-r2-s0", "finished"],
        ["fedadam-c10-r2-s0", "new"],
    ]
    assert "3 rounds committed, more than rounds=2; nothing is undone" in proc.stdout
    assert files_of(cwd) == before


def test_a_killed_and_resumed_cell_keeps_its_training_time_and_says_what_failed(
    tmp_path, prefect_home
) -> None:
    # Prepare: the failures preset (node 0 down in round 3, transient failures retried), killed -9 after
    # round 2
    args = ("+experiment=failures", "tracking.enabled=false")
    proc = start_sweep(tmp_path, prefect_home, *args)
    manifests = lambda: list(tmp_path.glob("outputs/failures/cells/*/checkpoints/round-*/MANIFEST.json"))  # noqa: E731
    deadline = time.monotonic() + 300
    while len(manifests()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Execute
    out = run_sweep(tmp_path, prefect_home, *args)
    # Assert: one row (the killed run wrote none), timed over all 5 rounds, not only the resumed ones
    (row,) = summary_rows(tmp_path, "failures")
    done = int(re.search(r"resuming cell fedavg-c4-r5-s0 after round (\d) of 5", out).group(1))
    (cell,) = (tmp_path / "outputs" / "failures" / "cells").iterdir()
    history = CheckpointStore(storage=open_storage(str(cell / "checkpoints"))).load_latest().meta["history"]
    assert row["rounds"] == "5" and row["rounds_run"] == str(5 - done)
    assert float(row["wall_s"]) == pytest.approx(training_seconds(history), abs=1e-4)
    assert float(row["wall_s"]) > training_seconds(history[done:]) + 0.5 * training_seconds(history[:done])
    # ... and what happened: node 0's outage and the retries, in the summary and the bar
    assert row["clients_unavailable"] == "1" and int(row["retries"]) > 0 and row["clients_failed"] == "0"
    assert re.search(r"acc=[0-9.]+, retried=\d+, unavailable=1\]", out), out[-3000:]

"""kill -9 at random moments, re-run the same command: the result is bitwise that of an
uninterrupted run, MLflow holds one run per cell with one value per round, nothing is left over."""

import os
import random
import re
import signal
import sqlite3
import subprocess
import time

import psutil
import pytest
from sweep_cli import recorded, run_sweep, start_sweep

pytestmark = pytest.mark.slow
ARGS = ("+experiment=quickstart", "sweep_name=chaos", "rounds=3", "num_clients=10", "local_epochs=2")
TRIALS = int(os.environ.get("FEDSWEEP_CHAOS_TRIALS", "3"))


def _hashes(cwd) -> dict[str, str]:
    return {name: r[0].data.tags.get("final_weights_sha256") for name, r in recorded(cwd, "chaos").items()}


def _processes_in(cwd) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cwd"]):
        if proc.info["cwd"] == str(cwd):
            found.append(proc)
    return found


def _survivors(cwd, bound_s: float = 15.0) -> list[str]:
    """Processes still running in cwd once `bound_s` has passed (a slow death under load is
    waited for), each named by pid, state, command line and how long it took to be found dead."""
    deadline = time.monotonic() + bound_s
    while (left := _processes_in(cwd)) and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.2)
    named = []
    for proc in _processes_in(cwd):
        try:
            named.append(f"pid {proc.pid} ({proc.status()}): {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            continue  # it died just now: a slow death, not a survivor
    return named


def test_sigkill_anywhere_then_rerun_is_bitwise_identical(tmp_path_factory, prefect_home) -> None:
    # Prepare: the uninterrupted reference, and how long a whole run takes
    reference = tmp_path_factory.mktemp("uninterrupted")
    tick = time.monotonic()
    run_sweep(reference, prefect_home, *ARGS)
    duration = time.monotonic() - tick
    victim = tmp_path_factory.mktemp("killed")
    rng = random.Random(int(os.environ.get("FEDSWEEP_CHAOS_SEED", "0")))
    # Execute: kill -9 at seeded random moments, each run resuming the previous one
    kills = []
    for trial in range(TRIALS):
        with open(victim / f"trial-{trial}.log", "w") as log:
            proc = start_sweep(victim, prefect_home, *ARGS, log=log)
            delay = rng.uniform(0.5, duration)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills.append(round(delay, 1))
        survivors = _survivors(victim)
        assert survivors == [], f"still running 15 s after the kill at {delay:.1f}s: {survivors}"
    out = run_sweep(victim, prefect_home, *ARGS)
    # Assert
    assert _hashes(victim) == _hashes(reference), f"kills at {kills}s:\n{out[-3000:]}"
    runs = recorded(victim, "chaos")
    assert sorted(runs) == ["chaos", "fedavg-c10-r3-s0", "fedprox-c10-r3-s0"]
    for name, (run, metrics, _) in runs.items():
        assert run.info.status == "FINISHED", name
        if name != "chaos":
            assert all([step for step, _ in history] == [1, 2, 3] for history in metrics.values()), (
                name,
                kills,
            )
    assert _left_running(prefect_home, list(runs)) == [], kills


def _left_running(prefect_home, names: list[str]) -> list[tuple]:
    """Flow runs of these names that Prefect still shows as Running or Pending (a sweep's flow run,
    named `<sweep>-<start>`, under the sweep's name)."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        rows = db.execute(
            "SELECT name, state_type FROM flow_run WHERE state_type IN ('RUNNING', 'PENDING')"
        ).fetchall()
    found = [(re.sub(r"-\d{8}-\d{6}$", "", name), state) for name, state in rows]
    return [(name, state) for name, state in found if name in names]


def test_the_flow_runs_of_a_killed_run_are_marked_crashed_by_the_rerun(tmp_path, prefect_home) -> None:
    # Prepare: a sweep killed once its second round is committed: its flow runs stay Running
    args = ("+experiment=quickstart", "sweep_name=stale", "strategy=fedavg", "num_clients=10", "rounds=6")
    names = ["fedavg-c10-r6-s0", "stale"]
    proc = start_sweep(tmp_path, prefect_home, *args, log=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("outputs/stale/cells/*/checkpoints/round-000002/MANIFEST.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before round 2"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sorted(name for name, _ in _left_running(prefect_home, names)) == names
    # Execute
    run_sweep(tmp_path, prefect_home, *args)
    # Assert
    assert _left_running(prefect_home, names) == []

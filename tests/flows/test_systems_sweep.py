"""A simulated clock through the real sweep command: the per-round clock and traffic in MLflow,
time to accuracy in the summary, and a run killed after round 1 resumes bitwise, clock included."""

import csv
import os
import signal
import subprocess
import time

import pytest
from sweep_cli import recorded, run_sweep, start_sweep

pytestmark = pytest.mark.slow
ARGS = (
    "+experiment=quickstart",
    "sweep_name=systems",
    "strategy=fedavg",
    "num_clients=10",
    "clients_per_round=5",
    "rounds=2",
    "systems=fleet",
    "systems.over_select=0.4",
    "runner.progress=false",
)
SIM = ("sim_round_s", "sim_clock_s", "bytes_down", "bytes_up", "clients_late")


def _cell(cwd):
    return recorded(cwd, "systems")["fedavg-c10-r2-s0"]


def test_a_sweep_on_the_simulated_clock_records_it_and_resumes_bitwise(
    tmp_path_factory, prefect_home
) -> None:
    # Prepare: the uninterrupted run
    reference = tmp_path_factory.mktemp("uninterrupted")
    run_sweep(reference, prefect_home, *ARGS)
    run, metrics, _ = _cell(reference)
    # Assert: ceil(5 · 1.4) = 7 selected, 5 trained, 2 late; the clock adds up the rounds
    assert all([step for step, _ in metrics[name]] == [1, 2] for name in SIM), sorted(metrics)
    assert [v for _, v in metrics["clients_late"]] == [2.0, 2.0]
    assert [v for _, v in metrics["clients_ok"]] == [5.0, 5.0]
    rounds_s = [v for _, v in metrics["sim_round_s"]]
    assert [v for _, v in metrics["sim_clock_s"]] == pytest.approx([rounds_s[0], rounds_s[0] + rounds_s[1]])
    assert [v for _, v in metrics["bytes_down"]] == [7 * metrics["bytes_up"][0][1] / 5] * 2
    with open(reference / "outputs" / "systems" / "summary.csv") as f:
        (row,) = list(csv.DictReader(f))
    reached = int(row["rounds_to_target"])  # one cell: the target is 0.9 × its own final accuracy
    assert float(row["sim_s_to_target"]) == pytest.approx(dict(metrics["sim_clock_s"])[reached], abs=1e-4)
    # Execute: a run killed once round 1 is committed, then the same command again
    victim = tmp_path_factory.mktemp("killed")
    proc = start_sweep(victim, prefect_home, *ARGS, log=subprocess.DEVNULL)
    cells = victim / "outputs" / "systems" / "cells"
    until = time.monotonic() + 180
    while not list(cells.glob("*/checkpoints/round-000001/MANIFEST.json")):
        assert proc.poll() is None and time.monotonic() < until, (
            "the sweep ended before round 1 was committed"
        )
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_sweep(victim, prefect_home, *ARGS)
    # Assert: the same weights and the same clock as the uninterrupted run
    resumed, resumed_metrics, _ = _cell(victim)
    assert resumed.data.tags["final_weights_sha256"] == run.data.tags["final_weights_sha256"]
    assert {name: resumed_metrics[name] for name in SIM} == {name: metrics[name] for name in SIM}

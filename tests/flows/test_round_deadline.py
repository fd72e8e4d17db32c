"""A round deadline through the real sweep command: hanging clients are cut off at the deadline,
recorded as `deadline` failures, and a run killed after a deadline fired resumes bitwise."""

import os
import signal
import subprocess
import time

import pytest
from sweep_cli import recorded, run_sweep, slowdown, start_sweep

# exclusive: its bounds are wall-clock seconds past a deadline, with no other sweep running beside it
pytestmark = [pytest.mark.slow, pytest.mark.exclusive]
DEADLINE_S = 3.0
# Client 2 hangs on every attempt, far longer than the deadline; the others train in milliseconds.
ARGS = (
    "+experiment=quickstart",
    "sweep_name=deadline",
    "strategy=fedavg",
    "num_clients=4",
    "clients_per_round=4",
    "rounds=2",
    "local_epochs=1",
    "runner.granularity=epoch",  # a task per client epoch, as the deadline cuts them
    "faults=hang",
    "faults.seconds=600",
    "faults.p=1.0",
    "faults.clients=[2]",
    f"aggregation.round_timeout_s={DEADLINE_S}",
    "runner.progress=false",
)


def _cell(cwd):
    return recorded(cwd, "deadline")["fedavg-c4-r2-s0"]


def test_hanging_clients_are_cut_at_the_deadline_and_a_killed_run_resumes_bitwise(
    tmp_path_factory, prefect_home
) -> None:
    # Prepare: the uninterrupted run
    reference = tmp_path_factory.mktemp("uninterrupted")
    slow = slowdown()
    run_sweep(reference, prefect_home, *ARGS)
    slow = max(slow, slowdown())  # the bounds past the deadline scale with the machine's load
    run, metrics, _ = _cell(reference)
    # Assert: every round ends within its deadline plus a small bound, with client 2 cut off
    assert [v for _, v in metrics["failed_deadline"]] == [1.0, 1.0]
    assert [v for _, v in metrics["clients_ok"]] == [3.0, 3.0]
    train, rounds = metrics["train_seconds"], metrics["round_seconds"]
    assert all(v <= DEADLINE_S + 1.5 * slow for _, v in train), (train, slow)
    assert all(v <= DEADLINE_S + 5.0 * slow for _, v in rounds), (rounds, slow)
    # Execute: a run killed once round 1's deadline has fired (its record written), before it is committed
    victim = tmp_path_factory.mktemp("killed")
    proc = start_sweep(victim, prefect_home, *ARGS, log=subprocess.DEVNULL)
    cells = victim / "outputs" / "deadline" / "cells"
    until = time.monotonic() + 900
    while not list(cells.glob("*/work/round-000001/deadline.json")):
        assert proc.poll() is None and time.monotonic() < until, "the sweep ended before round 1's deadline"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(cells.glob("*/checkpoints/round-000001/MANIFEST.json")), (
        "round 1 committed before the kill"
    )
    out = run_sweep(victim, prefect_home, *ARGS)
    # Assert: the replay trained none of the clients cut off before and ended with the same weights
    assert "client(s) 2 were cut off by the round deadline in an earlier run" in out, out[-3000:]
    resumed, resumed_metrics, _ = _cell(victim)
    assert resumed.data.tags["final_weights_sha256"] == run.data.tags["final_weights_sha256"]
    assert [v for _, v in resumed_metrics["failed_deadline"]] == [1.0, 1.0]


def test_a_round_whose_cut_kills_every_worker_still_ends_within_the_deadline_and_five_seconds(
    tmp_path, prefect_home
) -> None:
    # Prepare: clients 0 and 1 hang where no signal reaches (a stuck C call) on every attempt: they
    # take both workers, so at the deadline the cut must kill both, and the round's evaluation must not
    # wait for new ones to start
    args = (
        *(a for a in ARGS if not a.startswith(("faults.clients", "sweep_name"))),
        "sweep_name=deaf",
        "faults.clients=[0,1]",
        "+faults.deaf=true",
    )
    # Execute
    run_sweep(tmp_path, prefect_home, *args)
    _, metrics, _ = recorded(tmp_path, "deaf")["fedavg-c4-r2-s0"]
    # Assert: the round's own clock (training, aggregation, evaluation) within the bound, however
    # loaded the machine: a warm spare took each killed worker's place
    assert all(v <= DEADLINE_S + 5.0 for _, v in metrics["round_seconds"]), metrics["round_seconds"]
    assert [v for _, v in metrics["failed_deadline"]][0] >= 2

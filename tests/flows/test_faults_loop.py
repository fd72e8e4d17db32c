"""Injected faults through the real round loop (Prefect test harness, no MLflow)."""

import time

import pytest
from sweep_cli import slowdown  # upper bounds on wall-clock time scale with the machine's load

from fedsweep.rounds.policy import CellFailed

BASE = ("runner.progress=false", "rounds=3", "num_clients=4", "clients_per_round=4", "runner.retry_delay_s=0")


def test_failures_replay_exactly_and_are_counted_per_round(run_cell_here) -> None:
    # Prepare: p2pfl's scenario, shortened
    args = (*BASE, "+experiment=failures", "rounds=4")
    # Execute
    row_a, history = run_cell_here(*args, where="a")
    row_b, _ = run_cell_here(*args, where="b")
    # Assert
    assert row_a["final_weights_sha256"] == row_b["final_weights_sha256"]
    assert [h["clients_unavailable"] for h in history] == [0, 0, 1, 0]
    assert [h["clients_selected"] for h in history] == [4, 4, 3, 4]
    assert sum(h["retries"] for h in history) > 0, "p=0.2 transient failures should need retries"
    assert all(h["clients_failed"] == 0 for h in history), "retries get past transient failures"


def test_permanent_failures_are_not_retried_and_the_survivors_are_aggregated(run_cell_here) -> None:
    _, history = run_cell_here(*BASE, "faults=permanent", "faults.clients=[1]")
    assert all(h["failed_permanent"] == 1 and h["clients_ok"] == 3 for h in history)
    assert all(h["retries"] == 0 for h in history)


def test_not_enough_survivors_fails_the_cell_when_asked(run_cell_here) -> None:
    with pytest.raises(CellFailed):
        run_cell_here(
            *BASE,
            "faults=permanent",
            "faults.clients=[1]",
            "aggregation.min_fit=4",
            "aggregation.on_insufficient=fail",
        )


def test_not_enough_survivors_skips_the_round_by_default(run_cell_here, cell_config) -> None:
    # Execute
    row, history = run_cell_here(*BASE, "faults=permanent", "faults.clients=[0,1,2,3]")
    # Assert: nothing aggregated, the model is the initial one
    from fedsweep.cell.cell import build_parts
    from fedsweep.weights import weights_sha256

    assert [h["skipped"] for h in history] == [1, 1, 1]
    _, _, methods, _ = build_parts(cell_config(*BASE))
    assert row["final_weights_sha256"] == weights_sha256(methods.initial_params)


def test_a_hung_client_holds_the_round_no_longer_than_its_timeout(run_cell_here) -> None:
    # Execute
    tick = time.monotonic()
    # In this process: a spawned worker's first job (imports, data) can itself take a second on a
    # loaded machine; killing and replacing a stuck worker is tested in tests/execution/.
    _, history = run_cell_here(
        *BASE,
        "rounds=1",
        "faults=hang",
        "faults.seconds=60",
        "faults.p=1.0",
        "faults.clients=[2]",
        "runner.task_timeout_s=1",
        "runner.retries=1",
        "runner/engine=thread",
    )
    # Assert
    assert history[0]["failed_timeout"] == 1 and history[0]["clients_ok"] == 3
    assert time.monotonic() - tick < 20 * slowdown()


def test_corrupted_updates_are_rejected_before_aggregation(run_cell_here) -> None:
    row, history = run_cell_here(*BASE, "faults=corrupt", "faults.p=1.0", "faults.clients=[3]")
    assert all(h["failed_invalid_update"] == 1 and h["clients_ok"] == 3 for h in history)
    assert row["final_accuracy"] == row["final_accuracy"]  # not NaN


@pytest.mark.parametrize(("policy", "skipped"), [("drop", 1), ("partial", 0)])
def test_stragglers_are_dropped_or_their_partial_work_kept(run_cell_here, policy, skipped) -> None:
    _, history = run_cell_here(
        *BASE,
        "local_epochs=3",
        "faults=stragglers",
        "faults.fraction=1.0",
        f"aggregation.stragglers={policy}",
        where=policy,
    )
    partial_clients = [h["failed_straggler"] for h in history]
    if policy == "drop":
        assert all(h["skipped"] == 1 or h["clients_ok"] > 0 for h in history)
        assert sum(partial_clients) > 0
    else:
        assert sum(partial_clients) == 0 and all(h["skipped"] == 0 for h in history)


def test_memory_backpressure_trains_fewer_clients_at_once(run_cell_here) -> None:
    # Prepare: thresholds any machine is above, except the stop level
    memory = ("runner.memory.warn=0.001", "runner.memory.backpressure=0.002", "runner.memory.stop=1.0")
    # Execute
    _, history = run_cell_here(*BASE, "runner.max_parallel_clients=4", *memory)
    # Assert: halved each round, down to one
    assert [h["parallel_clients"] for h in history] == [2, 1, 1]


def test_memory_stop_level_stops_cleanly_with_advice(run_cell_here) -> None:
    memory = ("runner.memory.warn=0.001", "runner.memory.backpressure=0.002", "runner.memory.stop=0.003")
    row, history = run_cell_here(*BASE, *memory)
    assert row["status"] == "STOPPED" and "max_parallel_clients" in row["message"]
    assert history == []

"""What a round's metrics become: which rounds evaluate (`evaluate_every`), the summary of a history
whose rounds are not all evaluated, and what a cell's MLflow run charts (fedsweep/rounds/report.py)."""

import math

from fedsweep.rounds.report import charted_points, constants
from fedsweep.schedule import evaluates
from fedsweep.summary import Report, cell_row, postfix, with_time_to_target


def test_rounds_evaluate_every_n_and_always_the_last() -> None:
    assert [r for r in range(1, 11) if evaluates(r, every=3, rounds=10)] == [3, 6, 9, 10]
    assert [r for r in range(1, 6) if evaluates(r, every=1, rounds=5)] == [1, 2, 3, 4, 5]
    assert [r for r in range(1, 4) if evaluates(r, every=10, rounds=3)] == [3]


def test_the_summary_reads_the_evaluated_rounds() -> None:
    # Prepare: rounds 1-4, evaluated in 2 and 4
    history = [
        {"round": 1, "round_seconds": 1.0, "clients_failed": 0.0},
        {"round": 2, "round_seconds": 1.0, "clients_failed": 1.0, "accuracy": 0.7, "loss": 1.0},
        {"round": 3, "round_seconds": 1.0, "clients_failed": 0.0},
        {"round": 4, "round_seconds": 1.0, "clients_failed": 0.0, "accuracy": 0.6, "loss": 1.1},
    ]
    # Execute
    row = cell_row("c", "FINISHED", history, rounds_run=4)
    (timed,) = with_time_to_target([row], Report(target_accuracy=0.65))
    # Assert
    assert (row["final_accuracy"], row["best_accuracy"], row["rounds"]) == (0.6, 0.7, 4)
    assert row["wall_s"] == 4.0 and row["clients_failed"] == 1
    assert timed["rounds_to_target"] == 2
    assert postfix(history) == {"acc": "0.600", "failed": "1"} and postfix(history[:1]) == {}
    assert math.isnan(cell_row("c", "STOPPED", history[:1], rounds_run=1)["final_accuracy"])


def test_quiet_metrics_join_the_charts_once_they_move() -> None:
    # Prepare: no failure until round 3; bytes constant until round 4
    rows = [
        {"round": r, "accuracy": 0.5, "failed_transient": float(r == 3), "bytes_down": 10.0 + (r == 4)}
        for r in range(1, 5)
    ]
    # Execute
    added = [charted_points(rows[:r]) for r in range(1, 5)]
    # Assert: accuracy every round; failed_transient from round 3 with rounds 1-2 filled in; bytes_down
    # from round 4 with rounds 1-3
    assert added[0] == {1: {"accuracy": 0.5}} and added[1] == {2: {"accuracy": 0.5}}
    assert added[2] == {3: {"accuracy": 0.5, "failed_transient": 1.0}, 1: {"failed_transient": 0.0},
                        2: {"failed_transient": 0.0}}  # fmt: skip
    earlier = {r: {"bytes_down": 10.0} for r in (1, 2, 3)}
    assert added[3] == {4: {"accuracy": 0.5, "failed_transient": 0.0, "bytes_down": 11.0}, **earlier}
    assert constants(rows[:3]) == {"bytes_down": 10.0} and constants(rows) == {}

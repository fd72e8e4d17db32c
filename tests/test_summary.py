"""The summary table (fedsweep/summary.py): rows from a cell's checkpointed history, appended per run."""

import csv
import io
import math

import pytest

from fedsweep import summary

ROWS = [
    {
        "run": "2026-01-01T00:00:00Z",
        "cell": "fedavg-c10-r2-s0",
        "status": "FINISHED",
        "final_accuracy": 0.5,
        "best_accuracy": 0.625,
        "rounds": 2,
        "rounds_run": 2,
        "wall_s": 1.25,
        "clients_failed": 0,
        "retries": 1,
        "clients_unavailable": 0,
        "key": "abc",
    },
    {"run": "2026-01-01T00:00:00Z", "cell": "fedprox-c10-r2-s0", "status": "FAILED", "key": "def"},
]
# Two rounds as a killed run and its resume recorded them: each round timed by the run that played it.
HISTORY = [
    {
        "round": 1,
        "accuracy": 0.4,
        "round_seconds": 2.0,
        "checkpoint_wait_seconds": 0.5,
        "clients_failed": 1,
        "retries": 2,
        "clients_unavailable": 0,
    },
    {
        "round": 2,
        "accuracy": 0.3,
        "round_seconds": 3.0,
        "checkpoint_wait_seconds": 0.0,
        "clients_failed": 0,
        "retries": 0,
        "clients_unavailable": 1,
    },
]


def test_csv_has_a_header_and_one_row_per_cell() -> None:
    # Execute
    table = list(csv.reader(io.StringIO(summary.to_csv(ROWS))))
    # Assert
    assert table[0] == list(summary.COLUMNS)
    assert table[1] == [
        "2026-01-01T00:00:00Z",
        "fedavg-c10-r2-s0",
        "FINISHED",
        "0.5000",
        "0.6250",
        "2",
        "2",
        "1.2500",
        "0",
        "1",
        "0",
        "",
        "",
        "",
        "abc",
    ]
    assert (
        table[2][1:3] == ["fedprox-c10-r2-s0", "FAILED"]
        and table[2][3:-1] == [""] * 11
        and table[2][-1] == "def"
    )


def test_a_row_holds_the_whole_history_time_and_failures() -> None:
    # Execute: the resumed run played round 2 only
    row = summary.cell_row("c", "FINISHED", HISTORY, rounds_run=1, final_weights_sha256="x")
    # Assert: the time of both rounds, not only the resumed one's
    assert row["wall_s"] == 5.5 and row["rounds"] == 2 and row["rounds_run"] == 1
    assert (row["final_accuracy"], row["best_accuracy"]) == (0.3, 0.4)
    assert (row["clients_failed"], row["retries"], row["clients_unavailable"]) == (1, 2, 1)
    assert row["final_weights_sha256"] == "x"
    assert math.isnan(summary.cell_row("c", "STOPPED", [], rounds_run=0)["final_accuracy"])


def test_the_bar_shows_what_happened_and_only_that() -> None:
    assert summary.postfix(HISTORY) == {"acc": "0.300", "failed": "1", "retried": "2", "unavailable": "1"}
    assert summary.postfix(HISTORY[1:2]) == {"acc": "0.300", "unavailable": "1"}


def test_merge_keeps_earlier_rows_even_with_older_columns() -> None:
    # Prepare: a summary.csv written before the run, key and failure columns existed
    old = (
        "cell,status,final_accuracy,best_accuracy,rounds,wall_s,clients_failed\n"
        "old-cell,FINISHED,0.1,0.2,3,9.0,0\n"
    )
    # Execute
    every = summary.merge(summary.to_csv(ROWS[:1]), ROWS[1:])
    kept = list(csv.DictReader(io.StringIO(summary.to_csv(summary.merge(old, ROWS)))))
    # Assert
    assert [r["cell"] for r in every] == ["fedavg-c10-r2-s0", "fedprox-c10-r2-s0"]
    assert [r["cell"] for r in kept] == ["old-cell", "fedavg-c10-r2-s0", "fedprox-c10-r2-s0"]
    assert kept[0]["wall_s"] == "9.0" and kept[0]["run"] == "" and kept[1]["run"] == "2026-01-01T00:00:00Z"


def test_markdown_is_a_table() -> None:
    lines = summary.to_markdown(ROWS).splitlines()
    assert lines[0].startswith("| run | cell | status |") and lines[1].startswith("|---|")
    assert len(lines) == 4


def test_text_columns_are_aligned_without_run_and_key() -> None:
    lines = summary.to_text(ROWS).splitlines()
    assert lines[0].split()[:2] == ["cell", "status"] and "key" not in lines[0].split()
    assert (
        len(
            {
                line.index("status")
                if "status" in line
                else line.index("FINISHED" if "avg" in line else "FAILED")
                for line in lines
            }
        )
        == 1
    )


def _finished(name: str, accuracies: list[float], clock: list[float] | None = None) -> dict:
    history = [
        {"round": r, "accuracy": a, **({"sim_clock_s": clock[r - 1]} if clock else {})}
        for r, a in enumerate(accuracies, 1)
    ]
    return summary.cell_row(name, "FINISHED", history, rounds_run=len(history))


def test_time_to_target_defaults_to_a_fraction_of_the_best_final_accuracy() -> None:
    # Prepare: best final 0.8, so the target is 0.9 * 0.8 = 0.72; `slow` never reaches it
    rows = [
        _finished("fast", [0.5, 0.75, 0.8], clock=[10.0, 25.0, 45.0]),
        _finished("slow", [0.3, 0.6, 0.7]),
        {"cell": "broken", "status": "FAILED"},
    ]
    # Execute
    out = summary.with_time_to_target(rows, summary.report_settings(None))
    # Assert
    assert out[0]["target_accuracy"] == pytest.approx(0.72)
    assert (out[0]["rounds_to_target"], out[0]["sim_s_to_target"]) == (2, 25.0)
    assert (out[1]["rounds_to_target"], out[1]["sim_s_to_target"]) == (None, None)
    assert out[2]["rounds_to_target"] is None and all("curve" not in row for row in out)
    assert summary.row_values(out[1], ["rounds_to_target", "sim_s_to_target"]) == ["", ""]


def test_an_absolute_target_and_no_system_model() -> None:
    # Prepare: no simulated clock recorded
    rows = [_finished("a", [0.2, 0.4, 0.3])]
    # Execute
    out = summary.with_time_to_target(rows, summary.report_settings({"target_accuracy": 0.4}))
    # Assert: reached in round 2, but no simulated seconds to report
    assert (out[0]["target_accuracy"], out[0]["rounds_to_target"], out[0]["sim_s_to_target"]) == (
        0.4,
        2,
        None,
    )


@pytest.mark.parametrize(
    "node, message",
    [
        ({"target_accuracy": 1.5}, "report.target_accuracy must be null or an accuracy in (0, 1], got 1.5"),
        ({"target_fraction": 0}, "report.target_fraction must be an accuracy in (0, 1], got 0"),
        ({"target": 0.5}, "report.target: unknown key"),
    ],
)
def test_bad_report_settings_name_the_key(node, message) -> None:
    with pytest.raises(ValueError) as err:
        summary.report_settings(node)
    assert str(err.value).startswith(message)

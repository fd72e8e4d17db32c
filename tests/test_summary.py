"""The summary table (fedsweep/summary.py)."""

import csv
import io

from fedsweep import summary

ROWS = [
    {"cell": "fedavg-c10-r2-s0", "status": "FINISHED", "final_accuracy": 0.5, "best_accuracy": 0.625,
     "rounds": 2, "wall_s": 1.25, "clients_failed": 0},
    {"cell": "fedprox-c10-r2-s0", "status": "FAILED"},
]


def test_csv_has_a_header_and_one_row_per_cell() -> None:
    # Execute
    table = list(csv.reader(io.StringIO(summary.to_csv(ROWS))))
    # Assert
    assert table[0] == list(summary.COLUMNS)
    assert table[1] == ["fedavg-c10-r2-s0", "FINISHED", "0.5000", "0.6250", "2", "1.2500", "0"]
    assert table[2][:2] == ["fedprox-c10-r2-s0", "FAILED"] and table[2][2:] == [""] * 5


def test_markdown_is_a_table() -> None:
    lines = summary.to_markdown(ROWS).splitlines()
    assert lines[0].startswith("| cell | status |") and lines[1].startswith("|---|")
    assert len(lines) == 4


def test_text_columns_are_aligned() -> None:
    lines = summary.to_text(ROWS).splitlines()
    assert len({line.index("status") if "status" in line else line.index("FINISHED" if "avg" in line else "FAILED")
                for line in lines}) == 1

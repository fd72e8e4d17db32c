"""The sweep's summary table: one row per cell, as text, CSV and Markdown."""

import csv
import io
from collections.abc import Sequence
from typing import Any

COLUMNS = ("cell", "status", "final_accuracy", "best_accuracy", "rounds", "wall_s", "clients_failed")


def row_values(row: dict[str, Any]) -> list[str]:
    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    return [fmt(row.get(column, "")) for column in COLUMNS]


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row_values(r) for r in rows)
    return out.getvalue()


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row_values(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_text(rows: Sequence[dict[str, Any]]) -> str:
    """An aligned plain-text table for the terminal."""
    table = [list(COLUMNS), *(row_values(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in table)

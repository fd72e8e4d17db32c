"""The sweep's summary table: one row per cell per run, as text, CSV and Markdown.

A cell's row is computed from its metric history, which is checkpointed with every round: its time
(`wall_s`, the seconds of its rounds, summed over every run that played them) and its failures
survive kills and resumes. The CSV keeps the rows of every run of a sweep folder (later runs, and
each `-m` job, append theirs; `run` says which run wrote a row).
"""

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = (
    "run", "cell", "status", "final_accuracy", "best_accuracy", "rounds", "rounds_run", "wall_s",
    "clients_failed", "retries", "clients_unavailable", "key",
)
TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in ("run", "key"))  # the terminal's table: this run's rows
# Round metrics summed into a row (and shown by the progress bar under the short name).
FAILURES = {"clients_failed": "failed", "retries": "retried", "clients_unavailable": "unavailable"}


def training_seconds(history: Sequence[Mapping[str, float]]) -> float:
    """Seconds the cell's rounds took, each round as timed by the run that played it (waits for the
    previous round's checkpoint included)."""
    return sum(h.get("round_seconds", 0.0) + h.get("checkpoint_wait_seconds", 0.0) for h in history)


def failures(history: Sequence[Mapping[str, float]]) -> dict[str, int]:
    """Failed clients, retried client tasks and unavailable clients, summed over the rounds."""
    return {column: int(sum(h.get(column, 0) for h in history)) for column in FAILURES}


def postfix(history: Sequence[Mapping[str, float]]) -> dict[str, str]:
    """The progress bar's postfix: the last accuracy, then what failed so far (only what happened)."""
    shown = {"acc": f"{history[-1]['accuracy']:.3f}"} if history else {}
    shown.update({FAILURES[k]: str(v) for k, v in failures(history).items() if v})
    return shown


def cell_row(name: str, status: str, history: Sequence[Mapping[str, float]], *, rounds_run: int,
             **extra: Any) -> dict[str, Any]:
    """A cell's row from its whole history; `rounds_run`: the rounds this run played (0: skipped)."""
    accuracies = [h["accuracy"] for h in history]
    return {
        "cell": name, "status": status, "final_accuracy": accuracies[-1] if accuracies else math.nan,
        "best_accuracy": max(accuracies, default=math.nan), "rounds": len(history), "rounds_run": rounds_run,
        "wall_s": training_seconds(history), **failures(history), **extra,
    }


def merge(previous_csv: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of an earlier summary.csv (columns it lacks left empty), then `rows`."""
    return [*csv.DictReader(io.StringIO(previous_csv)), *rows]


def row_values(row: Mapping[str, Any], columns: Sequence[str] = COLUMNS) -> list[str]:
    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)

    return [fmt(row.get(column, "")) for column in columns]


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row_values(r) for r in rows)
    return out.getvalue()


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row_values(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """An aligned plain-text table for the terminal (without the run and key columns)."""
    table = [list(TEXT_COLUMNS), *(row_values(r, TEXT_COLUMNS) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(TEXT_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)

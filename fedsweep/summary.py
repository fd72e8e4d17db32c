"""The sweep's summary table: one row per cell per run, as text, CSV and Markdown.

A cell's row is computed from its metric history, which is checkpointed with every round: its time
(`wall_s`, the seconds of its rounds, summed over every run that played them) and its failures
survive kills and resumes. The CSV keeps the rows of every run of a sweep folder (later runs, and
each `-m` job, append theirs; `run` says which run wrote a row).

**Time to accuracy** (FedScale's and Oort's measure of selection methods): for a target accuracy,
`rounds_to_target` is the first round whose accuracy reaches it and `sim_s_to_target` the simulated
clock (`sim_clock_s`, fedsweep/systems/) at the end of that round; both are empty when the cell never
reached it, and `sim_s_to_target` is empty without a system model. The target is the `report` block's
`target_accuracy` when set, else `target_fraction` (default 0.9) × the best final accuracy among this
run's finished cells (`target_accuracy` column), so that every cell of a sweep is measured against
one target that some cell reached.
"""

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsweep.checkpoint.storage import LocalStorage
from fedsweep.compare.stats import rounds_to_target
from fedsweep.config.errors import did_you_mean

COLUMNS = (
    "run",
    "cell",
    "status",
    "final_accuracy",
    "best_accuracy",
    "rounds",
    "rounds_run",
    "wall_s",
    "clients_failed",
    "retries",
    "clients_unavailable",
    "target_accuracy",
    "rounds_to_target",
    "sim_s_to_target",
    "key",
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


def evaluated(history: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    """The rounds that evaluated the global model (`evaluate_every`: not every round does)."""
    return [h for h in history if "accuracy" in h]


def postfix(history: Sequence[Mapping[str, float]]) -> dict[str, str]:
    """The progress bar's postfix: the last accuracy, then what failed so far (only what happened)."""
    rows = evaluated(history)
    shown = {"acc": f"{rows[-1]['accuracy']:.3f}"} if rows else {}
    shown.update({FAILURES[k]: str(v) for k, v in failures(history).items() if v})
    return shown


def cell_row(
    name: str, status: str, history: Sequence[Mapping[str, float]], *, rounds_run: int, **extra: Any
) -> dict[str, Any]:
    """A cell's row from its whole history; `rounds_run`: the rounds this run played (0: skipped).
    `curve` (round, accuracy, simulated clock or None) is for `with_time_to_target`, not a column."""
    rows = evaluated(history)  # final and best accuracy, and time to target, of the evaluated rounds
    accuracies = [h["accuracy"] for h in rows]
    curve = tuple((int(h["round"]), h["accuracy"], h.get("sim_clock_s")) for h in rows)
    return {
        "cell": name,
        "status": status,
        "final_accuracy": accuracies[-1] if accuracies else math.nan,
        "best_accuracy": max(accuracies, default=math.nan),
        "rounds": len(history),
        "rounds_run": rounds_run,
        "wall_s": training_seconds(history),
        **failures(history),
        "curve": curve,
        **extra,
    }


@dataclass(frozen=True, kw_only=True)
class Report:
    """The `report` block: the time-to-accuracy target (module docstring)."""

    target_accuracy: float | None = None  # absolute, in (0, 1]; None: target_fraction × best final
    target_fraction: float = 0.9  # in (0, 1]


def report_settings(node: Mapping[str, Any] | None, *, key: str = "report") -> Report:
    """The `report` block as a `Report` (missing keys take defaults), or a ValueError naming the key."""
    node = dict(node or {})
    unknown = sorted(set(node) - {"target_accuracy", "target_fraction"})
    if unknown:
        hint = did_you_mean(unknown[0], ("target_accuracy", "target_fraction"))
        raise ValueError(
            f"{key}.{unknown[0]}: unknown key{hint} (expected one of: target_accuracy, target_fraction)"
        )
    for name, value in node.items():
        if value is None and name == "target_accuracy":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ValueError(
                f"{key}.{name} must be {'null or ' if name == 'target_accuracy' else ''}"
                f"an accuracy in (0, 1], got {value!r}"
            )
    return Report(**node)


def target_accuracy(rows: Sequence[Mapping[str, Any]], report: Report) -> float | None:
    """The sweep's target: the absolute one, or the fraction of the best final accuracy of its
    finished cells (None when none finished)."""
    if report.target_accuracy is not None:
        return float(report.target_accuracy)
    finals = [
        r["final_accuracy"] for r in rows if r["status"] == "FINISHED" and not math.isnan(r["final_accuracy"])
    ]
    return report.target_fraction * max(finals) if finals else None


def with_time_to_target(rows: Sequence[Mapping[str, Any]], report: Report) -> list[dict[str, Any]]:
    """The rows with `target_accuracy`, `rounds_to_target` and `sim_s_to_target`, without `curve`."""
    target = target_accuracy(rows, report)
    out = []
    for row in rows:
        row = dict(row)
        curve = row.pop("curve", ())
        reached = None if target is None else rounds_to_target([(r, a) for r, a, _ in curve], target)
        clock = {r: c for r, _, c in curve}
        row.update(
            target_accuracy=target,
            rounds_to_target=reached,
            sim_s_to_target=None if reached is None else clock[reached],
        )
        out.append(row)
    return out


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


def append_summary(out: Path, rows: list[Mapping[str, Any]]) -> None:
    """Append this run's rows to the sweep folder's summary.csv and summary.md (each written atomically)."""
    previous = out / "summary.csv"
    every = merge(previous.read_text() if previous.is_file() else "", [dict(r) for r in rows])
    storage = LocalStorage(out)
    storage.write("summary.csv", to_csv(every).encode())
    storage.write("summary.md", to_markdown(every).encode())

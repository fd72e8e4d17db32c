"""The comparison as tables: aligned text for the terminal, Markdown, and a tidy CSV.

The text and Markdown show `mean ± half-width` (the 95 % t-interval is symmetric) and `n/a` where an
interval needs two values; the CSV has one row per (table, method, metric) with the interval's
bounds at full precision, for plotting or checking; its `missing` counts the cells that never
reached the target (rounds-to-target) or the seeds only one side of a pair has (paired).
"""

import csv
import io
from collections.abc import Sequence

from fedsweep.compare.methods import MethodFigures, Paired
from fedsweep.compare.stats import Interval

CSV_COLUMNS = ("table", "method", "baseline", "metric", "n", "mean", "ci_low", "ci_high", "missing")
Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def _show(value: Interval, digits: int, sign: str = "") -> str:
    if value.n == 0:
        return "-"
    half = "n/a" if value.half is None else f"{value.half:.{digits}f}"
    return f"{value.mean:{sign}.{digits}f} ± {half}"


def tables(figures: Sequence[MethodFigures], paired: Sequence[Paired], target: float) -> list[Table]:
    """The per-method table and the paired-differences table."""
    per_method = (
        "per method: mean ± 95 % t-interval over seeds",
        ["method", "seeds", "final accuracy", "best accuracy", f"rounds to {target:g}", "reached"],
        [
            [
                f.method,
                str(f.final.n),
                _show(f.final, 4),
                _show(f.best, 4),
                _show(f.rounds, 1),
                f"{f.reached}/{f.final.n}",
            ]
            for f in figures
        ],
    )
    baseline = paired[0].baseline if paired else figures[0].method
    differences = (
        f"paired by seed: final accuracy minus {baseline}'s",
        ["method", "pairs", "difference", "unpaired seeds"],
        [[p.method, str(p.difference.n), _show(p.difference, 4, "+"), str(p.unpaired)] for p in paired],
    )
    return [per_method, differences]


def to_text(parts: Sequence[Table]) -> str:
    out = []
    for title, header, rows in parts:
        grid = [header, *rows]
        widths = [max(len(line[i]) for line in grid) for i in range(len(header))]
        out += [title, *("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in grid), ""]
    return "\n".join(out)


def to_markdown(parts: Sequence[Table]) -> str:
    out = []
    for title, header, rows in parts:
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in rows] + [""]
    return "\n".join(out)


def to_csv(figures: Sequence[MethodFigures], paired: Sequence[Paired], target: float) -> str:
    rows = []
    for f in figures:
        rows += [
            ["method", f.method, "", "final_accuracy", *_numbers(f.final), 0],
            ["method", f.method, "", "best_accuracy", *_numbers(f.best), 0],
            ["method", f.method, "", f"rounds_to_{target:g}", *_numbers(f.rounds), f.final.n - f.reached],
        ]
    rows += [
        ["paired", p.method, p.baseline, "final_accuracy_difference", *_numbers(p.difference), p.unpaired]
        for p in paired
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


def _numbers(value: Interval) -> list:
    def text(x: float | None) -> str:
        return "" if x is None or x != x else repr(x)

    return [value.n, text(value.mean), text(value.low), text(value.high)]

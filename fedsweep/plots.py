"""A sweep's comparison figures, as PNG bytes, drawn with matplotlib's Agg backend (no display).

Inputs are plain data: per cell its name, its method and client count, and its per-round metric
history (the rows logged at step = round). The figures are what the sweep's MLflow parent run shows:
accuracy against round per cell, final accuracy per method and client count, and failures per round
when some client failed (a plot of zeros says nothing). Round axes have integer ticks.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, and no GUI toolkit imported

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


@dataclass(frozen=True, kw_only=True)
class CellCurve:
    """One cell's history: `rounds[i]` is the round of `accuracy[i]` (the evaluated rounds), and
    `failure_rounds[i]` the round of `failed[i]` (every round; by default the evaluated ones)."""

    name: str
    method: str
    num_clients: int
    rounds: tuple[int, ...]
    accuracy: tuple[float, ...]
    failed: tuple[float, ...]
    failure_rounds: tuple[int, ...] = ()

    @property
    def failure_curve(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        return (self.failure_rounds or self.rounds), self.failed


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def _lines(
    series: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    ylabel: str,
    title: str,
    *,
    counts: bool = False,
) -> bytes:
    """One line per (label, rounds, values); rounds (and with `counts` the values) on integer ticks."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, rounds, values in series:
        ax.plot(rounds, values, marker="o", markersize=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if counts:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small", loc="best")
    return _png(fig)


def accuracy_vs_round(cells: Sequence[CellCurve]) -> bytes:
    """Test accuracy after each evaluated round, one line per cell."""
    return _lines([(c.name, c.rounds, c.accuracy) for c in cells], "test accuracy", "accuracy vs round")


def failures_per_round(cells: Sequence[CellCurve]) -> bytes:
    """Clients that failed in each round (any kind), one line per cell."""
    series = [(c.name, *c.failure_curve) for c in cells]
    return _lines(series, "clients failed", "failures per round", counts=True)


def any_failed(cells: Sequence[CellCurve]) -> bool:
    return any(v for c in cells for v in c.failed)


def final_accuracy_by_method(cells: Sequence[CellCurve]) -> bytes:
    """Grouped bars: per client count, the final accuracy of each method (the mean over the cells
    of one method and client count, e.g. over seeds)."""
    methods = sorted({c.method for c in cells})
    clients = sorted({c.num_clients for c in cells})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        heights = []
        for n in clients:
            finals = [
                c.accuracy[-1] for c in cells if c.method == method and c.num_clients == n and c.accuracy
            ]
            heights.append(sum(finals) / len(finals) if finals else 0.0)
        ax.bar([j + i * width for j in range(len(clients))], heights, width, label=method)
    ax.set_xticks(
        [j + width * (len(methods) - 1) / 2 for j in range(len(clients))], [str(n) for n in clients]
    )
    ax.set_xlabel("clients")
    ax.set_ylabel("final test accuracy")
    ax.set_title("final accuracy per method × clients")
    ax.grid(axis="y", alpha=0.3)
    if methods:
        ax.legend(fontsize="small")
    return _png(fig)


def sweep_figures(cells: Sequence[CellCurve]) -> dict[str, bytes]:
    """Every figure that has something to show, by the file name it is logged under."""
    figures = {
        "plots/accuracy_vs_round.png": accuracy_vs_round(cells),
        "plots/final_accuracy_by_method.png": final_accuracy_by_method(cells),
    }
    if any_failed(cells):
        figures["plots/failures_per_round.png"] = failures_per_round(cells)
    return figures

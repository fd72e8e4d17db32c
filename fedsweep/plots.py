"""A sweep's comparison figures, as PNG bytes, drawn with matplotlib's Agg backend (no display).

Inputs are plain data: per cell its name, its method and client count, and its per-round metric
history (the rows logged at step = round). The figures are what the sweep's MLflow parent run shows:
accuracy against round per cell, final accuracy per method and client count, failures per round.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, and no GUI toolkit imported

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


@dataclass(frozen=True, kw_only=True)
class CellCurve:
    """One cell's history: `rounds[i]` is the round of `accuracy[i]` and `failed[i]`."""

    name: str
    method: str
    num_clients: int
    rounds: tuple[int, ...]
    accuracy: tuple[float, ...]
    failed: tuple[float, ...]


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def _lines(cells: Sequence[CellCurve], values: str, ylabel: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cell in cells:
        ax.plot(cell.rounds, getattr(cell, values), marker="o", markersize=3, label=cell.name)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if cells:
        ax.legend(fontsize="small", loc="best")
    return _png(fig)


def accuracy_vs_round(cells: Sequence[CellCurve]) -> bytes:
    """Test accuracy after each round, one line per cell."""
    return _lines(cells, "accuracy", "test accuracy", "accuracy vs round")


def failures_per_round(cells: Sequence[CellCurve]) -> bytes:
    """Clients that failed in each round (any kind), one line per cell."""
    return _lines(cells, "failed", "clients failed", "failures per round")


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
    """Every figure, by the file name it is logged under."""
    return {
        "plots/accuracy_vs_round.png": accuracy_vs_round(cells),
        "plots/final_accuracy_by_method.png": final_accuracy_by_method(cells),
        "plots/failures_per_round.png": failures_per_round(cells),
    }

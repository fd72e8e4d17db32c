"""The sweep's figures (fedsweep/plots.py): round axes on integer ticks, and no failures plot for a
sweep in which no client failed."""

import pytest

from fedsweep import plots
from fedsweep.plots import CellCurve, sweep_figures

PNG = b"\x89PNG\r\n\x1a\n"


def curve(name: str, failed: tuple[float, ...], *, rounds=(1, 2), failure_rounds=()) -> CellCurve:
    return CellCurve(
        name=name,
        method=name.split("-")[0],
        num_clients=10,
        rounds=rounds,
        accuracy=tuple(0.3 + 0.1 * i for i in range(len(rounds))),
        failed=failed,
        failure_rounds=failure_rounds,
    )


def test_a_failures_plot_only_when_a_client_failed() -> None:
    # Execute
    none_failed = sweep_figures(
        [curve("fedavg-c10-r2-s0", (0.0, 0.0)), curve("fedprox-c10-r2-s0", (0.0, 0.0))]
    )
    one_failed = sweep_figures([curve("fedavg-c10-r2-s0", (0.0, 1.0))])
    # Assert
    assert set(none_failed) == {"plots/accuracy_vs_round.png", "plots/final_accuracy_by_method.png"}
    assert set(one_failed) == {*none_failed, "plots/failures_per_round.png"}
    assert all(png.startswith(PNG) for png in [*none_failed.values(), *one_failed.values()])


@pytest.mark.parametrize("draw", [plots.accuracy_vs_round, plots.failures_per_round])
def test_round_axes_have_integer_ticks(draw, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: two rounds, where matplotlib's own ticks would be 1.0, 1.2, ..., 2.0; evaluated rounds
    # 3 and 5 of a cell with failures counted in every round
    drawn = []
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or PNG)
    cells = [curve("a", (0.0, 2.0)), curve("b", (1.0, 0.0, 3.0), rounds=(3, 5), failure_rounds=(1, 2, 3))]
    # Execute
    draw(cells)
    # Assert
    (fig,) = drawn
    ax = fig.axes[0]
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks()), ax.get_xticks()
    if draw is plots.failures_per_round:
        assert all(float(t).is_integer() for t in ax.get_yticks()), ax.get_yticks()
        assert [list(line.get_xdata()) for line in ax.get_lines()] == [[1, 2], [1, 2, 3]]

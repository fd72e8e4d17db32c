"""Claims checked against cells: figures read from metric histories, paired values over seeds, and
the verdict from the 95 % t-interval, on numbers worked by hand."""

import math

import pytest

from fedsweep.compare.claims import FAILS, HOLDS, NOT_RUN, OPEN, Claim, Figure, bound, by_label, check, status
from fedsweep.compare.methods import Run
from fedsweep.compare.stats import Interval

T2, T1 = 4.302652729749464, 12.706204736174698  # t(0.975, 2), t(0.975, 1)


def run(name: str, seed: int, accuracy: list[float], **metrics: list[float]) -> Run:
    params = {"seed": str(seed), "lr": "0.1", "method": name.rsplit("-", 1)[-1]}
    history = {k: list(enumerate(v, start=1)) for k, v in metrics.items()}
    return Run(f"fedavg-c10-r3-s{seed}-{name}", params, list(enumerate(accuracy, start=1)), history)


def test_figures_by_hand() -> None:
    # Prepare
    cell = run("a", 0, [0.2, 0.5, 0.4, 0.7], sim_clock_s=[10.0, 30.0, 35.0, 90.0], worst=[0.0, 0.1, 0.2, 0.3])
    # Execute / Assert
    assert Figure().of(cell) == 0.7
    assert Figure(tail=2).of(cell) == pytest.approx(0.55)
    assert Figure(metric="worst", tail=3).of(cell) == pytest.approx(0.2)
    assert Figure(target=0.45).of(cell) == 2.0  # the first round at or above the target
    assert Figure(target=0.45, clock="sim_clock_s").of(cell) == 30.0
    assert Figure(target=0.9).of(cell) is None and Figure(tail=5).of(cell) is None


def test_a_paired_difference_and_its_verdict() -> None:
    # Prepare: b's seeds vary a lot, the differences little: 0.05, 0.07, 0.06 -> mean 0.06, s = 0.01
    runs = [run("a", s, [0.0, v + d]) for s, (v, d) in enumerate([(0.5, 0.05), (0.7, 0.07), (0.3, 0.06)])]
    runs += [run("b", s, [0.0, v]) for s, v in enumerate([0.5, 0.7, 0.3])]
    claim = Claim(text="a ahead", expected="", figure=Figure(), a="a", b="b", above=0.0)
    # Execute
    verdict = check(claim, by_label(runs))
    # Assert: 0.06 ± t(0.975, 2) · 0.01 / √3, entirely above 0
    assert verdict.value.mean == pytest.approx(0.06)
    assert verdict.value.half == pytest.approx(T2 * 0.01 / 3**0.5)
    assert (verdict.status, verdict.missing, verdict.b.mean) == (HOLDS, 0, pytest.approx(0.5))
    assert bound(claim) == "a − b > 0"


def test_a_ratio_of_times_with_a_seed_that_never_reached() -> None:
    # Prepare: time to 0.5 on the simulated clock; seed 2 of `slow` never gets there
    fast = [run("fast", s, [0.3, 0.6], sim_clock_s=[5.0, t]) for s, t in enumerate([10.0, 20.0, 10.0])]
    slow = [run("slow", s, [0.3, acc], sim_clock_s=[9.0, 40.0]) for s, acc in enumerate([0.6, 0.6, 0.4])]
    claim = Claim(
        text="fast is faster",
        expected="",
        figure=Figure(target=0.5, clock="sim_clock_s"),
        a="fast",
        b="slow",
        kind="ratio",
        above=1.2,
    )
    # Execute
    verdict = check(claim, by_label(fast + slow))
    # Assert: ratios 40/10 and 40/20, on the log scale: geometric mean √8 over two seeds, one missing
    centre, low, high = verdict.shown()
    assert (verdict.value.n, centre, verdict.missing) == (2, pytest.approx(8**0.5), 1)
    half = T1 * (math.log(2.0) / 2**0.5) / 2**0.5  # t(0.975, 1) · s / √2, s = (log 4 − log 2) / √2
    assert (low, high) == (pytest.approx(8**0.5 / math.exp(half)), pytest.approx(8**0.5 * math.exp(half)))
    assert verdict.status == OPEN and bound(claim) == "slow / fast > 1.2"


@pytest.mark.parametrize(
    ("interval", "above", "below", "expected"),
    [
        (Interval(3, 0.06, 0.02), 0.0, None, HOLDS),
        (Interval(3, 0.06, 0.08), 0.0, None, OPEN),
        (Interval(3, -0.06, 0.02), 0.0, None, FAILS),
        (Interval(3, 0.004, 0.003), None, 0.01, HOLDS),
        (Interval(3, 0.02, 0.005), None, 0.01, FAILS),
        (Interval(3, 0.0, 0.0), 0.0, None, FAILS),  # exactly the bound is not above it
        (Interval(1, 0.5, None), 0.0, None, OPEN),  # one seed: no interval
    ],
)
def test_verdicts(interval: Interval, above: float | None, below: float | None, expected: str) -> None:
    assert status(interval, above=above, below=below) == expected


def test_a_method_left_out_is_not_run_and_bounds_are_required() -> None:
    runs = [run("a", s, [0.5]) for s in range(2)]
    claim = Claim(text="a ahead of c", expected="", figure=Figure(), a="a", b="c", above=0.0)
    assert check(claim, by_label(runs)).status == NOT_RUN
    with pytest.raises(ValueError, match="needs a bound"):
        Claim(text="no bound", expected="", figure=Figure(), a="a", b="b")

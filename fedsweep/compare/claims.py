"""Claims of published results, checked against finished cells with their uncertainty.

A claim compares two methods of one sweep on one figure, seed by seed: cells of one seed share their
data, partition, initial model and client selections (fedsweep/compare/methods.py), so the paired
values — the difference a − b, or the ratio b / a (how many times less a needs of something, e.g.
simulated seconds to an accuracy; its interval is taken on log(b / a), as ratios multiply, and shown
as a geometric mean and bounds) — carry the comparison with far less noise than the two methods' own
spreads. The value's 95 % Student-t interval over seeds (stats.py) decides the verdict against the
claimed bound (`above`: the value exceeds it; `below`: stays under it):

- **holds**: the whole interval lies on the claimed side of every bound;
- **does not hold**: the whole interval lies on the other side of a bound;
- **inconclusive**: it straddles a bound, or fewer than two seeds have a value on both sides;
- **not run**: the sweep has no cells of one of the two methods (a reduced run may leave some out).

A figure is a cell's final value of a per-round metric, or the mean of its last `tail` rounds (a
noisy curve, such as power-of-choice's three clients a round), or the clock (`round`, or a
cumulative metric such as `sim_clock_s`) at the first round whose accuracy (or its mean over that round
and the `smooth` − 1 before it, against single noisy rounds) reaches `target`; a cell that never
reaches it has no value and its seed is counted as missing.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fedsweep.compare.methods import Run, assign
from fedsweep.compare.stats import Interval, interval, rounds_to_target

HOLDS, FAILS, OPEN, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"


@dataclass(frozen=True)
class Figure:
    """What is read from one cell: a metric's final value (or the mean of its last `tail` rounds),
    or, with `target`, the `clock` when accuracy first reaches it."""

    metric: str = "accuracy"
    tail: int = 1
    target: float | None = None
    clock: str = "round"  # "round", or a cumulative per-round metric (sim_clock_s)
    smooth: int = 1  # with `target`: accuracy as the mean of this round and the smooth − 1 before it

    def of(self, run: Run) -> float | None:
        """This figure for `run`; None when it has no value (too few rounds, target never reached)."""
        if self.target is not None:
            reached = rounds_to_target(smoothed(run.accuracy, self.smooth), self.target)
            if reached is None or self.clock == "round":
                return None if reached is None else float(reached)
            return dict(run.metrics.get(self.clock, ())).get(reached)
        history = run.accuracy if self.metric == "accuracy" else run.metrics.get(self.metric, ())
        values = [value for _, value in sorted(history)]
        return math.fsum(values[-self.tail :]) / self.tail if len(values) >= self.tail else None

    def describe(self) -> str:
        if self.target is not None:
            over = f" (mean of {self.smooth} rounds)" if self.smooth > 1 else ""
            return f"{self.clock} to accuracy {self.target:g}{over}"
        return self.metric if self.tail == 1 else f"{self.metric}, mean of the last {self.tail} rounds"


def smoothed(history: Sequence[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    """(round, mean of the values of this round and the k − 1 before it), from the k-th round on."""
    values = sorted(history)
    return [
        (values[i][0], math.fsum(v for _, v in values[i - k + 1 : i + 1]) / k)
        for i in range(k - 1, len(values))
    ]


@dataclass(frozen=True)
class Claim:
    """`a` against `b` (method labels: the grid label that ends their cells' names) on `figure`:
    the difference a − b (`kind="difference"`) or the ratio b / a (`kind="ratio"`) is claimed to be
    above `above` and/or below `below`. `text` says it in words; `expected` gives the source's figure."""

    text: str
    expected: str
    figure: Figure
    a: str
    b: str
    kind: str = "difference"
    above: float | None = None
    below: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("difference", "ratio"):
            raise ValueError(f"Claim.kind must be difference or ratio (got {self.kind!r})")
        if self.above is None and self.below is None:
            raise ValueError(f"claim {self.text!r} needs a bound: above or below")


@dataclass(frozen=True)
class Verdict:
    """A claim against the cells: each method's figure and the paired value, over seeds."""

    claim: Claim
    a: Interval
    b: Interval
    value: Interval  # of a − b, or of log(b / a) for a ratio
    missing: int  # seeds with a cell of a or b but no paired value
    status: str

    def shown(self) -> tuple[float, float | None, float | None]:
        """(centre, low, high) in the claim's own scale: a ratio's geometric mean and interval."""
        v = self.value
        if self.claim.kind != "ratio":
            return v.mean, v.low, v.high
        return (
            math.exp(v.mean) if v.n else math.nan,
            None if v.low is None else math.exp(v.low),
            None if v.high is None else math.exp(v.high),
        )


def by_label(runs: Iterable[Run]) -> dict[str, dict[int, Run]]:
    """{label: {seed: run}}: compare's methods (repeats dropped), named by the label ending their name."""
    out: dict[str, dict[int, Run]] = {}
    named: dict[str, str] = {}
    for method, seed, run in assign(runs):
        label = method.split(" ")[0].rsplit("-", 1)[-1]
        if named.setdefault(label, method) != method:
            raise ValueError(f"label {label} ends two methods' names: {named[label]} and {method}")
        out.setdefault(label, {})[seed] = run
    return out


def check(claim: Claim, cells: Mapping[str, Mapping[int, Run]]) -> Verdict:
    """The verdict on `claim` from the cells by label and seed (`by_label`)."""
    a = {s: claim.figure.of(r) for s, r in cells.get(claim.a, {}).items()}
    b = {s: claim.figure.of(r) for s, r in cells.get(claim.b, {}).items()}
    pairs: list[tuple[float, float]] = [
        (x, y) for s in sorted(a.keys() & b.keys()) if (x := a[s]) is not None and (y := b[s]) is not None
    ]
    if claim.kind == "ratio":  # ratios multiply: their interval is taken on the log scale
        values = [math.log(y / x) for x, y in pairs if x > 0 and y > 0]
        above, below = (None if c is None else math.log(c) for c in (claim.above, claim.below))
    else:
        values = [x - y for x, y in pairs]
        above, below = claim.above, claim.below
    value = interval(values)
    missing = len(a.keys() | b.keys()) - len(values)
    return Verdict(
        claim=claim,
        a=interval([v for v in a.values() if v is not None]),
        b=interval([v for v in b.values() if v is not None]),
        value=value,
        missing=missing,
        status=status(value, above=above, below=below) if a and b else NOT_RUN,
    )


def status(value: Interval, *, above: float | None, below: float | None) -> str:
    """holds / does not hold / inconclusive for an interval against the claimed bounds."""
    if value.half is None or value.low is None or value.high is None:
        return OPEN
    if (above is not None and value.high <= above) or (below is not None and value.low >= below):
        return FAILS
    if (above is None or value.low > above) and (below is None or value.high < below):
        return HOLDS
    return OPEN


def bound(claim: Claim) -> str:
    """The claimed relation in symbols, e.g. `a − b > 0` or `b / a > 1.2`."""
    lhs = f"{claim.b} / {claim.a}" if claim.kind == "ratio" else f"{claim.a} − {claim.b}"
    parts = ([f"> {claim.above:g}"] if claim.above is not None else []) + (
        [f"< {claim.below:g}"] if claim.below is not None else []
    )
    return f"{lhs} {' and '.join(parts)}"

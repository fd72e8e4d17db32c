"""Means with Student-t intervals, computed exactly without scipy.

The two-sided t quantile is found by bisection on the t distribution's CDF, which for an integer
number of degrees of freedom ν has a closed form (Abramowitz & Stegun 26.7.3-4): with
θ = atan(t / √ν), P(|T| ≤ t) is

    ν odd:  (2/π)[θ + sinθ (cosθ + (2/3) cos³θ + ... + (2·4···(ν-3))/(1·3···(ν-2)) cos^(ν-2)θ)]
    ν even: sinθ [1 + (1/2) cos²θ + ... + (1·3···(ν-3))/(2·4···(ν-2)) cos^(ν-2)θ]

(for ν = 1 the sum is empty: 2θ/π). The result matches scipy's `t.ppf` to ~1e-12.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass


def t_within(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with `df` degrees of freedom."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):  # no term for df = 1
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + math.sin(theta) * total)
    term, total = 1.0, 0.0
    for k in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def t_quantile(df: int, level: float = 0.95) -> float:
    """The t with P(|T| ≤ t) = `level`: the half-width of a `level` interval is t · s / √n."""
    if df < 1 or not 0 < level < 1:
        raise ValueError(f"need df >= 1 and 0 < level < 1 (got df={df}, level={level})")
    low, high = 0.0, 1.0
    while t_within(high, df) < level:
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        low, high = (mid, high) if t_within(mid, df) < level else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class Interval:
    """A sample's mean and the half-width of its 95 % t-interval (None below two values)."""

    n: int
    mean: float
    half: float | None

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half


def interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean ± t(n-1) · s / √n, with s the sample standard deviation (n - 1 in the denominator)."""
    n = len(values)
    if n == 0:
        return Interval(0, math.nan, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(1, mean, None)
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(n, mean, t_quantile(n - 1, level) * s / math.sqrt(n))


def rounds_to_target(history: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first round (step) whose accuracy is ≥ `target`; None if none is."""
    return next((step for step, value in sorted(history) if value >= target), None)

"""Exact Student-t quantiles and intervals, against printed tables and numbers worked by hand."""

import math

import pytest

from fedsweep.compare.stats import interval, rounds_to_target, t_quantile, t_within

# Two-sided 95 % quantiles t(0.975, df) as printed in statistics tables (4 decimals).
TABLE = {
    1: 12.7062,
    2: 4.3027,
    3: 3.1824,
    4: 2.7764,
    5: 2.5706,
    9: 2.2622,
    10: 2.2281,
    30: 2.0423,
    120: 1.9799,
}


@pytest.mark.parametrize(("df", "expected"), sorted(TABLE.items()))
def test_t_quantiles_match_the_printed_table(df: int, expected: float) -> None:
    assert t_quantile(df) == pytest.approx(expected, abs=5e-5)


def test_t_quantiles_match_scipy_where_it_is_installed() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 200):
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-10)
        assert t_quantile(df, 0.9) == pytest.approx(stats.t.ppf(0.95, df), abs=1e-10)


def test_the_cdf_has_its_closed_forms_for_one_and_two_degrees_of_freedom() -> None:
    # Cauchy: P(|T| <= 1) = 1/2; df = 2: P(|T| <= t) = t / sqrt(2 + t^2)
    assert t_within(1.0, 1) == pytest.approx(0.5)
    assert t_within(3.0, 2) == pytest.approx(3 / math.sqrt(11))


def test_an_interval_worked_by_hand() -> None:
    # Prepare: mean 0.6, s = 0.1, so the half-width is t(0.975, 2) * 0.1 / sqrt(3)
    values = [0.5, 0.6, 0.7]
    # Execute
    result = interval(values)
    # Assert
    assert (result.n, result.mean) == (3, pytest.approx(0.6))
    assert result.half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert (result.low, result.high) == (pytest.approx(0.6 - result.half), pytest.approx(0.6 + result.half))


def test_one_value_has_a_mean_and_no_interval() -> None:
    assert interval([0.7]) == interval([0.7]).__class__(1, 0.7, None)
    assert interval([]).n == 0 and interval([]).low is None


def test_rounds_to_target_is_the_first_round_at_or_above_it() -> None:
    history = [(3, 0.9), (1, 0.5), (2, 0.8)]  # any order
    assert rounds_to_target(history, 0.8) == 2
    assert rounds_to_target(history, 0.5) == 1
    assert rounds_to_target(history, 0.95) is None


def test_a_bad_level_or_df_is_refused() -> None:
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(0)
    with pytest.raises(ValueError, match="level"):
        t_quantile(3, 1.0)

"""The selectors' shared draws: stable orders, successive weighted sampling without replacement."""

import pytest
import torch

from fedsweep.rng import generator
from fedsweep.selection.draw import (
    ascending,
    at_most,
    check_round,
    descending,
    largest,
    uniform_sample,
    weighted_sample,
)


def test_orders_are_stable() -> None:
    # Execute / Assert
    assert descending(torch.tensor([1.0, 3.0, 3.0, 2.0])).tolist() == [1, 2, 3, 0]
    assert ascending(torch.tensor([2.0, 1.0, 2.0, 0.0])).tolist() == [3, 1, 0, 2]


def test_weighted_sample_first_draw_follows_the_weights() -> None:
    # Prepare
    w = torch.tensor([1.0, 3.0, 0.0, 6.0])
    # Execute
    first = (
        torch.bincount(
            torch.tensor([int(weighted_sample(w, 1, generator(0, r))[0]) for r in range(3000)]), minlength=4
        ).double()
        / 3000
    )
    # Assert
    assert first.tolist() == pytest.approx([0.1, 0.3, 0.0, 0.6], abs=0.04)


def test_weighted_sample_is_distinct_and_reaches_zero_weights_last() -> None:
    # Execute
    draws = [
        weighted_sample(torch.tensor([0.0, 2.0, 0.0, 1.0]), 3, generator(1, r)).tolist() for r in range(100)
    ]
    # Assert: the two positive ones always first, then one zero-weight index
    assert all(len(set(d)) == 3 and set(d[:2]) == {1, 3} for d in draws)
    with pytest.raises(ValueError):
        weighted_sample(torch.tensor([1.0]), 2, generator(0))
    with pytest.raises(ValueError):
        weighted_sample(torch.tensor([1.0, -1.0]), 1, generator(0))


def test_uniform_sample_is_distinct_and_in_range() -> None:
    # Execute
    d = uniform_sample(10, 4, generator(0)).tolist()
    # Assert
    assert len(set(d)) == 4 and all(0 <= i < 10 for i in d)
    assert uniform_sample(3, 0, generator(0)).numel() == 0


def test_largest_equals_the_head_of_the_stable_descending_order() -> None:
    # Prepare: many ties
    values = torch.randint(0, 5, (200,), generator=generator(3)).double()
    # Execute / Assert
    for n in (0, 1, 7, 40, 199, 200, 300):
        assert largest(values, n).tolist() == descending(values)[:n].tolist(), n


def test_check_round_refuses_negative_k_and_available_that_is_not_increasing_int64() -> None:
    # Execute / Assert
    check_round(torch.tensor([1, 3, 5]), 2, "X")
    check_round(torch.zeros(0, dtype=torch.int64), 0, "X")
    with pytest.raises(ValueError, match="X: k must be >= 0"):
        check_round(torch.tensor([1, 3]), -1, "X")
    with pytest.raises(ValueError, match="X: `available` holds duplicate"):
        check_round(torch.tensor([2, 7, 7]), 1, "X")
    with pytest.raises(ValueError, match="X: `available` holds duplicate or unsorted"):
        check_round(torch.tensor([5, 1, 3]), 1, "X")
    with pytest.raises(ValueError, match="X: `available` must be a 1-D int64 tensor"):
        check_round([1, 2], 1, "X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D int64"):
        check_round(torch.tensor([1.0, 2.0]), 1, "X")


def test_at_most_keeps_small_inputs_without_drawing_and_samples_large_ones_in_order() -> None:
    # Prepare
    g = generator(0, "at-most")
    ids = torch.arange(10, 20)
    # Execute
    same = at_most(ids, 10, g)
    untouched = torch.equal(g.get_state(), generator(0, "at-most").get_state())
    few = at_most(ids, 4, g)
    # Assert
    assert same is ids and untouched
    assert few.numel() == 4 and torch.unique(few).numel() == 4 and bool((few[1:] > few[:-1]).all())
    assert set(few.tolist()) <= set(range(10, 20))

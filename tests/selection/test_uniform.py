"""Uniform selection: sorted distinct ids from `available`, deterministic per seed, uniform."""

import pytest
import torch

from fedsweep.rng import generator
from fedsweep.selection.base import Population
from fedsweep.selection.uniform import Uniform


def select(available: list[int], k: int, seed: int = 0, round: int = 1) -> list[int]:
    ids = torch.tensor(sorted(available), dtype=torch.int64)
    return (
        Uniform()
        .select(
            round=round,
            available=ids,
            k=k,
            generator=generator(seed, "select", round),
            state={},
            population=Population(num_samples=torch.ones(max(available, default=0) + 1, dtype=torch.int64)),
        )
        .clients
    )


def test_returns_k_sorted_distinct_available_clients() -> None:
    # Prepare
    available = [3, 8, 1, 42, 17, 5, 9]
    # Execute
    chosen = select(available, 4)
    # Assert
    assert len(chosen) == 4
    assert chosen == sorted(set(chosen))
    assert set(chosen) <= set(available)


def test_k_larger_than_available_takes_everyone() -> None:
    # Execute / Assert
    assert select([4, 2, 9], 10) == [2, 4, 9]
    assert select([], 3) == []
    assert select([1, 2], 0) == []


def test_same_generator_seed_same_clients() -> None:
    # Execute
    first = [select(list(range(100)), 10, seed=0, round=r) for r in range(5)]
    again = [select(list(range(100)), 10, seed=0, round=r) for r in range(5)]
    other = [select(list(range(100)), 10, seed=1, round=r) for r in range(5)]
    # Assert
    assert first == again
    assert first != other


def test_frequencies_are_roughly_uniform() -> None:
    # Prepare: 2000 rounds of 5 out of 20, so each client is expected 500 times (sd ≈ 19.4).
    counts = torch.zeros(20)
    # Execute
    for r in range(2000):
        counts[select(list(range(20)), 5, round=r)] += 1
    # Assert
    assert counts.sum() == 2000 * 5
    assert (counts - 500).abs().max() < 100


def test_bad_arguments_are_rejected() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="k"):
        select([1, 2], -1)
    with pytest.raises(ValueError, match="duplicate"):
        select([1, 1, 2], 1)

"""Clustered sampling, Algorithm 1: buckets by size, inclusion = m × data share, weights = multiplicity."""

import pytest
import torch

from fedsweep.rng import generator
from fedsweep.selection.base import Population
from fedsweep.selection.clustered_size import ClusteredSize, size_buckets

SIZES = torch.tensor([50, 10, 30, 5, 5, 100], dtype=torch.int64)  # total 200


def select(available: list[int], k: int, round: int = 1, seed: int = 0):
    ids = torch.tensor(sorted(available), dtype=torch.int64)
    return ClusteredSize().select(
        round=round,
        available=ids,
        k=k,
        generator=generator(seed, "select", round),
        state={},
        population=Population(num_samples=SIZES),
    )


def test_buckets_by_hand() -> None:
    # Prepare: m = 2 buckets of 100 samples each; masses in bucket units are 2·p_i
    clients = torch.arange(6)
    # Execute
    r = size_buckets(clients, SIZES, 2).distributions(6)
    # Assert: client 5 (100 samples, p = 1/2) fills bucket 0 alone; bucket 1 holds the others by size
    assert r[0].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert r[1].tolist() == [0.5, 0.1, 0.3, 0.05, 0.05, 0.0]
    assert torch.allclose(r.sum(1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(r.sum(0), 2 * SIZES.double() / 200)


def test_a_client_crossing_a_bucket_end_continues_in_the_next() -> None:
    # Prepare: m = 3, capacity 200; masses by size: 300 (client 5), 150 (0), 90 (2), 30 (1), 15, 15
    # Execute
    r = size_buckets(torch.arange(6), SIZES, 3).distributions(6) * 200
    # Assert: bucket 0 = client 5's first 200; bucket 1 = its last 100 + 100 of client 0; bucket 2 the rest
    assert r[0].tolist() == [0, 0, 0, 0, 0, 200]
    assert r[1].tolist() == [100, 0, 0, 0, 0, 100]
    assert r[2].tolist() == [50, 30, 90, 15, 15, 0]


def test_inclusion_frequencies_equal_m_times_data_share() -> None:
    # Prepare: 20 clients of uneven sizes, m = 4: every p_i < 1/m, so E[draws of i] = m·p_i = P(i selected)
    sizes = torch.tensor([3, 7, 1, 12, 5, 9, 2, 4, 8, 6, 10, 3, 5, 7, 2, 9, 4, 6, 11, 1], dtype=torch.int64)
    share = sizes.double() / sizes.sum()
    rounds, counts, draws = 2000, torch.zeros(20, dtype=torch.float64), torch.zeros(20, dtype=torch.float64)
    # Execute
    for r in range(rounds):
        sel = ClusteredSize().select(
            round=r,
            available=torch.arange(20),
            k=4,
            generator=generator(0, "select", r),
            state={},
            population=Population(num_samples=sizes),
        )
        counts[sel.clients] += 1
        for c, w in sel.weights.items():
            draws[c] += w
    # Assert: within 4.5 standard errors of m·p_i (binomial, per client)
    expected = 4 * share
    se = (expected * (1 - expected.clamp(max=1)) / rounds).sqrt().clamp_min(1e-3)
    assert ((draws / rounds - expected).abs() / se).max() < 4.5
    assert ((counts / rounds - expected).abs() / se).max() < 4.5
    assert draws.sum() == 4 * rounds


def test_weights_are_multiplicities_and_big_clients_are_always_in() -> None:
    # Execute: client 5 holds p = 1/2 >= 1/m for m = 2 and 3
    for r in range(20):
        sel = select(list(range(6)), 3, round=r)
        # Assert
        assert 5 in sel.clients and sel.clients == sorted(set(sel.clients))
        assert sum(sel.weights.values()) == 3 and set(sel.weights) == set(sel.clients)
        assert sel.weights[5] >= 1


def test_deterministic_per_seed_and_only_available_clients() -> None:
    # Execute
    first = [select([0, 1, 2, 3, 4], 2, round=r).clients for r in range(10)]
    again = [select([0, 1, 2, 3, 4], 2, round=r).clients for r in range(10)]
    other = [select([0, 1, 2, 3, 4], 2, round=r, seed=1).clients for r in range(10)]
    # Assert: client 5 is unavailable: never chosen
    assert first == again and first != other
    assert all(5 not in c for c in first)


def test_edge_cases() -> None:
    # Execute / Assert
    assert select([], 3).clients == []
    assert select([1, 2], 0).clients == []
    assert len(select([3], 4).clients) == 1 and select([3], 4).weights == {3: 4.0}
    with pytest.raises(ValueError, match="k"):
        select([1, 2], -1)
    with pytest.raises(ValueError, match="duplicate"):
        select([1, 1], 1)

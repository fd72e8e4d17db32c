"""MD sampling: draws ∝ data size with replacement, multiplicities as aggregation weights."""

import torch
from selection_cases import play, population

from fedsweep.selection.uniform_md import UniformMD


def test_draw_frequencies_follow_the_data_shares() -> None:
    # Prepare: shares 0.1, 0.2, 0.3, 0.4 and an empty client; 4000 rounds of 5 draws -> 20000 draws
    pop = population(10, 20, 30, 40, 0)
    drawn = torch.zeros(5)
    # Execute
    for r in range(1, 4001):
        _, chosen = play(UniformMD(), pop, 5, round=r)
        for client, weight in chosen.weights.items():
            drawn[client] += weight
    # Assert: each client's draws within ~4 sd of 20000 · share (sd <= sqrt(20000 · 0.25) ≈ 71)
    assert drawn.sum() == 20000
    expected = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0]) * 20000
    assert (drawn - expected).abs().max() < 300, drawn
    assert drawn[4] == 0


def test_clients_are_distinct_sorted_and_weighted_by_multiplicity() -> None:
    # Prepare: one client holds every sample, so all k draws are its
    pop = population(0, 50, 0)
    # Execute
    _, chosen = play(UniformMD(), pop, 4)
    _, mixed = play(UniformMD(), population(5, 5, 5, 5), 6, round=3)
    # Assert
    assert chosen.clients == [1] and chosen.weights == {1: 4.0}
    assert mixed.clients == sorted(set(mixed.clients)) == sorted(mixed.weights)
    assert sum(mixed.weights.values()) == 6.0


def test_only_available_clients_are_drawn_and_no_probe_is_asked() -> None:
    # Execute
    asked, chosen = play(UniformMD(), population(10, 10, 10, 10), 8, available=torch.tensor([1, 3]))
    # Assert
    assert asked is None
    assert set(chosen.clients) <= {1, 3} and sum(chosen.weights.values()) == 8.0

"""FedCS: the fastest candidates that finish by the deadline, at most k, from a random fraction."""

import pytest
import torch

from fedsweep.rng import generator
from fedsweep.selection.base import Population
from fedsweep.selection.fedcs import FedCS, pack_under_deadline

SECONDS = torch.tensor([5.0, 1.0, 9.0, 3.0, 2.0, 12.0, 4.0, 2.0], dtype=torch.float64)


def population(deadline: float | None = 4.5) -> Population:
    return Population(num_samples=torch.full((8,), 10), expected_seconds=SECONDS, deadline_s=deadline)


def test_pack_takes_the_fastest_that_fit_ties_in_order() -> None:
    # Execute / Assert: fitting in 4.5 s: 1 (1 s), 4 and 7 (2 s, in order), 3 (3 s), 6 (4 s)
    assert pack_under_deadline(SECONDS, 4.5, 10).tolist() == [1, 4, 7, 3, 6]
    assert pack_under_deadline(SECONDS, 4.5, 3).tolist() == [1, 4, 7]
    assert pack_under_deadline(SECONDS, 0.5, 3).tolist() == []


def test_all_candidates_asked_packs_the_fastest_under_the_deadline() -> None:
    # Execute
    chosen = (
        FedCS(fraction=1.0)
        .select(
            round=1,
            available=torch.arange(8),
            k=4,
            generator=generator(0, "s", 1),
            state={},
            population=population(),
        )
        .clients
    )
    # Assert: the four fastest, all within 4.5 s
    assert chosen == [1, 3, 4, 7]


def test_fewer_than_k_when_few_fit() -> None:
    # Execute
    chosen = (
        FedCS(fraction=1.0)
        .select(
            round=1,
            available=torch.arange(8),
            k=6,
            generator=generator(0, "s", 1),
            state={},
            population=population(deadline=2.0),
        )
        .clients
    )
    # Assert: only 3 clients finish within 2 s
    assert chosen == [1, 4, 7]


def test_a_fraction_of_the_available_is_asked() -> None:
    # Prepare: C = 0.5 of 8 available -> 4 random candidates per round
    fedcs = FedCS(fraction=0.5)
    # Execute
    rounds = [
        fedcs.select(
            round=r,
            available=torch.arange(8),
            k=8,
            generator=generator(0, "s", r),
            state={},
            population=population(deadline=100.0),
        ).clients
        for r in range(200)
    ]
    # Assert: exactly 4 each round (all fit), and every client is asked sometimes
    assert all(len(c) == 4 for c in rounds)
    assert set().union(*rounds) == set(range(8))


def test_only_available_clients_and_a_clear_error_without_a_system_model() -> None:
    # Execute
    chosen = (
        FedCS(fraction=1.0)
        .select(
            round=1,
            available=torch.tensor([0, 2, 5]),
            k=3,
            generator=generator(0, "s", 1),
            state={},
            population=population(deadline=10.0),
        )
        .clients
    )
    # Assert
    assert chosen == [0, 2]
    with pytest.raises(ValueError, match="system model"):
        FedCS().select(
            round=1,
            available=torch.tensor([0, 1]),
            k=1,
            generator=generator(0, "s", 1),
            state={},
            population=Population(num_samples=torch.ones(2, dtype=torch.int64)),
        )


def test_check_config_refuses_a_cell_without_a_deadline() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="FedCS needs a system model"):
        FedCS.check_config({"selection": {"_target_": "fedsweep.selection.fedcs.FedCS"}}, key="selection")
    with pytest.raises(ValueError, match="deadline"):
        FedCS.check_config({"systems": {"_target_": "x.Y", "deadline_s": None}}, key="selection")
    FedCS.check_config({"systems": {"_target_": "x.Y", "deadline_s": 30.0}}, key="selection")


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_impossible_fraction_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        FedCS(fraction=fraction)

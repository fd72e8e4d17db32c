"""DivFL: the facility-location greedy by hand, unseen clients first, state kept."""

import torch

from fedsweep.rng import generator
from fedsweep.selection.base import ClientFeedback, Population
from fedsweep.selection.divfl import DivFL, facility_location_greedy

# client 0 alone at the origin; 1 at the centre of 2, 3, 4 around (5, 0)
SKETCHES = torch.tensor([[0.0, 0.0], [5.0, 0.0], [5.0, 1.0], [5.0, -1.0], [6.0, 0.0]])


def state_with(seen: list[int]) -> dict[str, torch.Tensor]:
    selector = DivFL(sketch_dim=2)
    state = selector.initial_state(5)
    return selector.observe(
        round=1, feedback=[ClientFeedback(client=c, sketch=SKETCHES[c]) for c in seen], state=state
    )


def select(state: dict, k: int, available: list[int] | None = None, round: int = 2) -> list[int]:
    return (
        DivFL(sketch_dim=2)
        .select(
            round=round,
            available=torch.tensor(available or list(range(5))),
            k=k,
            generator=generator(0, "select", round),
            state=state,
            population=Population(num_samples=torch.ones(5, dtype=torch.int64)),
        )
        .clients
    )


def test_greedy_by_hand() -> None:
    # Prepare: Σ_i d(i, j): j=0: 5+5.10+5.10+6 = 21.2; j=1: 5+1+1+1 = 8; j=2, 3: 9.51; j=4: 9.83
    d = torch.cdist(SKETCHES.double(), SKETCHES.double())
    # Execute
    first = facility_location_greedy(d, 1)
    two = facility_location_greedy(d, 2)
    # Assert: then, with best = [5, 0, 1, 1, 1]: j=0 leaves 0+0+1+1+1 = 3, j=2, 3, 4 leave 7
    assert first == [1]
    assert two == [1, 0]
    assert facility_location_greedy(d, 9) == [1, 0, 2, 3, 4]  # ties (2, 3, 4 all leave 2): lower id


def test_selector_picks_the_diverse_pair() -> None:
    # Execute / Assert: the far client 0 rather than a neighbour of 1
    assert select(state_with([0, 1, 2, 3, 4]), 2) == [0, 1]
    assert select(state_with([0, 1, 2, 3, 4]), 1) == [1]
    # only available clients are candidates; unavailable ones are still represented (V)
    assert select(state_with([0, 1, 2, 3, 4]), 1, available=[0, 2, 4]) == [2]


def test_clients_without_a_sketch_come_first() -> None:
    # Prepare: 0 and 1 have sketches, 2, 3, 4 not
    state = state_with([0, 1])
    # Execute
    picks = [select(state, 2, round=r) for r in range(2, 12)]
    four = select(state, 4)
    # Assert: two of the unseen, at random per round; with k = 4 all three, then the better of 0 and 1
    assert all(set(p) <= {2, 3, 4} and len(p) == 2 for p in picks) and len({tuple(p) for p in picks}) > 1
    assert four == [0, 2, 3, 4]  # 0 and 1 represent each other equally well: the lower id
    assert picks == [select(state, 2, round=r) for r in range(2, 12)]


def test_first_round_is_random_and_weights_are_by_samples() -> None:
    # Execute
    sel = DivFL().select(
        round=1,
        available=torch.arange(4),
        k=2,
        generator=generator(0, "select", 1),
        state={},
        population=Population(num_samples=torch.ones(4, dtype=torch.int64)),
    )
    # Assert
    assert len(sel.clients) == 2 and sel.weights is None
    assert sel.state["sketch"].shape == (4, 128) and sel.state["seen"].tolist() == [0, 0, 0, 0]


def test_past_max_candidates_the_greedy_runs_on_a_sample_and_still_spreads() -> None:
    # Prepare: 20,000 clients with a sketch in two far groups (even ids near the origin, odd ids near
    # (100, 0)); at most 200 candidates and 200 ground-set clients: the exact greedy would need a
    # 20,000 × 20,000 matrix
    n = 20_000
    g = generator(0, "sketches")
    sketches = torch.randn(n, 2, generator=g) * 0.1 + torch.tensor([[0.0, 0.0], [100.0, 0.0]]).repeat(
        n // 2, 1
    )
    state = {"sketch": sketches, "seen": torch.ones(n, dtype=torch.int64)}
    selector = DivFL(sketch_dim=2, max_candidates=200)
    population = Population(num_samples=torch.ones(n, dtype=torch.int64))
    # Execute
    picks = [
        selector.select(
            round=r,
            available=torch.arange(n),
            k=2,
            generator=generator(0, "select", r),
            state=state,
            population=population,
        ).clients
        for r in (2, 3)
    ]
    again = selector.select(
        round=2,
        available=torch.arange(n),
        k=2,
        generator=generator(0, "select", 2),
        state=state,
        population=population,
    ).clients
    # Assert: one client of each group every round, deterministic per round
    assert all(len(p) == 2 and {c % 2 for c in p} == {0, 1} for p in picks)
    assert again == picks[0]

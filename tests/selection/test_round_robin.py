"""Round-robin: everyone once before anyone twice; least recently used under varying availability."""

import torch
from selection_cases import play, population

from fedsweep.selection.round_robin import RoundRobin


def test_covers_everyone_before_repeating() -> None:
    # Prepare: 10 clients, 3 per round
    pop, state, seen = population(*[5] * 10), {}, []
    # Execute
    for r in range(1, 7):
        _, chosen = play(RoundRobin(), pop, 3, round=r, state=state)
        state = chosen.state
        seen.append(chosen.clients)
    # Assert: rounds 1-3 use 9 distinct clients, round 4 the last one plus two of round 1's
    first = [c for clients in seen[:3] for c in clients]
    assert len(set(first)) == 9
    (left,) = set(range(10)) - set(first)
    assert left in seen[3] and set(seen[3]) - {left} <= set(seen[0])
    assert state["last"].tolist().count(0) == 0 and int(state["last"].max()) == 6
    assert all(len(c) == 3 and c == sorted(c) and chosen.weights is None for c in seen)


def test_takes_the_least_recently_used_available_clients() -> None:
    # Prepare: clients last used in rounds 4, 1, 3, 2, 0 (never)

    state = {"last": torch.tensor([4, 1, 3, 2, 0])}
    # Execute
    _, chosen = play(
        RoundRobin(), population(1, 1, 1, 1, 1), 2, round=5, state=state, available=torch.arange(4)
    )
    # Assert: client 4 is unavailable; 1 and 3 are the oldest of the rest
    assert chosen.clients == [1, 3]
    assert chosen.state["last"].tolist() == [4, 5, 3, 5, 0]
    assert state["last"].tolist() == [4, 1, 3, 2, 0]  # the state handed in is not changed


def test_ties_are_broken_by_the_seed() -> None:
    # Execute
    picks = {tuple(play(RoundRobin(), population(*[1] * 20), 5, seed=s)[1].clients) for s in range(5)}
    # Assert
    assert len(picks) > 1

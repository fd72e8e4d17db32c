"""The Dirichlet partition's options after NIID-Bench and the power-of-choice authors' code: the
per-client size cap, the redraw until every client has min_samples, and a split seed of its own."""

import numpy as np
import pytest
import torch

import fedsweep.data.partition.dirichlet as dirichlet
from fedsweep.data.base import PartitionError
from fedsweep.data.partition.dirichlet import Dirichlet, capped, dirichlet_parts
from fedsweep.rng import generator

LABELS = torch.arange(600) % 4  # four classes of 150


def split(partition: Dirichlet, num_clients: int, seed: int = 0) -> list[torch.Tensor]:
    return list(
        partition.split(
            labels=LABELS, num_clients=num_clients, natural=None, generator=generator(seed, "partition")
        )
    )


def test_the_cap_by_hand() -> None:
    # Prepare: client 0 holds 10 samples, over the limit of 6; clients 1 and 2 are under it
    q, sizes = np.array([0.5, 0.3, 0.2]), np.array([10, 2, 5])
    # Execute
    shares = capped(q, sizes, limit=6.0)
    underflow = capped(np.array([1.0, 0.0, 0.0]), sizes, limit=6.0)
    # Assert: 0.3 / 0.5 and 0.2 / 0.5; shares that all underflowed become uniform over the open clients
    np.testing.assert_allclose(shares, [0.0, 0.6, 0.4])
    np.testing.assert_allclose(underflow, [0.0, 0.5, 0.5])


def test_a_client_at_the_cap_gets_nothing_of_later_classes() -> None:
    # Prepare
    num_clients = 5
    limit = LABELS.numel() / num_clients
    # Execute
    parts = dirichlet_parts(LABELS, num_clients=num_clients, alpha=0.3, generator=generator(1, "p"), cap=True)
    # Assert: classes are dealt in order 0..3; whoever held >= n/N before class c received none of it
    capped_someone = False
    for part in parts:
        labels = LABELS[torch.tensor(part, dtype=torch.int64)]
        for c in range(1, 4):
            before = int((labels < c).sum())
            if before >= limit:
                capped_someone = True
                assert int((labels == c).sum()) == 0
    assert capped_someone
    assert sorted(i for p in parts for i in p) == list(range(600))


def test_redraw_keeps_the_first_whole_draw_that_gives_everyone_min_samples() -> None:
    # Prepare: alpha 0.1 over 10 clients leaves someone short in most draws; replay the generator by hand
    gen = generator(0, "partition")
    draws = 0
    while True:
        draws += 1
        expected = dirichlet_parts(LABELS, num_clients=10, alpha=0.1, generator=gen)
        if min(len(p) for p in expected) >= 20:
            break
    # Execute
    parts = split(Dirichlet(alpha=0.1, min_samples=20, redraw=True), 10)
    topped = split(Dirichlet(alpha=0.1, min_samples=20), 10)
    # Assert: that draw, untouched (no top-up needed); the default tops up the first draw instead
    assert draws > 1
    assert [p.tolist() for p in parts] == [sorted(p) for p in expected]
    assert [p.tolist() for p in topped] != [p.tolist() for p in parts]
    assert min(len(p) for p in topped) >= 20


def test_no_draw_in_the_bound_is_one_line_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: 60 of 600 samples for each of 10 clients at alpha 0.01 almost never comes out of one draw
    monkeypatch.setattr(dirichlet, "MAX_REDRAWS", 3)
    # Execute
    with pytest.raises(PartitionError) as err:
        split(Dirichlet(alpha=0.01, min_samples=60, redraw=True), 10)
    # Assert
    assert str(err.value).startswith("partition.redraw: none of 3 Dirichlet draws") and "\n" not in str(
        err.value
    )


def test_a_split_seed_gives_every_run_seed_the_same_split() -> None:
    # Execute
    fixed = [split(Dirichlet(alpha=0.5, split_seed=2020), 8, seed=s) for s in (0, 1)]
    free = [split(Dirichlet(alpha=0.5), 8, seed=s) for s in (0, 1)]
    other = split(Dirichlet(alpha=0.5, split_seed=2021), 8, seed=0)
    # Assert
    assert [p.tolist() for p in fixed[0]] == [p.tolist() for p in fixed[1]]
    assert [p.tolist() for p in free[0]] != [p.tolist() for p in free[1]]
    assert [p.tolist() for p in other] != [p.tolist() for p in fixed[0]]


def test_the_defaults_keep_every_existing_split() -> None:
    # Prepare: the options at their defaults, written out or left out
    explicit = Dirichlet(alpha=0.5, min_samples=3, split_seed=None, cap=False, redraw=False)
    # Execute / Assert: the same draw as before the options existed (dirichlet_parts, then the top-up)
    expected = dirichlet_parts(LABELS, num_clients=8, alpha=0.5, generator=generator(0, "partition"))
    dirichlet.top_up(expected, min_samples=3)
    assert [p.tolist() for p in split(explicit, 8)] == [sorted(p) for p in expected]
    assert [p.tolist() for p in split(Dirichlet(alpha=0.5, min_samples=3), 8)] == [
        sorted(p) for p in expected
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"split_seed": -1}, "partition.split_seed must be null or an integer >= 0, got -1")],
)
def test_bad_values_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dirichlet(**kwargs)

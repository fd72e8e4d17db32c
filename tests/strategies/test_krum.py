"""Krum and Multi-Krum: hand-computed scores, honest picks among planted outliers, distances
accumulated tensor by tensor, and the bounds checked against the cell."""

import pytest
import torch

from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.krum import Krum
from fedsweep.strategies.robust import krum_scores, pairwise_sq_distances

CONTEXT = RoundContext(round=1, selected=tuple(range(7)), num_clients=7)
# Five honest clients at x = 0..4 and two attackers at 100 and 101; client 2 also has b = 0.5.
X = [0.0, 1.0, 2.0, 3.0, 4.0, 100.0, 101.0]
B = [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]


def result(c: int) -> ClientResult:
    params = {
        "a": torch.tensor([X[c], 0.0]),
        "b": torch.tensor(B[c]),
        "count": torch.tensor(c, dtype=torch.int64),
    }
    return ClientResult(
        client=c,
        num_samples=100 if c >= 5 else 1,
        loss=0.0,
        steps=1,
        epochs_done=1,
        epochs_planned=1,
        params=params,
    )


RESULTS = ListResults([result(c) for c in range(7)])
GLOBAL = {"a": torch.zeros(2), "b": torch.tensor(0.0), "count": torch.tensor(0, dtype=torch.int64)}


def aggregate(strategy: Krum) -> dict[str, torch.Tensor]:
    return strategy.aggregate(
        global_params=GLOBAL, results=RESULTS, failures=[], server_state={}, context=CONTEXT
    ).params


def test_scores_by_hand() -> None:
    # Prepare: n = 7, f = 2 -> each score sums the n - f - 2 = 3 smallest squared distances to others
    d = pairwise_sq_distances(RESULTS, ["a", "b"])
    # Execute
    scores = krum_scores(d, 2)
    # Assert: x=0: 1 + 4.25 + 9 = 14.25; x=1: 1 + 1.25 + 4 = 6.25; x=2: 1.25 + 1.25 + 4.25 = 6.75;
    # x=3: 1 + 1.25 + 4 = 6.25; x=4: 1 + 4.25 + 9 = 14.25; x=100: 1 + 96² + 97²; x=101: 1 + 97² + 98²
    expected = [14.25, 6.25, 6.75, 6.25, 14.25, 1 + 96**2 + 97**2, 1 + 97**2 + 98**2]
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float64))


def test_krum_selects_an_honest_update_among_planted_outliers() -> None:
    # Execute: ties (clients 1 and 3, score 6.25) go to the lower client id; attackers' samples do not count
    out = aggregate(Krum(f=2))
    # Assert: exactly client 1's parameters
    assert torch.equal(out["a"], torch.tensor([1.0, 0.0])) and out["b"].item() == 0.0
    assert out["count"].item() == 1 and out["count"].dtype == torch.int64


def test_multi_krum_averages_the_m_best_unweighted() -> None:
    # Execute
    three = aggregate(Krum(f=2, m=3))  # clients 1, 3, 2
    honest = aggregate(Krum(f=2, m=None))  # n - f = 5: the five honest clients
    # Assert
    torch.testing.assert_close(three["a"], torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(three["b"], torch.tensor(0.5 / 3))
    torch.testing.assert_close(honest["a"], torch.tensor([2.0, 0.0]))
    assert three["count"].item() == 2 and honest["count"].item() == 2


def test_distances_accumulated_per_tensor_equal_distances_of_the_flattened_models() -> None:
    # Prepare
    gen = torch.Generator().manual_seed(0)
    models = [{"x": torch.randn(3, 4, generator=gen), "y": torch.randn(5, generator=gen)} for _ in range(6)]
    results = ListResults(
        [
            ClientResult(
                client=c, num_samples=1, loss=0.0, steps=1, epochs_done=1, epochs_planned=1, params=p
            )
            for c, p in enumerate(models)
        ]
    )
    flat = torch.stack([torch.cat([p["x"].flatten(), p["y"]]).double() for p in models])
    # Execute
    d = pairwise_sq_distances(results, ["x", "y"])
    # Assert
    torch.testing.assert_close(d, torch.cdist(flat, flat) ** 2, rtol=1e-9, atol=1e-9)


def test_fewer_results_than_planned_lower_f_for_the_round() -> None:
    # Prepare: only 3 results but f = 2 (n >= 2f + 3 fails): f drops to 0, Krum still picks one model
    results = ListResults([result(c) for c in (0, 1, 5)])
    # Execute
    out = (
        Krum(f=2)
        .aggregate(global_params=GLOBAL, results=results, failures=[], server_state={}, context=CONTEXT)
        .params
    )
    # Assert: n - 0 - 2 = 1 neighbour each: 0 -> 1, 1 -> 1, 100 -> 99²: client 0 (tie with 1, lower id)
    assert torch.equal(out["a"], torch.tensor([0.0, 0.0]))


def cell(f: int, m: int | None = 1, per_round: int = 7) -> dict:
    return {
        "strategy": {"_target_": "fedsweep.strategies.krum.Krum", "f": f, "m": m},
        "clients_per_round": per_round,
        "num_clients": 20,
    }


@pytest.mark.parametrize(
    ("f", "m", "text"),
    [
        (3, 1, "clients_per_round >= 2f + 3, so f <= 2"),
        (2, 6, "strategy.m=6 must be <= clients_per_round - f = 5"),
    ],
)
def test_check_config_refuses_impossible_f_and_m(f: int, m: int, text: str) -> None:
    with pytest.raises(ValueError, match=r"^strategy\.") as err:
        Krum.check_config(cell(f, m), key="strategy")
    assert text in str(err.value)


def test_check_config_accepts_the_bound() -> None:
    Krum.check_config(cell(2, 5), key="strategy")
    Krum.check_config(cell(2, None), key="strategy")

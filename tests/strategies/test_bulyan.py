"""Bulyan: its Krum selection and trimmed mean around the median, by hand and against a direct
(flattened, loop-by-loop) implementation of the paper's two stages."""

import pytest
import torch

from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.bulyan import Bulyan
from fedsweep.strategies.robust import bulyan_select, pairwise_sq_distances

CONTEXT = RoundContext(round=1, selected=tuple(range(7)), num_clients=7)


def results_of(models: list[dict[str, torch.Tensor]]) -> ListResults:
    return ListResults(
        [
            ClientResult(
                client=c, num_samples=1, loss=0.0, steps=1, epochs_done=1, epochs_planned=1, params=p
            )
            for c, p in enumerate(models)
        ]
    )


def test_hand_case_excludes_the_outliers() -> None:
    # Prepare: n = 7, f = 1 (4f + 3 = 7). Honest x = 0..4, attackers 100 and -50.
    # Selection (Krum with n_r - f - 2 neighbours among those left): 2 (score 10), then 1 (14, tie with 3:
    # lower id), 3 (10), 0 (16, tie with 4), 4 (2916, tie with -50: lower id) -> theta = 5: {0, 1, 2, 3, 4}.
    xs = [0.0, 1.0, 2.0, 3.0, 4.0, 100.0, -50.0]
    results = results_of([{"x": torch.tensor([x])} for x in xs])
    # Execute
    chosen = bulyan_select(pairwise_sq_distances(results, ["x"]), 1)
    out = Bulyan(f=1).aggregate(
        global_params={"x": torch.zeros(1)}, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Assert: beta = theta - 2f = 3 values closest to the median 2: {1, 2, 3} -> 2
    assert chosen == [2, 1, 3, 0, 4]
    assert out.params["x"].item() == 2.0


def reference(models: list[torch.Tensor], f: int) -> torch.Tensor:
    """The paper's Bulyan on flattened vectors, written plainly."""
    remaining = list(range(len(models)))
    chosen = []
    while len(chosen) < len(models) - 2 * f:
        n = len(remaining)
        scores = []
        for i in remaining:
            dists = sorted(float(((models[i] - models[j]) ** 2).sum()) for j in remaining if j != i)
            scores.append(sum(dists[: max(1, n - f - 2)]))
        best = remaining[min(range(n), key=lambda k: (scores[k], k))]
        chosen.append(best)
        remaining.remove(best)
    stacked = torch.stack([models[i] for i in chosen])
    beta = len(chosen) - 2 * f
    out = torch.empty_like(stacked[0])
    for j in range(stacked.shape[1]):
        column = sorted(stacked[:, j].tolist())
        median = (column[(len(column) - 1) // 2] + column[len(column) // 2]) / 2
        closest = sorted(stacked[:, j].tolist(), key=lambda v: abs(v - median))[:beta]
        out[j] = sum(closest) / beta
    return out


@pytest.mark.parametrize("f", [1, 2])
def test_random_case_equals_the_direct_implementation(f: int) -> None:
    # Prepare: 11 clients, two of them far off
    gen = torch.Generator().manual_seed(f)
    models = [
        {
            "w": torch.randn(2, 3, generator=gen, dtype=torch.float64),
            "b": torch.randn(2, generator=gen, dtype=torch.float64),
        }
        for _ in range(11)
    ]
    models[4] = {k: v + 30 for k, v in models[4].items()}
    models[9] = {k: v - 20 for k, v in models[9].items()}
    flat = [torch.cat([m["w"].flatten(), m["b"]]) for m in models]
    # Execute
    out = Bulyan(f=f).aggregate(
        global_params={k: torch.zeros_like(v) for k, v in models[0].items()},
        results=results_of(models),
        failures=[],
        server_state={},
        context=CONTEXT,
    )
    # Assert
    expected = reference(flat, f)
    torch.testing.assert_close(torch.cat([out.params["w"].flatten(), out.params["b"]]), expected)


def test_check_config_needs_4f_plus_3() -> None:
    config = {"strategy": {"f": 2}, "clients_per_round": 10, "num_clients": 50}
    with pytest.raises(ValueError, match=r"strategy\.f=2 .*clients_per_round >= 4f \+ 3, so f <= 1"):
        Bulyan.check_config(config, key="strategy")
    Bulyan.check_config({**config, "clients_per_round": 11}, key="strategy")

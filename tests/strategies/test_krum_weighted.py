"""Multi-Krum's optional sample-weighted mean (Flower's choice) on a tiny hand-computed example."""

import pytest
import torch

from fedsweep.params import ParamError
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.krum import Krum

# Four clients at x = 0, 1, 2 and an outlier at 50, holding 1, 3, 4 and 100 samples.
X, N = [0.0, 1.0, 2.0, 50.0], [1, 3, 4, 100]


def aggregate(strategy: Krum) -> float:
    results = ListResults(
        [
            ClientResult(
                client=c,
                num_samples=N[c],
                loss=0.0,
                steps=1,
                epochs_done=1,
                epochs_planned=1,
                params={"w": torch.tensor([X[c]])},
            )
            for c in range(4)
        ]
    )
    out = strategy.aggregate(
        global_params={"w": torch.zeros(1)},
        results=results,
        failures=[],
        server_state={},
        context=RoundContext(round=1, selected=(0, 1, 2, 3), num_clients=4),
    )
    return out.params["w"].item()


def test_weighted_multikrum_by_hand() -> None:
    # Prepare: f = 0, n = 4: each score sums the 2 nearest squared distances; x=0: 1 + 4 = 5,
    # x=1: 1 + 1 = 2, x=2: 1 + 4 = 5, x=50: 48² + 49²; m = 3 keeps clients 1, 0, 2 (stable ties)
    # Execute
    plain = aggregate(Krum(f=0, m=3))
    weighted = aggregate(Krum(f=0, m=3, weighted=True))
    # Assert: (0 + 1 + 2) / 3 and (1·0 + 3·1 + 4·2) / (1 + 3 + 4) = 11 / 8
    assert plain == pytest.approx(1.0)
    assert weighted == pytest.approx(11 / 8)


def test_weighted_is_a_boolean() -> None:
    with pytest.raises(ParamError) as err:
        Krum(m=None, weighted="yes")
    assert err.value.field == "weighted"

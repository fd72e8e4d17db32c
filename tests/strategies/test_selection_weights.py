"""A selector's aggregation weights (`ClientMeta.weight`): the weighting strategies use them in place
of the sample counts, the others ignore them, and by default nothing changes (bitwise)."""

import dataclasses
from pathlib import Path

import pytest
import torch
from test_catalogue import CONTEXT, GLOBAL, OPTIONS, build, client

from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedavg import FedAvg

WEIGHTING = {"fedavg", "fedprox", "fedavgm", "fedadagrad", "fedadam", "fedyogi", "fednova"}
WEIGHTS = {0: 3.0, 1: 1.0, 2: 1.0, 3: 2.0, 4: 1.0, 5: 1.0, 6: 1.0}  # e.g. MD sampling's multiplicities


def aggregate(path: Path, edit) -> dict[str, torch.Tensor]:  # edit: ClientResult -> ClientResult
    strategy = build(path)
    state = strategy.init_server_state(GLOBAL)
    results = ListResults([edit(client(c, strategy, state)) for c in range(7)])
    return strategy.aggregate(
        global_params=GLOBAL, results=results, failures=[], server_state=state, context=CONTEXT
    ).params


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in GLOBAL)


def test_the_default_weight_is_the_sample_count() -> None:
    # Execute
    result = client(3)
    # Assert
    assert result.weight == 13.0 and isinstance(result.weight, float)
    assert dataclasses.replace(result, weight=2.5).weight == 2.5


def test_fedavg_by_hand_with_selector_weights() -> None:
    # Prepare: 1 and 3 samples, but the selector weighs them equally (1/m each)
    results = [
        ClientResult(
            client=c,
            num_samples=n,
            loss=0.0,
            steps=1,
            epochs_done=1,
            epochs_planned=1,
            params={"w": torch.tensor(float(c))},
            weight=w,
        )
        for c, n, w in ((0, 1, 1.0), (1, 3, 1.0))
    ]
    # Execute
    out = FedAvg().aggregate(
        global_params={"w": torch.tensor(0.0)},
        results=ListResults(results),
        failures=[],
        server_state={},
        context=RoundContext(round=1, selected=(0, 1), num_clients=2),
    )
    # Assert: (0 + 1) / 2, not (0·1 + 1·3) / 4
    assert out.params["w"].item() == 0.5


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: p.stem)
def test_weights_replace_sample_counts_where_a_strategy_weights(path: Path) -> None:
    # Execute
    default = aggregate(path, lambda r: r)
    explicit = aggregate(path, lambda r: dataclasses.replace(r, weight=float(r.num_samples)))
    weighted = aggregate(path, lambda r: dataclasses.replace(r, weight=WEIGHTS[r.client]))
    as_counts = aggregate(
        path, lambda r: dataclasses.replace(r, num_samples=int(WEIGHTS[r.client]), weight=None)
    )
    # Assert: the sample count as weight is bitwise the default; other weights act as counts would, or
    # not at all
    assert same(default, explicit)
    if path.stem in WEIGHTING:
        assert same(weighted, as_counts) and not same(weighted, default)
    else:
        assert same(weighted, default)

"""FedAvg aggregation: sample-weighted mean, failures ignored, empty rounds keep the model."""

from collections.abc import Iterator

import torch

from fedsweep.failures import Failure
from fedsweep.strategies.base import (
    ClientMeta,
    ClientResult,
    ClientResults,
    ListResults,
    RoundContext,
)
from fedsweep.strategies.fedavg import FedAvg

GLOBAL = {"w": torch.tensor([0.0, 0.0]), "n": torch.tensor(4, dtype=torch.int64)}
CONTEXT = RoundContext(round=1, selected=(0, 1, 3, 5), num_clients=10)


def result(client: int, num_samples: int, w: list[float], n: int) -> ClientResult:
    params = {"w": torch.tensor(w), "n": torch.tensor(n, dtype=torch.int64)}
    return ClientResult(
        client=client,
        num_samples=num_samples,
        params=params,
        loss=0.0,
        epochs_done=1,
        epochs_planned=1,
        steps=1,
    )


def test_weights_are_sample_counts() -> None:
    # Prepare: (10·[1, 2] + 30·[5, 6]) / 40 = [4, 5]
    results = [result(0, 10, [1.0, 2.0], 6), result(3, 30, [5.0, 6.0], 10)]
    # Execute
    out = FedAvg().aggregate(
        global_params=GLOBAL, results=ListResults(results), failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    assert torch.equal(out.params["w"], torch.tensor([4.0, 5.0]))
    assert out.params["n"].item() == 9  # (60 + 300) / 40
    assert out.server_state == {}


class Counted(ClientResults):
    """Results that record each read: FedAvg must make one pass, one client at a time."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self._all = [result(client, 1, [float(client), 0.0], 4) for client in range(3)]

    @property
    def meta(self) -> list[ClientMeta]:
        return self._all

    def __iter__(self) -> Iterator[ClientResult]:
        for r in self._all:
            self.reads.append(r.client)
            yield r


def test_results_are_read_once_in_client_order() -> None:
    # Prepare
    results = Counted()
    # Execute
    out = FedAvg().aggregate(
        global_params=GLOBAL, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    assert results.reads == [0, 1, 2]
    assert torch.equal(out.params["w"], torch.tensor([1.0, 0.0]))


def test_empty_round_returns_global_params_unchanged() -> None:
    # Prepare
    failures = [Failure(client=1, kind="timeout", message="no answer")]
    state = {"c": torch.ones(2)}
    # Execute
    out = FedAvg().aggregate(
        global_params=GLOBAL, results=ListResults([]), failures=failures, server_state=state, context=CONTEXT
    )
    # Assert
    assert list(out.params) == list(GLOBAL)
    for key, value in GLOBAL.items():
        assert torch.equal(out.params[key], value) and out.params[key].dtype == value.dtype
    assert out.server_state is state


def test_clients_without_samples_do_not_move_the_model() -> None:
    # Execute
    out = FedAvg().aggregate(
        global_params=GLOBAL,
        results=ListResults([result(0, 0, [9.0, 9.0], 9)]),
        failures=[],
        server_state={},
        context=CONTEXT,
    )
    # Assert
    assert torch.equal(out.params["w"], GLOBAL["w"])


def test_failures_do_not_change_the_average() -> None:
    # Prepare
    results = [result(0, 2, [2.0, 2.0], 4)]
    failures = [Failure(client=5, kind="nan", message="loss is nan")]
    # Execute
    with_failures = FedAvg().aggregate(
        global_params=GLOBAL,
        results=ListResults(results),
        failures=failures,
        server_state={},
        context=CONTEXT,
    )
    without = FedAvg().aggregate(
        global_params=GLOBAL, results=ListResults(results), failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    assert torch.equal(with_failures.params["w"], without.params["w"])

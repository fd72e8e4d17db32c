"""FedAvgM: server momentum by hand; β = 0 and η = 1 is FedAvg."""

import pytest
import torch

from fedsweep.params import ParamError
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.strategies.fedavgm import FedAvgM

CONTEXT = RoundContext(round=1, selected=(0, 1), num_clients=2)


def results(*models: tuple[int, float]) -> ListResults:
    return ListResults(
        [
            ClientResult(
                client=c,
                num_samples=n,
                loss=0.0,
                steps=1,
                epochs_done=1,
                epochs_planned=1,
                params={"w": torch.tensor([w], dtype=torch.float64)},
            )
            for c, (n, w) in enumerate(models)
        ]
    )


def test_momentum_by_hand() -> None:
    # Prepare: β = 0.9, η = 1. Round 1: w = 0, clients (1 sample at 0, 3 at 4/3) average 1 -> v1 = -1, w1 = 1.
    # Round 2: clients average 1.5, Δ = 0.5 -> v2 = 0.9·(-1) - 0.5 = -1.4, w2 = 1 + 1.4 = 2.4.
    # Round 3 with η = 0.5 is checked separately below.
    strategy = FedAvgM(server_lr=1.0, momentum=0.9)
    w = {"w": torch.tensor([0.0], dtype=torch.float64)}
    state = strategy.init_server_state(w)
    # Execute
    one = strategy.aggregate(
        global_params=w,
        results=results((1, 0.0), (3, 4 / 3)),
        failures=[],
        server_state=state,
        context=CONTEXT,
    )
    two = strategy.aggregate(
        global_params=one.params,
        results=results((1, 1.5)),
        failures=[],
        server_state=one.server_state,
        context=CONTEXT,
    )
    # Assert
    assert one.params["w"].item() == pytest.approx(1.0) and one.server_state["v.w"].item() == pytest.approx(
        -1.0
    )
    assert two.params["w"].item() == pytest.approx(2.4) and two.server_state["v.w"].item() == pytest.approx(
        -1.4
    )


def test_server_lr_scales_the_velocity() -> None:
    # w = 0, v = -1 (held), clients average 0.5: v' = 0.9·(-1) - 0.5 = -1.4, w' = 0 - 0.5·(-1.4) = 0.7
    strategy = FedAvgM(server_lr=0.5, momentum=0.9)
    out = strategy.aggregate(
        global_params={"w": torch.tensor([0.0], dtype=torch.float64)},
        results=results((2, 0.5)),
        failures=[],
        server_state={"v.w": torch.tensor([-1.0], dtype=torch.float64)},
        context=CONTEXT,
    )
    assert out.params["w"].item() == pytest.approx(0.7)


def test_no_momentum_and_unit_lr_is_fedavg() -> None:
    # Prepare
    w = {"w": torch.tensor([0.25, -1.0])}
    gen = torch.Generator().manual_seed(0)
    res = ListResults(
        [
            ClientResult(
                client=c,
                num_samples=c + 1,
                loss=0.0,
                steps=1,
                epochs_done=1,
                epochs_planned=1,
                params={"w": torch.randn(2, generator=gen)},
            )
            for c in range(4)
        ]
    )
    # Execute
    m = FedAvgM(server_lr=1.0, momentum=0.0)
    out = m.aggregate(
        global_params=w, results=res, failures=[], server_state=m.init_server_state(w), context=CONTEXT
    )
    avg = FedAvg().aggregate(global_params=w, results=res, failures=[], server_state={}, context=CONTEXT)
    # Assert
    torch.testing.assert_close(out.params["w"], avg.params["w"], rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"server_lr": 0.0}, "server_lr"),
        ({"server_lr": -1.0}, "server_lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.5}, "momentum"),
    ],
)
def test_impossible_values_are_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(ParamError) as err:
        FedAvgM(**kwargs)
    assert err.value.field == field

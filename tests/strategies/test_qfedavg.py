"""q-FedAvg: the q-FFL step by hand, and q = 0 equals FedAvg's sample-weighted average."""

import pytest
import torch

from fedsweep.params import ParamError
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.strategies.qfedavg import QFedAvg

CONTEXT = RoundContext(round=1, selected=(0, 1, 2), num_clients=3)


def result(c: int, n: int, loss: float, params: dict[str, torch.Tensor]) -> ClientResult:
    return ClientResult(
        client=c, num_samples=n, loss=loss, steps=1, epochs_done=1, epochs_planned=1, params=params
    )


def test_q_zero_equals_fedavg() -> None:
    # Prepare: unequal samples and losses; an integer buffer
    gen = torch.Generator().manual_seed(1)
    glob = {"w": torch.randn(3, 2, generator=gen), "n": torch.tensor(4, dtype=torch.int64)}
    res = ListResults(
        [
            result(c, n, loss, {"w": torch.randn(3, 2, generator=gen), "n": torch.tensor(4 + c)})
            for c, (n, loss) in enumerate([(10, 2.3), (40, 0.1), (25, 1.0)])
        ]
    )
    # Execute
    q0 = QFedAvg(q=0.0, client_lr=0.05).aggregate(
        global_params=glob, results=res, failures=[], server_state={}, context=CONTEXT
    )
    avg = FedAvg().aggregate(global_params=glob, results=res, failures=[], server_state={}, context=CONTEXT)
    # Assert
    torch.testing.assert_close(q0.params["w"], avg.params["w"], rtol=0, atol=1e-6)
    assert q0.params["n"].item() == avg.params["n"].item()


def test_q_one_by_hand() -> None:
    # Prepare: w = 0, L = 1 / 0.1 = 10. Client A: w̄ = -0.1, F = 2 -> Δw = 1, Δ = 2, h = 1·1 + 10·2 = 21.
    # Client B: w̄ = -0.2, F = 1 -> Δw = 2, Δ = 2, h = 1·4 + 10·1 = 14. Equal samples: w' = -(2 + 2)/(21 + 14).
    glob = {"w": torch.tensor([0.0], dtype=torch.float64)}
    res = ListResults(
        [
            result(0, 5, 2.0, {"w": torch.tensor([-0.1], dtype=torch.float64)}),
            result(1, 5, 1.0, {"w": torch.tensor([-0.2], dtype=torch.float64)}),
        ]
    )
    # Execute
    out = QFedAvg(q=1.0, client_lr=0.1).aggregate(
        global_params=glob, results=res, failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    assert out.params["w"].item() == pytest.approx(-4 / 35, rel=1e-8)


def test_higher_loss_pulls_the_model_when_q_is_positive() -> None:
    # Client 0 (loss 3) wants +1, client 1 (loss 0.5) wants -1: with q > 0 the model moves towards client 0
    # (the step also shrinks as q grows, through h: only the direction is checked).
    glob = {"w": torch.tensor([0.0])}
    res = ListResults(
        [result(0, 1, 3.0, {"w": torch.tensor([1.0])}), result(1, 1, 0.5, {"w": torch.tensor([-1.0])})]
    )
    moved = [
        QFedAvg(q=q, client_lr=1.0)
        .aggregate(global_params=glob, results=res, failures=[], server_state={}, context=CONTEXT)
        .params["w"]
        .item()
        for q in (0.0, 1.0, 5.0)
    ]
    assert moved[0] == pytest.approx(0.0, abs=1e-7) and moved[1] > 0 and moved[2] > 0


@pytest.mark.parametrize(("kwargs", "field"), [({"q": -1.0}, "q"), ({"client_lr": 0.0}, "client_lr")])
def test_impossible_values_are_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(ParamError) as err:
        QFedAvg(**kwargs)
    assert err.value.field == field

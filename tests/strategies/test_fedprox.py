"""FedProx: the proximal term by hand, μ = 0 is FedAvg, and μ > 0 keeps clients near the global model."""

import pytest
import torch

from fedsweep.data.base import Split
from fedsweep.models.init import build_model
from fedsweep.models.mlp import MLP
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext, Strategy
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.strategies.fedprox import FedProx
from fedsweep.train import EpochOut, LocalConfig, train_epoch
from fedsweep.weights import state_of


def test_penalty_on_a_hand_computed_case() -> None:
    # Prepare: ‖[1, 2] − [0, 0]‖² + (3 − 1)² = 9, and μ/2 · 9 = 2.25 for μ = 0.5; buffers left out.
    w = {"a": torch.tensor([1.0, 2.0], requires_grad=True), "b": torch.tensor(3.0, requires_grad=True)}
    g = {"a": torch.tensor([0.0, 0.0]), "b": torch.tensor(1.0), "buffer": torch.tensor(100.0)}
    # Execute
    penalty = FedProx(mu=0.5).local_penalty(params=w, global_params=g, server_state={}, client_state={})
    penalty.backward()
    # Assert: value and gradient μ (w − w_global)
    assert penalty.item() == 2.25
    assert torch.equal(w["a"].grad, torch.tensor([0.5, 1.0]))
    assert w["b"].grad.item() == 1.0


def test_negative_mu_is_rejected() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="mu"):
        FedProx(mu=-0.1)


def toy_epoch(strategy: Strategy) -> tuple[EpochOut, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 5, generator=gen)
    data = Split(x=x, y=(x[:, 0] > x[:, 1]).long())
    model = build_model(MLP, input_shape=(5,), num_classes=2, generator_seed=0)
    global_params = state_of(model)
    out = train_epoch(
        model=model,
        data=data,
        indices=torch.arange(128),
        params=global_params,
        optimizer_state={},
        global_params=global_params,
        strategy=strategy,
        server_state={},
        client_state={},
        cfg=LocalConfig(lr=0.5, batch_size=16, momentum=0.9),
        generator=torch.Generator().manual_seed(1),
    )
    return out, global_params


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5


def test_mu_zero_trains_exactly_like_fedavg() -> None:
    # Execute
    prox, _ = toy_epoch(FedProx(mu=0.0))
    avg, _ = toy_epoch(FedAvg())
    # Assert
    assert prox.loss == avg.loss
    for key in avg.params:
        assert torch.equal(prox.params[key], avg.params[key])


def test_proximal_term_pulls_local_params_towards_global() -> None:
    # Execute
    free, global_params = toy_epoch(FedProx(mu=0.0))
    pulled, _ = toy_epoch(FedProx(mu=1.0))
    # Assert
    assert distance(pulled.params, global_params) < 0.9 * distance(free.params, global_params)


def test_aggregation_is_fedavg() -> None:
    # Prepare
    results = [
        ClientResult(
            client=c,
            num_samples=n,
            params={"w": torch.tensor(float(c))},
            loss=0.0,
            epochs_done=1,
            epochs_planned=1,
            steps=1,
        )
        for c, n in [(1, 3), (2, 1)]
    ]
    kwargs = dict(
        global_params={"w": torch.tensor(0.0)},
        failures=[],
        server_state={},
        context=RoundContext(round=1, selected=(1, 2), num_clients=2),
    )
    # Execute
    prox = FedProx(mu=1.0).aggregate(results=ListResults(results), **kwargs)
    avg = FedAvg().aggregate(results=ListResults(results), **kwargs)
    # Assert
    assert prox.params["w"].item() == avg.params["w"].item() == 1.25

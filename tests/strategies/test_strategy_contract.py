"""The strategy contract: per-client state, broadcast vs server state, results read lazily."""

import pytest
import torch

from fedsweep.data.base import Split
from fedsweep.models.init import build_model
from fedsweep.models.logreg import LogisticRegression
from fedsweep.strategies.base import ClientResult, ListResults, Strategy
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.train import LocalConfig, train_epoch
from fedsweep.weights import Params, state_of


class ControlVariates(FedAvg):
    """SCAFFOLD's shape: server c, client c_i, gradient correction g + c − c_i."""

    def __init__(self) -> None:
        self.calls = 0

    def init_client_state(self, params: Params) -> Params:
        return {k: torch.zeros_like(v) for k, v in params.items() if v.is_floating_point()}

    def correct_gradients(self, *, named_params, server_state, client_state) -> None:
        self.calls += 1
        for name, p in named_params.items():
            p.grad.add_(server_state[name] - client_state[name])


def test_gradient_correction_is_applied_at_every_step() -> None:
    # Prepare: c − c_i = +1 on every weight, against a model that would otherwise learn
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen)
    data = Split(x=x, y=(x[:, 0] > 0).long())
    model = build_model(LogisticRegression, input_shape=(3,), num_classes=2, generator_seed=0)
    params = state_of(model)
    strategy = ControlVariates()
    client = strategy.init_client_state(params)
    server = {k: torch.ones_like(v) for k, v in client.items()}
    plain = train_epoch(
        model=model,
        data=data,
        indices=torch.arange(40),
        params=params,
        optimizer_state={},
        global_params=params,
        strategy=FedAvg(),
        server_state={},
        client_state={},
        cfg=LocalConfig(lr=0.1, batch_size=10),
        generator=torch.Generator().manual_seed(0),
    )
    # Execute
    out = train_epoch(
        model=model,
        data=data,
        indices=torch.arange(40),
        params=params,
        optimizer_state={},
        global_params=params,
        strategy=strategy,
        server_state=server,
        client_state=client,
        cfg=LocalConfig(lr=0.1, batch_size=10),
        generator=torch.Generator().manual_seed(0),
    )
    # Assert: called once per step, and the correction pushed every weight below plain SGD's
    assert strategy.calls == out.steps == 4
    assert bool((out.params["linear.weight"] < plain.params["linear.weight"]).all())


def test_list_results_read_again_and_stack_per_tensor() -> None:
    # Prepare
    results = ListResults(
        [
            ClientResult(
                client=c,
                num_samples=1,
                loss=0.0,
                steps=1,
                epochs_done=1,
                epochs_planned=1,
                params={"w": torch.full((2,), float(c)), "b": torch.tensor(float(-c))},
            )
            for c in (2, 0, 1)
        ]
    )
    # Execute / Assert: client order, re-readable, one tensor stacked over clients
    assert [m.client for m in results.meta] == [0, 1, 2] and len(results) == 3
    assert [r.client for r in results] == [r.client for r in results] == [0, 1, 2]
    assert torch.equal(results.stack("w"), torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    assert torch.equal(results.stack("b"), torch.tensor([0.0, -1.0, -2.0]))


def test_base_defaults_keep_no_state_and_broadcast_nothing() -> None:
    strategy = FedAvg()
    params = {"w": torch.ones(2)}
    state = {"c": torch.zeros(1)}
    assert strategy.init_server_state(params) == {} and strategy.init_client_state(params) == {}
    assert strategy.broadcast({"m": torch.ones(1)}) == {}
    assert (
        strategy.local_penalty(params=params, global_params=params, server_state={}, client_state={}) is None
    )
    assert (
        strategy.finish_client(
            params=params, global_params=params, server_state={}, client_state=state, steps=1, lr=0.1
        )
        is state
    )
    with pytest.raises(TypeError):
        Strategy()  # aggregate is the one method every strategy must write

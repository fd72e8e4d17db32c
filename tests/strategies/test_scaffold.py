"""SCAFFOLD (fedsweep/strategies/scaffold.py): control variates after one and two rounds, by hand."""

import pytest
import torch

from fedsweep.config import ConfigError, validate
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.scaffold import Scaffold, client_control_variate

LR, K = 0.5, 2
B = {0: 2.0, 1: -4.0}  # client i's loss is (w − b_i)² / 2: its gradient is w − b_i


def local_training(strategy: Scaffold, x: dict, c: dict, c_i: dict, client: int) -> dict:
    """K steps of SGD from x with the strategy's correction; returns y_i."""
    w = torch.nn.Parameter(x["w"].clone())
    for _ in range(K):
        w.grad = (w.detach() - B[client]).clone()
        strategy.correct_gradients(
            named_params={"w": w}, server_state=strategy.broadcast(c), client_state=c_i
        )
        with torch.no_grad():
            w -= LR * w.grad
    return {"w": w.detach().clone()}


def play_round(strategy: Scaffold, x: dict, c: dict, states: dict, clients: list[int], num_clients: int):
    results = []
    for i in clients:
        y = local_training(strategy, x, c, states[i], i)
        new = strategy.finish_client(
            params=y,
            global_params=x,
            server_state=strategy.broadcast(c),
            client_state=states[i],
            steps=K,
            lr=LR,
        )
        results.append(
            ClientResult(
                client=i,
                num_samples=10 * (i + 1),
                loss=0.0,
                steps=K,
                epochs_done=1,
                epochs_planned=1,
                params=y,
                client_state=new,
                previous_client_state=states[i],
            )
        )
        states[i] = new
    out = strategy.aggregate(
        global_params=x,
        results=ListResults(results),
        failures=[],
        server_state=c,
        context=RoundContext(round=1, selected=tuple(clients), num_clients=num_clients),
    )
    return out.params, out.server_state


def test_control_variates_after_one_and_two_rounds() -> None:
    # Prepare: N = 2 clients, x = 0, c = c_i = 0
    strategy = Scaffold()
    x = {"w": torch.tensor([0.0])}
    c = strategy.init_server_state(x)
    states = {i: strategy.init_client_state(x) for i in (0, 1)}
    # Execute round 1, both clients. By hand:
    #   client 0: y = 0 − .5(0 − 2) = 1, y = 1 − .5(1 − 2) = 1.5;   c_0 = (0 − 1.5)/(2 · .5) = −1.5
    #   client 1: y = 0 − .5(0 + 4) = −2, y = −2 − .5(−2 + 4) = −3; c_1 = (0 + 3)/1 = 3
    #   x = 0 + mean(1.5, −3) = −0.75 (unweighted, although n = 10, 20); c = (−1.5 + 3)/2 = 0.75
    x, c = play_round(strategy, x, c, states, [0, 1], num_clients=2)
    assert states[0]["w"].item() == -1.5 and states[1]["w"].item() == 3.0
    assert x["w"].item() == -0.75 and c["w"].item() == 0.75
    # Execute round 2, client 0 only (|S|/N = 1/2). By hand, correction c − c_0 = 2.25:
    #   y = −.75 − .5(−.75 − 2 + 2.25) = −.5, y = −.5 − .5(−.5 − 2 + 2.25) = −.375
    #   c_0 = −1.5 − .75 + (−.75 + .375)/1 = −2.625;  x = −.75 + (−.375 + .75) = −.375
    #   c = .75 + (−2.625 + 1.5)/2 = .1875;  c_1 stays 3
    x, c = play_round(strategy, x, c, states, [0], num_clients=2)
    assert states[0]["w"].item() == -2.625 and states[1]["w"].item() == 3.0
    assert x["w"].item() == -0.375 and c["w"].item() == 0.1875


def test_server_lr_scales_the_model_step_not_the_control_variate() -> None:
    x, c = {"w": torch.tensor([1.0])}, {"w": torch.tensor([0.0])}
    result = ClientResult(
        client=0,
        num_samples=1,
        loss=0.0,
        steps=1,
        epochs_done=1,
        epochs_planned=1,
        params={"w": torch.tensor([3.0])},
        client_state={"w": torch.tensor([2.0])},
        previous_client_state={"w": torch.tensor([0.0])},
    )
    out = Scaffold(server_lr=0.5).aggregate(
        global_params=x,
        results=ListResults([result]),
        failures=[],
        server_state=c,
        context=RoundContext(round=1, selected=(0,), num_clients=4),
    )
    assert out.params["w"].item() == 2.0 and out.server_state["w"].item() == 0.5


def test_no_step_keeps_the_client_variate_and_an_empty_round_keeps_everything() -> None:
    c_i = {"w": torch.tensor([7.0])}
    assert client_control_variate(c_i=c_i, c={"w": torch.tensor([1.0])}, x=c_i, y=c_i, steps=0, lr=0.1) is c_i
    x, c = {"w": torch.tensor([1.0])}, {"w": torch.tensor([2.0])}
    out = Scaffold().aggregate(
        global_params=x,
        results=ListResults([]),
        failures=[],
        server_state=c,
        context=RoundContext(round=1, selected=(0,), num_clients=1),
    )
    assert torch.equal(out.params["w"], x["w"]) and out.server_state is c


def test_momentum_and_a_bad_server_lr_are_refused(cell_config) -> None:
    with pytest.raises(ConfigError, match=r"^strategy: SCAFFOLD needs momentum = 0"):
        validate(cell_config("strategy=scaffold", "momentum=0.9"))
    with pytest.raises(ConfigError, match=r"strategy.*server_lr must be > 0"):
        validate(cell_config("strategy=scaffold", "strategy.server_lr=-1"))

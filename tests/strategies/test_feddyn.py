"""FedDyn (fedsweep/strategies/feddyn.py): the gradient memory, the penalty and the server's h, by hand."""

import pytest
import torch

from fedsweep.config import ConfigError, validate
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.feddyn import FedDyn


def test_client_state_update() -> None:
    # ∇L_i^t = ∇L_i^{t−1} − α(θ_i − θ) = (1, −1) − .5 · (2, 4) = (0, −3)
    new = FedDyn(alpha=0.5).finish_client(
        params={"w": torch.tensor([2.0, 4.0])},
        global_params={"w": torch.zeros(2)},
        server_state={},
        client_state={"w": torch.tensor([1.0, -1.0])},
        steps=3,
        lr=0.1,
    )
    assert new["w"].tolist() == [0.0, -3.0]


def test_penalty_gradient_is_minus_memory_plus_proximal() -> None:
    # d/dθ [−⟨g, θ⟩ + α/2 ‖θ − θ⁰‖²] = −g + α(θ − θ⁰) = −(1, −1) + .5 · (1, 1) = (−.5, 1.5)
    theta = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    penalty = FedDyn(alpha=0.5).local_penalty(
        params={"w": theta},
        global_params={"w": torch.zeros(2)},
        server_state={},
        client_state={"w": torch.tensor([1.0, -1.0])},
    )
    penalty.backward()
    assert theta.grad.tolist() == [-0.5, 1.5]


def test_server_state_and_model() -> None:
    # Prepare: m = 4 clients, α = .5, h = (.5, 0), θ = 0; clients 0 and 2 report (2, 4) and (−2, 0)
    results = [
        ClientResult(
            client=c,
            num_samples=n,
            loss=0.0,
            steps=1,
            epochs_done=1,
            epochs_planned=1,
            params={"w": torch.tensor(w)},
        )
        for c, n, w in ((0, 1, [2.0, 4.0]), (2, 9, [-2.0, 0.0]))
    ]
    # Execute
    out = FedDyn(alpha=0.5).aggregate(
        global_params={"w": torch.zeros(2)},
        results=ListResults(results),
        failures=[],
        server_state={"w": torch.tensor([0.5, 0.0])},
        context=RoundContext(round=3, selected=(0, 2), num_clients=4),
    )
    # Assert, by hand: h = (.5, 0) − .5 · (0, 4)/4 = (.5, −.5); θ = mean (0, 2) − h/.5 = (−1, 3)
    assert out.server_state["w"].tolist() == [0.5, -0.5]
    assert out.params["w"].tolist() == [-1.0, 3.0]


def test_an_empty_round_keeps_model_and_h() -> None:
    h = {"w": torch.tensor([1.0])}
    out = FedDyn().aggregate(
        global_params={"w": torch.zeros(1)},
        results=ListResults([]),
        failures=[],
        server_state=h,
        context=RoundContext(round=1, selected=(0,), num_clients=1),
    )
    assert out.params["w"].tolist() == [0.0] and out.server_state is h


def test_alpha_must_be_positive(cell_config) -> None:
    with pytest.raises(ConfigError, match=r"strategy.*alpha must be > 0"):
        validate(cell_config("strategy=feddyn", "strategy.alpha=0"))

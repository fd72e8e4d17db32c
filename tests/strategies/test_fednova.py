"""FedNova (fedsweep/strategies/fednova.py): normalisation by unequal local steps, by hand."""

import pytest
import torch

from fedsweep.config import ConfigError, validate
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.strategies.fednova import FedNova, normalised_step, normaliser


def result(client: int, n: int, steps: int, w: list[float]) -> ClientResult:
    return ClientResult(
        client=client,
        num_samples=n,
        loss=0.0,
        steps=steps,
        epochs_done=1,
        epochs_planned=1,
        params={"w": torch.tensor(w), "count": torch.tensor(client * 10)},
    )


def aggregate(strategy, results: list[ClientResult]) -> dict:
    x = {"w": torch.tensor([0.0, 0.0]), "count": torch.tensor(0)}
    return strategy.aggregate(
        global_params=x,
        results=ListResults(results),
        failures=[],
        server_state={},
        context=RoundContext(round=1, selected=(0, 1), num_clients=2),
    ).params


def test_unequal_local_steps_are_normalised() -> None:
    # Prepare: A (n = 1, τ = 1) moved to (1, 2); B (n = 3, τ = 4) moved to (4, −4); x = 0
    results = [result(0, 1, 1, [1.0, 2.0]), result(1, 3, 4, [4.0, -4.0])]
    # Execute
    params = aggregate(FedNova(), results)
    # Assert, by hand: p = (1/4, 3/4); d_A = (−1, −2), d_B = (−4, 4)/4 = (−1, 1)
    #   τ_eff = 1/4 · 1 + 3/4 · 4 = 3.25;  Σ p d = (−1, 0.25);  x = −3.25 · (−1, 0.25) = (3.25, −0.8125)
    assert params["w"].tolist() == [3.25, -0.8125]
    assert params["count"].item() == 8  # integers: the sample-weighted mean, 7.5 rounded half to even
    # FedAvg would give (3.25, −2.5): B's extra steps would pull the second coordinate to its optimum
    assert aggregate(FedAvg(), results)["w"].tolist() == [3.25, -2.5]


def test_equal_steps_give_fedavg_and_the_reference_agrees() -> None:
    results = [result(0, 2, 5, [1.0, -3.0]), result(1, 6, 5, [0.5, 2.0])]
    nova, avg = aggregate(FedNova(), results), aggregate(FedAvg(), results)
    torch.testing.assert_close(nova["w"], avg["w"])
    reference = normalised_step(
        x={"w": torch.zeros(2)},
        updates=[(2, 5.0, {"w": torch.tensor([1.0, -3.0])}), (6, 5.0, {"w": torch.tensor([0.5, 2.0])})],
    )
    torch.testing.assert_close(nova["w"], reference["w"])


def test_momentum_normaliser() -> None:
    # Σ_{k=1..3} (1 − .5^k)/(1 − .5) = (.5 + .75 + .875)/.5 = 4.25
    assert normaliser(3, 0.5) == 4.25 and normaliser(7) == 7.0
    assert normaliser(1, 0.9) == pytest.approx(1.0)


def test_clients_without_steps_and_empty_rounds_leave_the_model() -> None:
    assert aggregate(FedNova(), [result(0, 4, 0, [9.0, 9.0])])["w"].tolist() == [0.0, 0.0]
    assert aggregate(FedNova(), [])["w"].tolist() == [0.0, 0.0]
    assert aggregate(FedNova(), [result(0, 4, 0, [9.0, 9.0]), result(1, 1, 2, [2.0, 2.0])])["w"].tolist() == [
        2.0,
        2.0,
    ]


def test_the_normaliser_follows_the_momentum_knob(cell_config) -> None:
    settings = validate(cell_config("strategy=fednova", "momentum=0.5"))
    assert settings.nodes["strategy"]["local_momentum"] == 0.5
    with pytest.raises(ConfigError, match=r"strategy.local_momentum must equal the top-level momentum"):
        validate(cell_config("strategy=fednova", "momentum=0.5", "strategy.local_momentum=0.0"))

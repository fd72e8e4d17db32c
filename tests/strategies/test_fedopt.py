"""FedAdagrad, FedAdam, FedYogi after three rounds on a two-parameter example equal Algorithm 2 of
Reddi et al. 2021 computed by hand (plain Python floats), plus bias correction, state handling and bounds."""

import math

import pytest
import torch

from fedsweep.params import ParamError
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedadagrad import FedAdagrad
from fedsweep.strategies.fedadam import FedAdam
from fedsweep.strategies.fedopt import FedOpt
from fedsweep.strategies.fedyogi import FedYogi

X0 = [1.0, -2.0]
# Three rounds, two clients each: (num_samples, client params as an offset from that round's global model)
ROUNDS = [
    [(1, [0.4, -0.2]), (3, [0.0, 0.2])],
    [(2, [-0.3, 0.1]), (2, [0.1, 0.3])],
    [(1, [0.5, 0.5]), (1, [-0.1, 0.1])],
]
ETA, B1, B2, TAU = 0.1, 0.9, 0.99, 1e-3


def by_hand(kind: str, *, bias_correction: bool = False) -> list[float]:
    """Algorithm 2, coordinate by coordinate, in Python floats."""
    x, m, v = list(X0), [0.0, 0.0], [0.0, 0.0]
    for t, clients in enumerate(ROUNDS, start=1):
        total = sum(n for n, _ in clients)
        delta = [sum(n * off[i] for n, off in clients) / total for i in range(2)]  # Δ = Σ n (x_k − x) / Σ n
        eta = ETA * math.sqrt(1 - B2**t) / (1 - B1**t) if bias_correction else ETA
        for i in range(2):
            d2 = delta[i] ** 2
            m[i] = B1 * m[i] + (1 - B1) * delta[i]
            if kind == "adagrad":
                v[i] = v[i] + d2
            elif kind == "adam":
                v[i] = B2 * v[i] + (1 - B2) * d2
            else:
                v[i] = v[i] - (1 - B2) * d2 * (1.0 if v[i] - d2 > 0 else -1.0 if v[i] - d2 < 0 else 0.0)
            x[i] = x[i] + eta * m[i] / (math.sqrt(v[i]) + TAU)
    return x


def run(strategy: FedOpt, rounds: list = ROUNDS) -> tuple[torch.Tensor, dict]:
    x = {"w": torch.tensor(X0, dtype=torch.float64), "n": torch.tensor(5, dtype=torch.int64)}
    state = strategy.init_server_state(x)
    for t, clients in enumerate(rounds, start=1):
        results = ListResults(
            [
                ClientResult(
                    client=c,
                    num_samples=n,
                    loss=0.0,
                    steps=1,
                    epochs_done=1,
                    epochs_planned=1,
                    params={"w": x["w"] + torch.tensor(off, dtype=torch.float64), "n": x["n"] + 2},
                )
                for c, (n, off) in enumerate(clients)
            ]
        )
        out = strategy.aggregate(
            global_params=x,
            results=results,
            failures=[],
            server_state=state,
            context=RoundContext(round=t, selected=(0, 1), num_clients=2),
        )
        x, state = out.params, out.server_state
    return x, state


@pytest.mark.parametrize(
    ("kind", "strategy"),
    [
        ("adagrad", FedAdagrad(eta=ETA, beta1=B1, tau=TAU)),
        ("adam", FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU)),
        ("yogi", FedYogi(eta=ETA, beta1=B1, beta2=B2, tau=TAU)),
    ],
)
def test_three_rounds_equal_algorithm_2_by_hand(kind: str, strategy: FedOpt) -> None:
    # Execute
    x, state = run(strategy)
    # Assert
    torch.testing.assert_close(x["w"], torch.tensor(by_hand(kind), dtype=torch.float64), rtol=0, atol=1e-12)
    assert state["step"].item() == 3
    assert x["n"].item() == 11 and x["n"].dtype == torch.int64  # FedAvg's mean for integer buffers: 5 + 3·2
    assert set(state) == {"step", "m.w", "v.w"} and strategy.broadcast(state) == {}


def test_first_adam_step_by_hand() -> None:
    # Prepare: Δ = (1·0.4 + 3·0)/4 = 0.1 on w[0]; m = 0.01, v = 0.01·0.01 = 1e-4, √v = 0.01
    # Execute
    x, _ = run(FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU), ROUNDS[:1])
    # Assert: x = 1 + 0.1 · 0.01 / (0.01 + 0.001)
    assert x["w"][0].item() == pytest.approx(1.0 + 0.1 * 0.01 / 0.011, abs=1e-12)


def test_bias_correction_is_an_explicit_option() -> None:
    # Execute
    corrected, _ = run(FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU, bias_correction=True))
    plain, _ = run(FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU))
    # Assert
    torch.testing.assert_close(
        corrected["w"],
        torch.tensor(by_hand("adam", bias_correction=True), dtype=torch.float64),
        rtol=0,
        atol=1e-12,
    )
    assert not torch.allclose(corrected["w"], plain["w"])


def test_moments_start_at_zero_or_at_v_init() -> None:
    x = {"w": torch.ones(2), "n": torch.tensor(1)}
    state = FedYogi().init_server_state(x)
    assert torch.equal(state["m.w"], torch.zeros(2)) and torch.equal(state["v.w"], torch.zeros(2))
    assert "m.n" not in state and state["step"].item() == 0
    assert torch.equal(FedAdam(v_init=1e-6).init_server_state(x)["v.w"], torch.full((2,), 1e-6))


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (FedAdam, {"eta": 0.0}, "eta"),
        (FedAdam, {"eta": -0.1}, "eta"),
        (FedYogi, {"beta1": 1.0}, "beta1"),
        (FedYogi, {"beta2": -0.1}, "beta2"),
        (FedAdagrad, {"tau": 0.0}, "tau"),
        (FedAdam, {"v_init": -1.0}, "v_init"),
    ],
)
def test_impossible_values_are_refused_naming_the_field(cls: type, kwargs: dict, field: str) -> None:
    with pytest.raises(ParamError) as err:
        cls(**kwargs)
    assert err.value.field == field

"""FedAdam's bias correction with t counted as Flower counts it (t = round + 1), against a hand
computation, and the option's bounds."""

import math

import pytest
import torch
from test_fedopt import B1, B2, ETA, ROUNDS, TAU, X0, run

from fedsweep.params import ParamError
from fedsweep.strategies.fedadam import FedAdam


def flower_by_hand(rounds: list) -> list[float]:
    """Flower's FedAdam.aggregate_fit, in floats: η_t = η √(1 − β₂^(r+1)) / (1 − β₁^(r+1)), r the
    1-based round, over fedsweep's sample-weighted pseudo-gradient."""
    x, m, v = list(X0), [0.0, 0.0], [0.0, 0.0]
    for r, clients in enumerate(rounds, start=1):
        total = sum(n for n, _ in clients)
        delta = [sum(n * off[i] for n, off in clients) / total for i in range(2)]
        eta = ETA * math.sqrt(1 - B2 ** (r + 1)) / (1 - B1 ** (r + 1))
        for i in range(2):
            m[i] = B1 * m[i] + (1 - B1) * delta[i]
            v[i] = B2 * v[i] + (1 - B2) * delta[i] ** 2
            x[i] = x[i] + eta * m[i] / (math.sqrt(v[i]) + TAU)
    return x


def test_flowers_step_by_hand() -> None:
    # Execute
    flower, _ = run(FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU, bias_correction=True, step_count="flower"))
    server, _ = run(FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU, bias_correction=True))
    # Assert
    torch.testing.assert_close(
        flower["w"], torch.tensor(flower_by_hand(ROUNDS), dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert not torch.allclose(flower["w"], server["w"])


def test_the_first_step_is_corrected_as_a_second() -> None:
    # Prepare: round 1, Δ = 0.1 on w[0]: m = 0.01, √v = 0.01; η_1 = η √(1 − β₂²) / (1 − β₁²)
    eta_1 = ETA * math.sqrt(1 - B2**2) / (1 - B1**2)
    # Execute
    x, _ = run(
        FedAdam(eta=ETA, beta1=B1, beta2=B2, tau=TAU, bias_correction=True, step_count="flower"), ROUNDS[:1]
    )
    # Assert
    assert x["w"][0].item() == pytest.approx(1.0 + eta_1 * 0.01 / 0.011, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"step_count": "epoch", "bias_correction": True}, "must be server or flower (got 'epoch')"),
        ({"step_count": "flower"}, "must be server unless bias_correction=true"),
    ],
)
def test_bad_step_counts_name_the_key(kwargs: dict, reason: str) -> None:
    with pytest.raises(ParamError) as err:
        FedAdam(**kwargs)
    assert err.value.field == "step_count" and reason in err.value.reason

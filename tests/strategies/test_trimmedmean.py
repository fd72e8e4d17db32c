"""Trimmed mean against a direct computation, and its bound on beta."""

import pytest
import torch

from fedsweep.params import ParamError
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.trimmedmean import TrimmedMean

CONTEXT = RoundContext(round=1, selected=tuple(range(5)), num_clients=5)


def result(c: int, w: torch.Tensor) -> ClientResult:
    return ClientResult(
        client=c, num_samples=c + 1, loss=0.0, steps=1, epochs_done=1, epochs_planned=1, params={"w": w}
    )


def test_trimmed_mean_equals_a_direct_computation() -> None:
    # Prepare: 5 clients, beta = 0.2 -> drop floor(0.2 * 5) = 1 value at each end per coordinate
    values = [[1.0, -7.0], [50.0, 0.0], [2.0, 3.0], [-40.0, 1.0], [3.0, 2.0]]
    results = ListResults([result(c, torch.tensor(v)) for c, v in enumerate(values)])
    # Execute
    out = TrimmedMean(beta=0.2).aggregate(
        global_params={"w": torch.zeros(2)}, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Assert: column 0 sorted (-40, 1, 2, 3, 50) -> (1 + 2 + 3) / 3;
    # column 1 (-7, 0, 1, 2, 3) -> (0 + 1 + 2) / 3
    assert torch.allclose(out.params["w"], torch.tensor([2.0, 1.0]))


def test_random_case_against_sorting_by_hand() -> None:
    # Prepare
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(10, 4, 3, generator=gen)
    results = ListResults([result(c, values[c]) for c in range(10)])
    # Execute: beta = 0.25 -> floor(2.5) = 2 per side
    out = TrimmedMean(beta=0.25).aggregate(
        global_params={"w": torch.zeros(4, 3)}, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    expected = torch.empty(4, 3, dtype=torch.float64)
    for i in range(4):
        for j in range(3):
            column = sorted(float(values[c, i, j]) for c in range(10))
            expected[i, j] = sum(column[2:8]) / 6
    torch.testing.assert_close(out.params["w"], expected.float(), rtol=0, atol=1e-6)


def test_beta_zero_is_the_plain_mean() -> None:
    results = ListResults([result(c, torch.tensor([float(c)])) for c in range(4)])
    out = TrimmedMean(beta=0.0).aggregate(
        global_params={"w": torch.zeros(1)}, results=results, failures=[], server_state={}, context=CONTEXT
    )
    assert out.params["w"].item() == 1.5


@pytest.mark.parametrize("beta", [0.5, 0.7, -0.1])
def test_impossible_beta_is_refused_naming_the_field(beta: float) -> None:
    with pytest.raises(ParamError) as err:
        TrimmedMean(beta=beta)
    assert err.value.field == "beta"

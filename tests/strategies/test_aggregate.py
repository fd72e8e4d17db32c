"""Aggregation maths: weighted means on hand-computed cases, float64 sums, integer buffers."""

import pytest
import torch

from fedsweep.strategies.aggregate import RunningMean
from fedsweep.weights import Params


def weighted_average(pairs: list[tuple[float, Params]]) -> Params:
    """RunningMean over `(weight, params)` pairs, with the first dict's dtypes."""
    acc = RunningMean()
    for weight, params in pairs:
        acc.add(params, weight)
    return acc.result(pairs[0][1])


def test_two_clients_weights_one_and_three() -> None:
    # Prepare: (1·1 + 3·5) / 4 = 4
    pairs = [(1.0, {"w": torch.tensor(1.0)}), (3.0, {"w": torch.tensor(5.0)})]
    # Execute
    out = weighted_average(pairs)
    # Assert
    assert out["w"].item() == 4.0
    assert out["w"].dtype == torch.float32


def test_running_mean_equals_batch_mean() -> None:
    # Prepare
    gen = torch.Generator().manual_seed(0)
    clients = [{"a": torch.randn(3, 4, generator=gen), "b": torch.randn(5, generator=gen)} for _ in range(7)]
    weights = [float(w) for w in torch.randint(1, 100, (7,), generator=gen)]
    acc = RunningMean()
    # Execute
    for weight, params in zip(weights, clients):
        acc.add(params, weight)
    out = acc.result(clients[0])
    # Assert
    w = torch.tensor(weights, dtype=torch.float64)
    for key in ("a", "b"):
        stacked = torch.stack([c[key].double() for c in clients])
        expected = (stacked * w.view(-1, *[1] * (stacked.dim() - 1))).sum(0) / w.sum()
        torch.testing.assert_close(out[key], expected.float(), rtol=0, atol=1e-7)
    assert acc.total_weight == sum(weights)


def test_sums_accumulate_in_float64() -> None:
    # Prepare: in float32, 2**24 + 1 rounds back to 2**24, so a float32 sum would lose both ones.
    pairs = [(1.0, {"w": torch.tensor(value)}) for value in (float(2**24), 1.0, 1.0)]
    # Execute
    out = weighted_average(pairs)
    # Assert: (2**24 + 2) / 3 = 5592406 exactly, where float32 sums would give 5592405.5
    assert out["w"].item() == 5592406.0


def test_integer_buffers_get_the_rounded_weighted_mean() -> None:
    # Prepare
    a = {"num_batches_tracked": torch.tensor(10, dtype=torch.int64)}
    b = {"num_batches_tracked": torch.tensor(20, dtype=torch.int64)}
    # Execute
    equal = weighted_average([(1.0, a), (1.0, b)])
    skewed = weighted_average([(1.0, a), (2.0, b)])  # 50 / 3 = 16.67
    # Assert
    assert equal["num_batches_tracked"].item() == 15
    assert skewed["num_batches_tracked"].item() == 17
    assert skewed["num_batches_tracked"].dtype == torch.int64


def test_dtypes_and_key_order_follow_like() -> None:
    # Prepare
    params = {"z": torch.ones(2, dtype=torch.float16), "a": torch.ones(2, dtype=torch.float64)}
    acc = RunningMean()
    acc.add(params, 2.0)
    # Execute
    out = acc.result(params)
    # Assert
    assert list(out) == ["z", "a"]
    assert out["z"].dtype == torch.float16 and out["a"].dtype == torch.float64
    assert torch.equal(out["z"], params["z"])


def test_inputs_are_not_modified() -> None:
    # Prepare
    first = {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    # Execute
    weighted_average([(2.0, first), (1.0, {"w": torch.tensor([4.0, 4.0], dtype=torch.float64)})])
    # Assert
    assert torch.equal(first["w"], torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_bad_weights_are_rejected(weight: float) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="weight"):
        RunningMean().add({"w": torch.tensor(1.0)}, weight)


def test_mismatched_keys_and_shapes_are_rejected() -> None:
    # Prepare
    acc = RunningMean()
    acc.add({"w": torch.zeros(2)}, 1.0)
    # Execute / Assert
    with pytest.raises(KeyError, match="missing"):
        acc.add({"v": torch.zeros(2)}, 1.0)
    with pytest.raises(ValueError, match="shape"):
        acc.add({"w": torch.zeros(3)}, 1.0)


def test_an_undefined_mean_raises() -> None:
    # Prepare
    zero = RunningMean()
    zero.add({"w": torch.tensor(1.0)}, 0.0)
    # Execute / Assert
    with pytest.raises(ValueError, match="no positive weight"):
        zero.result({"w": torch.tensor(0.0)})

"""Quantity skew (lognormal, power law) and label-quantity skew: hand-computed cases, coverage, skew."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsweep.data.base import Partition, PartitionError
from fedsweep.data.partition.label_quantity import LabelQuantity, held_classes
from fedsweep.data.partition.lognormal import LogNormal
from fedsweep.data.partition.powerlaw import PowerLaw
from fedsweep.data.partition.quantity import sizes_from_weights
from fedsweep.rng import generator


def split(partition: Partition, labels: torch.Tensor, num_clients: int, seed: int = 0) -> list[torch.Tensor]:
    return partition.split(
        labels=labels, num_clients=num_clients, natural=None, generator=generator(seed, "p")
    )


def labels_for(n: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, num_classes, (n,), generator=generator(seed, "labels"))


def test_sizes_follow_the_weights_by_largest_remainder() -> None:
    # Prepare: n = 20, 3 clients, minimum 2 → R = 14 shared 1:2:4 → 2, 4, 8 exactly.
    exact = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    # 14 · (1, 1, 1)/3 = 4.67 each → floors 4, 4, 4 and the 2 left go to the lowest indices (ties).
    even = torch.ones(3, dtype=torch.float64)
    # 10 · (0.15, 0.25, 0.6) = 1.5, 2.5, 6.0 → floors 1, 2, 6; one left, largest remainder 0.5 tie → client 0.
    mixed = torch.tensor([0.15, 0.25, 0.6], dtype=torch.float64)
    # Execute
    a = sizes_from_weights(exact, num_samples=20, min_samples=2)
    b = sizes_from_weights(even, num_samples=20, min_samples=2)
    c = sizes_from_weights(mixed, num_samples=10, min_samples=0)
    # Assert
    assert a.tolist() == [4, 6, 10]
    assert b.tolist() == [7, 7, 6]
    assert c.tolist() == [2, 2, 6]


def test_powerlaw_weights_are_the_inverse_transform_of_the_same_uniforms() -> None:
    # Prepare: the same generator state gives the uniforms the partition draws.
    u = torch.rand(5, dtype=torch.float64, generator=generator(7, "w"))
    # Execute
    w = PowerLaw(exponent=3.0).weights(num_clients=5, generator=generator(7, "w"))
    # Assert: w ∝ (1 - u)^(-1/(a-1)) = (1 - u)^-0.5, and every w ≥ w_min (1) before normalising
    expected = (1 - u).pow(-0.5)
    assert torch.allclose(w, expected / expected.max())


def test_lognormal_weights_are_exp_sigma_z() -> None:
    # Prepare
    z = torch.randn(5, dtype=torch.float64, generator=generator(7, "w"))
    # Execute
    w = LogNormal(sigma=0.5).weights(num_clients=5, generator=generator(7, "w"))
    # Assert
    expected = torch.exp(0.5 * z)
    assert torch.allclose(w, expected / expected.max())


quantity = st.one_of(
    st.builds(LogNormal, sigma=st.floats(0.0, 3.0), min_samples=st.integers(1, 4)),
    st.builds(PowerLaw, exponent=st.floats(1.05, 6.0), min_samples=st.integers(1, 4)),
)


@settings(max_examples=60, deadline=None)
@given(partition=quantity, num_clients=st.integers(1, 40), extra=st.integers(0, 500), seed=st.integers(0, 99))
def test_quantity_partitions_cover_every_sample_once_with_the_minimum(
    partition: LogNormal | PowerLaw, num_clients: int, extra: int, seed: int
) -> None:
    # Prepare
    n = num_clients * partition.min_samples + extra
    # Execute
    parts = split(partition, labels_for(n, 10, seed), num_clients, seed)
    # Assert
    assert len(parts) == num_clients
    assert all(p.dtype == torch.int64 and torch.equal(p, torch.sort(p).values) for p in parts)
    assert torch.equal(torch.sort(torch.cat(list(parts))).values, torch.arange(n))
    assert min(p.numel() for p in parts) >= partition.min_samples


def test_sizes_spread_as_the_parameters_say_and_labels_stay_iid() -> None:
    # Prepare
    labels = labels_for(20000, 10)
    # Execute
    sizes = {
        name: torch.tensor([p.numel() for p in split(partition, labels, 100)], dtype=torch.float64)
        for name, partition in {
            "lognormal0": LogNormal(sigma=0.0),
            "lognormal0.3": LogNormal(sigma=0.3),
            "lognormal1.5": LogNormal(sigma=1.5),
            "powerlaw1.5": PowerLaw(exponent=1.5),
        }.items()
    }
    biggest = split(PowerLaw(exponent=1.5), labels, 100)
    # Assert: σ = 0 is the IID sizes; the coefficient of variation grows with σ; σ = 0.3 gives CV ≈ 0.3
    assert sorted(sizes["lognormal0"].tolist()) == [200.0] * 100
    cv = {name: float(s.std() / s.mean()) for name, s in sizes.items()}
    assert 0.2 < cv["lognormal0.3"] < 0.4 < cv["lognormal1.5"]
    assert sizes["powerlaw1.5"].max() > 10 * sizes["powerlaw1.5"].median()
    big = max(biggest, key=len)  # the largest client's label histogram is the global one (i.i.d.)
    share = torch.bincount(labels[big], minlength=10).double() / big.numel()
    assert (share - torch.bincount(labels, minlength=10).double() / labels.numel()).abs().max() < 0.03


def test_held_classes_start_at_i_mod_k_and_hold_exactly_k() -> None:
    # Execute
    held = held_classes(num_clients=25, num_classes=10, k=3, generator=generator(0, "p"))
    # Assert
    assert held.sum(dim=1).tolist() == [3] * 25
    assert all(held[i, i % 10] for i in range(25))


def test_label_quantity_hand_computed_two_classes_four_clients() -> None:
    # Prepare: classes 0 and 1 with 5 and 3 samples; k = 2 = K, so every client holds both and each
    # class is array_split among the 4 clients: class 0 → 2, 1, 1, 1; class 1 → 1, 1, 1, 0.
    labels = torch.tensor([0, 1, 0, 0, 1, 0, 1, 0])
    # Execute
    parts = split(LabelQuantity(classes_per_client=2), labels, 4)
    # Assert
    assert [int((labels[p] == 0).sum()) for p in parts] == [2, 1, 1, 1]
    assert [int((labels[p] == 1).sum()) for p in parts] == [1, 1, 1, 0]
    assert torch.equal(torch.sort(torch.cat(list(parts))).values, torch.arange(8))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_label_quantity_gives_each_client_exactly_k_classes(k: int) -> None:
    # Prepare
    labels = labels_for(6000, 10)
    # Execute
    parts = split(LabelQuantity(classes_per_client=k), labels, 30)
    again = split(LabelQuantity(classes_per_client=k), labels, 30)
    # Assert
    assert [torch.unique(labels[p]).numel() for p in parts] == [k] * 30
    assert torch.equal(torch.sort(torch.cat(list(parts))).values, torch.arange(6000))
    assert all(torch.equal(p, q) for p, q in zip(parts, again, strict=True))


def test_label_quantity_leaves_out_classes_nobody_holds() -> None:
    # Prepare: 3 clients, 10 classes, 1 class each → classes 0, 1, 2 only.
    labels = labels_for(1000, 10)
    # Execute
    parts = split(LabelQuantity(classes_per_client=1), labels, 3)
    # Assert
    assert [torch.unique(labels[p]).tolist() for p in parts] == [[0], [1], [2]]
    assert sum(p.numel() for p in parts) == int((labels < 3).sum())


@pytest.mark.parametrize(
    "partition, labels, clients, message",
    [
        (
            LabelQuantity(classes_per_client=3),
            torch.tensor([0, 1, 0, 1]),
            2,
            "classes_per_client=3 but the training set has 2",
        ),
        (LabelQuantity(classes_per_client=1), torch.tensor([0, 1, 1, 1, 1]), 4, "client 2 got no samples"),
        (LogNormal(min_samples=3), torch.zeros(5, dtype=torch.int64), 2, "lower num_clients"),
        (PowerLaw(min_samples=3), torch.zeros(5, dtype=torch.int64), 2, "lower num_clients"),
    ],
)
def test_impossible_splits_are_partition_errors(partition, labels, clients, message) -> None:
    # Execute / Assert
    with pytest.raises(PartitionError, match=message):
        split(partition, labels, clients)


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: LogNormal(sigma=-0.1), "partition.sigma must be >= 0"),
        (lambda: LogNormal(min_samples=0), "partition.min_samples must be >= 1"),
        (lambda: PowerLaw(exponent=1.0), "partition.exponent must be > 1, got 1.0"),
        (lambda: LabelQuantity(classes_per_client=0), "partition.classes_per_client must be >= 1"),
    ],
)
def test_bad_arguments_name_the_key(make, key: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=key):
        make()

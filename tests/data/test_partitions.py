"""Partitions: exact coverage (property-tested), determinism, skew, shards' labels, natural errors."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsweep.data.base import Partition, PartitionError
from fedsweep.data.partition.dirichlet import Dirichlet
from fedsweep.data.partition.iid import IID
from fedsweep.data.partition.natural import Natural
from fedsweep.data.partition.shards import Shards
from fedsweep.rng import generator


def split(
    partition: Partition,
    labels: torch.Tensor,
    num_clients: int,
    seed: int = 0,
    natural: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    return partition.split(
        labels=labels, num_clients=num_clients, natural=natural, generator=generator(seed, "partition")
    )


def assert_exact_cover(parts: list[torch.Tensor], n: int, num_clients: int) -> None:
    assert len(parts) == num_clients
    for p in parts:
        assert p.dtype == torch.int64 and torch.equal(p, torch.sort(p).values)
    assert torch.equal(torch.sort(torch.cat(list(parts))).values, torch.arange(n))


def labels_for(n: int, num_classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, num_classes, (n,), generator=generator(seed, "labels"))


partitions = st.one_of(
    st.just(IID()),
    st.builds(Dirichlet, alpha=st.floats(0.01, 100.0), min_samples=st.integers(0, 3)),
    st.builds(Shards, labels_per_client=st.integers(1, 4)),
)


@settings(max_examples=80, deadline=None)
@given(
    partition=partitions,
    num_clients=st.integers(1, 30),
    num_classes=st.integers(1, 12),
    extra=st.integers(0, 400),
    seed=st.integers(0, 1000),
)
def test_every_sample_lands_on_exactly_one_client(
    partition: Partition, num_clients: int, num_classes: int, extra: int, seed: int
) -> None:
    # Prepare: enough samples for every partition's minimum (k shards or min_samples each).
    n = num_clients * 4 + extra
    labels = labels_for(n, num_classes, seed)
    # Execute
    parts = split(partition, labels, num_clients, seed)
    # Assert
    assert_exact_cover(parts, n, num_clients)
    if isinstance(partition, Dirichlet):
        assert min(len(p) for p in parts) >= partition.min_samples
    if isinstance(partition, IID | Shards):
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= (
            1 if isinstance(partition, IID) else partition.labels_per_client
        )


@pytest.mark.parametrize("partition", [IID(), Dirichlet(alpha=0.3), Shards(labels_per_client=2)])
def test_same_generator_seed_same_split_other_seed_different(partition: Partition) -> None:
    # Prepare
    labels = labels_for(1000, 10, 0)
    # Execute
    a, b, c = (split(partition, labels, 10, seed) for seed in (0, 0, 1))
    # Assert
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


def mean_label_skew(parts: list[torch.Tensor], labels: torch.Tensor) -> float:
    """Mean total-variation distance between each client's label histogram and the global one."""
    overall = torch.bincount(labels, minlength=10).float() / len(labels)
    tv = [(torch.bincount(labels[p], minlength=10).float() / len(p) - overall).abs().sum() / 2 for p in parts]
    return float(torch.stack(tv).mean())


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    # Prepare
    labels = labels_for(5000, 10, 0)
    # Execute
    skews = [mean_label_skew(split(Dirichlet(alpha=a), labels, 20), labels) for a in (100.0, 1.0, 0.1)]
    # Assert
    assert skews[0] < skews[1] < skews[2]
    assert skews[0] < 0.1 and skews[2] > 0.6


def test_dirichlet_tops_up_starved_clients_deterministically() -> None:
    # Prepare: tiny α leaves most clients empty before the fix-up.
    labels = labels_for(300, 3, 0)
    # Execute
    parts = split(Dirichlet(alpha=0.01, min_samples=5), labels, 40)
    again = split(Dirichlet(alpha=0.01, min_samples=5), labels, 40)
    # Assert
    assert min(len(p) for p in parts) >= 5
    assert_exact_cover(parts, 300, 40)
    assert all(torch.equal(p, q) for p, q in zip(parts, again, strict=True))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_shards_give_at_most_k_labels_when_classes_divide_evenly(k: int) -> None:
    # Prepare: 10 classes × 60 samples, 20 clients → 20k shards that never straddle two labels.
    labels = torch.arange(10).repeat_interleave(60)[torch.randperm(600, generator=generator(0, "p"))]
    # Execute
    parts = split(Shards(labels_per_client=k), labels, 20)
    # Assert
    assert all(torch.unique(labels[p]).numel() <= k for p in parts)
    assert_exact_cover(parts, 600, 20)


def test_iid_parts_are_near_equal_and_mixed() -> None:
    # Prepare
    labels = labels_for(1003, 10, 0)
    # Execute
    parts = split(IID(), labels, 10)
    # Assert
    assert sorted(len(p) for p in parts) == [100] * 7 + [101] * 3
    assert mean_label_skew(parts, labels) < 0.15


def test_natural_returns_the_datasets_split() -> None:
    # Prepare
    natural = [torch.tensor([3, 0]), torch.tensor([1]), torch.tensor([4, 2])]
    # Execute
    parts = split(Natural(), torch.zeros(5, dtype=torch.int64), 3, natural=natural)
    # Assert
    assert [p.tolist() for p in parts] == [[0, 3], [1], [2, 4]]


def test_natural_refuses_datasets_without_one() -> None:
    # Execute / Assert
    message = "dataset has no natural split; use partition=iid|dirichlet|shards"
    with pytest.raises(PartitionError, match=re.escape(message)):
        split(Natural(), torch.zeros(10, dtype=torch.int64), 2, natural=None)


def test_natural_refuses_a_different_number_of_clients() -> None:
    # Prepare
    natural = [torch.tensor([0, 1]), torch.tensor([2])]
    # Execute / Assert
    with pytest.raises(PartitionError, match="2 natural clients but num_clients=5"):
        split(Natural(), torch.zeros(3, dtype=torch.int64), 5, natural=natural)


def test_natural_refuses_a_split_that_loses_samples() -> None:
    # Execute / Assert
    with pytest.raises(PartitionError, match="exactly once"):
        natural = [torch.tensor([0]), torch.tensor([0, 1])]
        split(Natural(), torch.zeros(4, dtype=torch.int64), 2, natural=natural)


@pytest.mark.parametrize("partition", [IID(), Dirichlet(min_samples=2), Shards(labels_per_client=2)])
def test_too_few_samples_is_a_partition_error(partition: Partition) -> None:
    # Execute / Assert
    with pytest.raises(PartitionError, match="lower num_clients"):
        split(partition, torch.zeros(3, dtype=torch.int64), 4)


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: Dirichlet(alpha=-1), "partition.alpha must be > 0, got -1"),
        (lambda: Dirichlet(alpha=0), "partition.alpha"),
        (lambda: Dirichlet(min_samples=-1), "partition.min_samples"),
        (lambda: Shards(labels_per_client=0), "partition.labels_per_client must be >= 1, got 0"),
    ],
)
def test_bad_arguments_name_the_key(make, key: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=key):
        make()


@pytest.mark.parametrize("n, num_clients", [(1003, 10), (5000, 333), (7, 7), (100, 1)])
def test_iid_is_the_sorted_tensor_split_of_one_permutation(n: int, num_clients: int) -> None:
    # Prepare: the definition (and the implementation before the one-sort version): existing cells'
    # clients, hence their results and hashes, must not change.
    perm = torch.randperm(n, generator=generator(3, "partition"))
    expected = [torch.sort(p).values for p in torch.tensor_split(perm, num_clients)]
    # Execute
    parts = split(IID(), torch.zeros(n, dtype=torch.int64), num_clients, seed=3)
    # Assert
    assert all(torch.equal(p, q) for p, q in zip(parts, expected, strict=True))

"""ClientIndex: the compact form of a partition (one index tensor plus offsets)."""

import pytest
import torch

from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition.iid import IID
from fedsweep.rng import generator


def test_by_owner_groups_ascending_indices_per_client_and_leaves_out_minus_one() -> None:
    # Prepare: samples 0..6 owned by clients 1, 0, 1, -1, 2, 0, 1 (sample 3 left out)
    owner = torch.tensor([1, 0, 1, -1, 2, 0, 1])
    # Execute
    clients = ClientIndex.by_owner(owner, num_clients=4)
    # Assert: by hand
    assert len(clients) == 4
    assert [c.tolist() for c in clients] == [[1, 5], [0, 2, 6], [4], []]
    assert clients[1].tolist() == [0, 2, 6] and clients[-1].tolist() == []
    assert clients.sizes.tolist() == [2, 3, 1, 0]
    assert clients.offsets.tolist() == [0, 2, 5, 6, 6]


def test_from_parts_round_trips_and_out_of_range_raises() -> None:
    # Prepare
    parts = [torch.tensor([3, 4]), torch.tensor([], dtype=torch.int64), torch.tensor([0])]
    # Execute
    clients = ClientIndex.from_parts(parts)
    # Assert
    assert all(torch.equal(a, b) for a, b in zip(clients, parts, strict=True))
    assert clients[torch.tensor(2)].tolist() == [0]
    with pytest.raises(IndexError):
        clients[3]


def test_a_million_clients_cost_bytes_per_client_not_objects() -> None:
    # Prepare: 2 samples per client
    labels = torch.zeros(2_000_000, dtype=torch.int64)
    # Execute
    clients = IID().split(labels=labels, num_clients=1_000_000, natural=None, generator=generator(0, "p"))
    # Assert: two tensors, 8 bytes per sample and per client; every client holds 2 samples
    held = clients.order.numel() * 8 + clients.offsets.numel() * 8
    assert held == 2_000_000 * 8 + 1_000_001 * 8
    assert bool((clients.sizes == 2).all()) and clients[999_999].numel() == 2

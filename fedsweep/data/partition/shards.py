"""McMahan's pathological non-IID partition: label-sorted shards, k per client.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017), https://arxiv.org/abs/1602.05629, §3: sort the data by label, divide it into
num_clients × k shards, and give each client k shards chosen at random. Most clients then see at
most k labels (a shard straddles two labels only where class sizes do not divide evenly).
"""

import torch

from fedsweep.data.base import Partition
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition._common import check_clients, sorted_parts


class Shards(Partition):
    """k label-sorted shards per client, assigned by a seeded permutation."""

    def __init__(self, *, labels_per_client: int = 2) -> None:
        if labels_per_client < 1:
            raise ValueError(f"partition.labels_per_client must be >= 1, got {labels_per_client}")
        self.labels_per_client = labels_per_client

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """Sort by label, cut num_clients × k near-equal shards, deal k random shards to each client."""
        k = self.labels_per_client
        n = labels.shape[0]
        check_clients(num_samples=n, num_clients=num_clients, per_client=k)
        # Shuffle first so that the stable sort leaves a random order within each label.
        perm = torch.randperm(n, generator=generator)
        by_label = perm[torch.sort(labels[perm], stable=True).indices]
        shards = torch.tensor_split(by_label, num_clients * k)
        order = torch.randperm(num_clients * k, generator=generator).tolist()
        return sorted_parts(
            [torch.cat([shards[s] for s in order[i * k : (i + 1) * k]]) for i in range(num_clients)]
        )

"""I.i.d. partition: a seeded random permutation cut into near-equal parts.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017), https://arxiv.org/abs/1602.05629 (the IID setting of §3).
"""

import torch

from fedsweep.data.base import Partition
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition._common import check_clients, owner_of_permutation, parts_by_owner


class IID(Partition):
    """Uniformly random near-equal parts (sizes differ by at most one)."""

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """Permute all indices with `generator` and cut into `num_clients` parts."""
        n = labels.shape[0]
        check_clients(num_samples=n, num_clients=num_clients)
        perm = torch.randperm(n, generator=generator)
        # Consecutive blocks of the permutation, the first n % num_clients one longer (tensor_split's
        # cut), sorted all at once: a million clients take seconds (benchmarks/partition_scale.py).
        sizes = torch.full((num_clients,), n // num_clients, dtype=torch.int64)
        sizes[: n % num_clients] += 1
        return parts_by_owner(owner_of_permutation(perm, sizes), num_clients=num_clients)

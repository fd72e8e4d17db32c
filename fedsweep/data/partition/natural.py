"""The dataset's own per-device split (LEAF-style data such as Synthetic(α, β)).

Caldas et al., "LEAF: A Benchmark for Federated Settings" (2018), https://arxiv.org/abs/1812.01097.
"""

import torch

from fedsweep.data.base import Partition, PartitionError
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition._common import sorted_parts


class Natural(Partition):
    """One client per natural device, exactly as the dataset returned them."""

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """The dataset's `natural` split, checked against `num_clients` and for exact coverage."""
        if natural is None:
            raise PartitionError("dataset has no natural split; use partition=iid|dirichlet|shards")
        if len(natural) != num_clients:
            raise PartitionError(
                f"dataset has {len(natural)} natural clients but num_clients={num_clients}; "
                "set num_clients to match"
            )
        parts = sorted_parts(natural)
        # A dataset bug here would silently drop or double-count samples, so check coverage.
        covered = torch.sort(parts.order).values
        if not torch.equal(covered, torch.arange(labels.shape[0], dtype=torch.int64)):
            raise PartitionError("dataset's natural split does not cover every training sample exactly once")
        return parts

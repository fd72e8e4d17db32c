"""I.i.d. partition: a seeded random permutation cut into near-equal parts.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017), https://arxiv.org/abs/1602.05629 (the IID setting of §3).
"""

import torch

from fedsweep.data.base import Partition
from fedsweep.data.partition._common import check_clients, sorted_parts


class IID(Partition):
    """Uniformly random near-equal parts (sizes differ by at most one)."""

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> list[torch.Tensor]:
        """Permute all indices with `generator` and cut into `num_clients` parts."""
        n = labels.shape[0]
        check_clients(num_samples=n, num_clients=num_clients)
        perm = torch.randperm(n, generator=generator)
        return sorted_parts(list(torch.tensor_split(perm, num_clients)))

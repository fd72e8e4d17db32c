"""Label-quantity skew: every client holds samples of exactly k classes ("#C = k").

Li, Diao, Chen & He, "Federated Learning on Non-IID Data Silos: An Experimental Study" (ICDE 2022,
NIID-Bench, https://arxiv.org/abs/2102.02079), §3.1.1 "quantity-based label imbalance", reference
code `partition.py` (`noniid-#label{k}`):

1. client i holds class i mod K (K = number of classes) and k - 1 other classes drawn uniformly
   without replacement from the remaining K - 1;
2. each class's samples, in a random order, are cut into as many near-equal parts as clients hold
   it (np.array_split: the first parts one longer), handed to those clients in client order.

Step 1 is vectorised: each client's k - 1 extra classes are the top k - 1 of K - 1 uniform scores,
the same distribution as the reference's draw-until-new loop (a uniform random subset). Where this
differs from the reference:
- a class that no client holds (possible only when num_clients < K) crashes the reference
  (array_split into 0 parts); here its samples are left out of every client, the one case where
  this partition does not cover the whole training set (data/base.py allows it when said);
- a client that ends with no sample at all (a class split among more holders than it has samples)
  is refused with a PartitionError instead of training on nothing.
"""

import torch

from fedsweep.data.base import Partition, PartitionError
from fedsweep.data.clients import ClientIndex
from fedsweep.data.partition._common import check_clients, parts_by_owner


def held_classes(*, num_clients: int, num_classes: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """Bool [num_clients, num_classes]: client i holds class i mod K and k - 1 random others."""
    first = torch.arange(num_clients) % num_classes
    scores = torch.rand(num_clients, num_classes, generator=generator)
    scores[torch.arange(num_clients), first] = 2.0  # above every uniform score: always chosen
    chosen = torch.topk(scores, k, dim=1).indices
    held = torch.zeros(num_clients, num_classes, dtype=torch.bool)
    held[torch.arange(num_clients).unsqueeze(1), chosen] = True
    return held


class LabelQuantity(Partition):
    """Exactly `classes_per_client` classes per client, each class shared equally by its holders."""

    def __init__(self, *, classes_per_client: int = 2) -> None:
        if classes_per_client < 1:
            raise ValueError(f"partition.classes_per_client must be >= 1, got {classes_per_client}")
        self.classes_per_client = classes_per_client

    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """NIID-Bench's #C=k split; sorted int64 parts."""
        check_clients(num_samples=labels.shape[0], num_clients=num_clients)
        classes = torch.unique(labels)
        k = self.classes_per_client
        if k > classes.numel():
            raise PartitionError(
                f"partition.classes_per_client={k} but the training set has {classes.numel()} classes"
            )
        held = held_classes(num_clients=num_clients, num_classes=classes.numel(), k=k, generator=generator)
        owner = torch.full_like(labels, -1, dtype=torch.int64)
        for c, label in enumerate(classes.tolist()):
            idx = torch.nonzero(labels == label).flatten()
            idx = idx[torch.randperm(idx.numel(), generator=generator)]
            holders = torch.nonzero(held[:, c]).flatten()
            if holders.numel() == 0:
                continue  # nobody holds this class (num_clients < K): its samples are left out
            q, r = divmod(idx.numel(), holders.numel())
            sizes = torch.full((holders.numel(),), q, dtype=torch.int64)
            sizes[:r] += 1
            owner[idx] = torch.repeat_interleave(holders, sizes)
        parts = parts_by_owner(owner, num_clients=num_clients)
        empty = next(iter(torch.nonzero(parts.sizes == 0).flatten().tolist()), None)
        if empty is not None:
            raise PartitionError(
                f"client {empty} got no samples: {num_clients} clients share too few samples of some "
                f"class; lower num_clients or raise partition.classes_per_client"
            )
        return parts

"""Helpers shared by the partitions: argument checks and the final sorted-index form."""

import torch

from fedsweep.data.base import PartitionError
from fedsweep.data.clients import ClientIndex


def check_clients(*, num_samples: int, num_clients: int, per_client: int = 1) -> None:
    """Refuse a split that cannot give every client `per_client` samples."""
    if num_clients < 1:
        raise PartitionError(f"num_clients must be >= 1, got {num_clients}")
    if num_samples < num_clients * per_client:
        raise PartitionError(
            f"{num_samples} training samples cannot give {num_clients} clients "
            f"{per_client} sample(s) each; lower num_clients"
        )


def sorted_parts(parts: list[torch.Tensor]) -> ClientIndex:
    """Each part as a sorted int64 tensor, in one `ClientIndex`, as the contract requires."""
    return ClientIndex.from_parts([torch.sort(p.to(torch.int64)).values for p in parts])


def parts_by_owner(owner: torch.Tensor, *, num_clients: int) -> ClientIndex:
    """Client k's part is the sorted indices i with owner[i] == k (owner -1: the sample is left out).

    One stable sort of the whole owner vector instead of a sort per client, kept as one index tensor
    plus offsets: a million clients cost one O(n log n) sort and 8 bytes each, not a million views.
    """
    return ClientIndex.by_owner(owner, num_clients=num_clients)


def owner_of_permutation(perm: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """owner[perm[j]] = the client whose block of `sizes` (in client order) holds position j."""
    owner = torch.empty_like(perm)
    owner[perm] = torch.repeat_interleave(torch.arange(sizes.numel(), dtype=torch.int64), sizes)
    return owner


def seed_from(generator: torch.Generator) -> int:
    """A seed for a numpy Generator, drawn from (and advancing) the torch generator."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())

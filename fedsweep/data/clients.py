"""Clients as one index tensor plus offsets: what a partition returns (fedsweep/data/base.py).

A million clients as a Python list of a million index tensors cost ~6 s and ~560 MB of tensor
objects before anything trains (benchmarks/million_clients.py). `ClientIndex` holds the same
information in two tensors: `order`, every kept sample index grouped by client (client 0's first,
each client's ascending), and `offsets`, where each client's group starts (CSR form, as a sparse
matrix's row pointers). Client c is the view `order[offsets[c]:offsets[c + 1]]`, made when asked
for, so the cost is 8 bytes per sample plus 8 bytes per client, and building it is one stable sort.

It is a `Sequence[Tensor]`: `len(clients)`, `clients[c]` and iteration behave as the list did and
give bitwise the same tensors, so code that reads one client at a time does not change. Code that
needs every client at once reads `sizes` (one tensor) instead of iterating.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class ClientIndex(Sequence[torch.Tensor]):
    """Client c's sorted int64 sample indices are `order[offsets[c]:offsets[c + 1]]`."""

    order: torch.Tensor  # int64 [kept samples]: grouped by client, ascending within a client
    offsets: torch.Tensor  # int64 [num_clients + 1]: offsets[0] == 0, offsets[-1] == len(order)

    def __post_init__(self) -> None:
        if self.order.dtype != torch.int64 or self.offsets.dtype != torch.int64 or self.offsets.dim() != 1:
            raise ValueError("ClientIndex: order and offsets must be int64, offsets one-dimensional")
        if (
            self.offsets.numel() < 1
            or int(self.offsets[0]) != 0
            or int(self.offsets[-1]) != self.order.numel()
        ):
            raise ValueError("ClientIndex: offsets must start at 0 and end at len(order)")

    @classmethod
    def from_parts(cls, parts: Sequence[torch.Tensor]) -> "ClientIndex":
        """The index of a list of per-client index tensors, kept as given (one copy, one cat)."""
        sizes = torch.tensor([p.numel() for p in parts], dtype=torch.int64)
        order = (
            torch.cat([p.to(torch.int64).flatten() for p in parts])
            if parts
            else torch.zeros(0, dtype=torch.int64)
        )
        return cls(order=order, offsets=offsets_of(sizes))

    @classmethod
    def by_owner(cls, owner: torch.Tensor, *, num_clients: int) -> "ClientIndex":
        """Client k holds the indices i with owner[i] == k, ascending (owner -1: left out)."""
        kept = torch.nonzero(owner >= 0).flatten()
        order = kept[torch.sort(owner[kept], stable=True).indices]  # stable: indices stay ascending
        return cls(order=order, offsets=offsets_of(torch.bincount(owner[kept], minlength=num_clients)))

    @property
    def sizes(self) -> torch.Tensor:
        """int64 [num_clients]: each client's number of samples."""
        return self.offsets[1:] - self.offsets[:-1]

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    def __getitem__(self, client: int) -> torch.Tensor:  # type: ignore[override]
        n = len(self)
        if isinstance(client, bool) or not isinstance(client, int):
            client = int(client)  # a 0-d tensor or numpy integer; slices are not supported
        if not -n <= client < n:
            raise IndexError(f"client {client} out of range for {n} clients")
        client %= n
        start, end = self.offsets[client : client + 2].tolist()
        return self.order[start:end]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(torch.split(self.order, self.sizes.tolist()))


def offsets_of(sizes: torch.Tensor) -> torch.Tensor:
    """int64 [len(sizes) + 1]: 0 followed by the running sum of `sizes`."""
    return torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(sizes.to(torch.int64), 0)])

"""Clustered sampling's buckets: m distributions over clients, one client drawn from each.

Fraboni, Vidal, Kameni, Lorenzi, "Clustered Sampling: Low-Variance and Improved Representativity
for Clients Selection in Federated Learning", ICML 2021 (https://arxiv.org/abs/2105.05883),
Section 3: a round draws one client from each of m distributions r_1..r_m over the clients with

    Σ_i r_{k,i} = 1 for every k        and        Σ_k r_{k,i} = m · p_i for every client i      (Eq. 5-6)

(p_i = n_i / Σ_j n_j, its data share), and aggregates the m draws with weight 1/m each: then the
aggregate is unbiased (Proposition 1), and any client with p_i >= 1/m is surely selected. Algorithms 1
and 2 differ only in how they group clients into the r_k; this module holds what they share.

**Exact arithmetic.** A client's mass is q_i = m · n_i (an integer) and every bucket holds
C = Σ_j n_j, so Σ_i q_i = m · C and r_{k,i} = (mass of i in bucket k) / C, without rounding (the
authors' code scales by 10^10 and rounds for the same reason).

**Layout.** Bucket k holds its own group of clients (`own`, total mass <= C: Algorithm 2's kept
clusters; nothing for Algorithm 1), then the next slice of one shared `filler` sequence, filled in
order, bucket 0 first, until the bucket holds C, as the authors' code does (`get_clusters_with_alg1`,
`get_clusters_with_alg2`): a client whose mass crosses a bucket's end continues in the next bucket.
Drawing from bucket k is one integer t_k uniform in [0, C) and a binary search in the cumulative
masses, so a round's draws cost O(m log n) after O(n) to lay the buckets out: the m × n matrix r is
never built (`distributions` builds it, for tests and for reading).
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class Buckets:
    """m buckets of capacity C: each bucket's own clients, then its slice of the filler sequence."""

    capacity: int  # C
    own_clients: torch.Tensor  # int64 [a]: clients with mass of their own in one bucket, by bucket
    own_masses: torch.Tensor  # int64 [a]
    own_bucket: torch.Tensor  # int64 [a]: non-decreasing
    filler_clients: torch.Tensor  # int64 [b]
    filler_masses: torch.Tensor  # int64 [b]
    m: int

    def __post_init__(self) -> None:
        per_bucket = self._own_per_bucket()
        if bool((per_bucket > self.capacity).any()):
            raise ValueError("clustered sampling: a bucket's own clients exceed its capacity")
        total = int(self.own_masses.sum()) + int(self.filler_masses.sum())
        if total != self.m * self.capacity:
            raise ValueError(f"clustered sampling: masses sum to {total}, not m·C = {self.m * self.capacity}")

    def _own_per_bucket(self) -> torch.Tensor:
        """int64 [m]: mass of each bucket's own clients."""
        out = torch.zeros(self.m, dtype=torch.int64)
        return out.index_add_(0, self.own_bucket, self.own_masses)

    def _filler_starts(self) -> torch.Tensor:
        """int64 [m]: where each bucket's slice begins in the filler's cumulative mass."""
        free = self.capacity - self._own_per_bucket()
        return torch.cumsum(free, 0) - free

    def draw(self, generator: torch.Generator) -> list[int]:
        """One client from each bucket (m ids, bucket order, repeats possible)."""
        if self.m == 0:
            return []
        t = torch.randint(0, self.capacity, (self.m,), generator=generator, dtype=torch.int64)
        own = self._own_per_bucket()
        own_cum = torch.cumsum(self.own_masses, 0)
        own_pos = (torch.cumsum(own, 0) - own) + t  # position in the own sequence, if t < own mass
        fill_pos = self._filler_starts() + (t - own)
        in_own = t < own
        out = torch.empty(self.m, dtype=torch.int64)
        if bool(in_own.any()):
            out[in_own] = self.own_clients[torch.searchsorted(own_cum, own_pos[in_own], right=True)]
        if bool((~in_own).any()):
            fill_cum = torch.cumsum(self.filler_masses, 0)
            out[~in_own] = self.filler_clients[torch.searchsorted(fill_cum, fill_pos[~in_own], right=True)]
        return out.tolist()

    def distributions(self, num_clients: int) -> torch.Tensor:
        """float64 [m, num_clients]: r_{k,i}, each row summing to 1 (O(m·n): for tests and reading)."""
        r = torch.zeros(self.m, num_clients, dtype=torch.float64)
        r.index_put_((self.own_bucket, self.own_clients), self.own_masses.double(), accumulate=True)
        cum = torch.cumsum(self.filler_masses, 0)
        lo_i, hi_i = cum - self.filler_masses, cum  # client intervals in the filler
        lo_k = self._filler_starts()
        hi_k = lo_k + self.capacity - self._own_per_bucket()
        overlap = torch.minimum(hi_k[:, None], hi_i[None, :]) - torch.maximum(lo_k[:, None], lo_i[None, :])
        overlap = overlap.clamp_min(0)
        for k in range(self.m):
            r[k].index_add_(0, self.filler_clients, overlap[k].double())
        return r / self.capacity


def by_size(clients: torch.Tensor, num_samples: torch.Tensor) -> torch.Tensor:
    """`clients` by decreasing sample count, ties by increasing id (a stable order)."""
    order = torch.argsort(clients, stable=True)
    clients = clients[order]
    return clients[torch.argsort(num_samples[clients], descending=True, stable=True)]


def multiplicity(draws: list[int]) -> tuple[list[int], dict[int, float]]:
    """(the distinct clients drawn, sorted; {client: times drawn}): the aggregation weights, since
    each of the m draws counts 1/m (Fraboni et al., Eq. 4)."""
    counts: dict[int, float] = {}
    for client in draws:
        counts[client] = counts.get(client, 0.0) + 1.0
    return sorted(counts), {c: counts[c] for c in sorted(counts)}

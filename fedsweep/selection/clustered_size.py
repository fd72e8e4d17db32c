"""Clustered sampling by sample size: Algorithm 1 of Fraboni, Vidal, Kameni, Lorenzi, "Clustered
Sampling: Low-Variance and Improved Representativity for Clients Selection in Federated Learning",
ICML 2021 (https://arxiv.org/abs/2105.05883).

The available clients, by decreasing sample count, fill m = k buckets of capacity 1/m each with
their masses m · p_i in turn (a client crossing a bucket's end continues in the next), so
Σ_i r_{k,i} = 1 and Σ_k r_{k,i} = m · p_i (Eq. 5-6); one client is drawn from each bucket and each draw
is aggregated with weight 1/m (Eq. 4). Compared with sampling m clients with replacement in
proportion to p_i ("MD sampling"), the inclusion probabilities are the same, a client with
p_i >= 1/m is always selected, and the aggregate's variance is no larger (Theorem 1). The maths is
in fedsweep/selection/buckets.py.

Where implementations differ, and what we chose:
- The authors' code (github.com/Accenture/Labs-Federated-Learning, branch clustered_sampling,
  `py_func/clustering.py::get_clusters_with_alg1`) computes the buckets once over all clients
  (weights scaled by 10^10 and rounded) and sorts sizes with numpy's unstable argsort. We rebuild
  them each round over the clients the faults leave available (p_i renormalised over those), with
  exact integer masses (m · n_i against a capacity of Σ n_j) and ties broken by client id.
- They draw each bucket with `numpy.random.choice` (global state); we draw one integer per bucket
  from the round's seeded generator.

Cost per round: O(n log n) for the sort and O(m log n) for the draws, over the n available clients;
no state.
"""

import torch

from fedsweep.selection.base import Population, Selection, Selector
from fedsweep.selection.buckets import Buckets, by_size, multiplicity
from fedsweep.selection.draw import check_round


def size_buckets(clients: torch.Tensor, num_samples: torch.Tensor, m: int) -> Buckets:
    """Algorithm 1's buckets over `clients` (int64 ids into `num_samples`), m of them."""
    order = by_size(clients, num_samples)
    sizes = num_samples[order].to(torch.int64)
    empty = torch.zeros(0, dtype=torch.int64)
    return Buckets(
        capacity=int(sizes.sum()),
        own_clients=empty,
        own_masses=empty,
        own_bucket=empty,
        filler_clients=order,
        filler_masses=sizes * m,
        m=m,
    )


class ClusteredSize(Selector):
    """Up to k distinct clients from k draws (one per bucket); `Selection.weights` is how many times
    each was drawn (aggregation by 1/m per draw, not by sample count)."""

    def __init__(self) -> None:
        super().__init__()

    def select(
        self,
        *,
        round: int,
        available: torch.Tensor,
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
        population: Population,
        probes: dict[int, float] | None = None,
    ) -> Selection:
        """k draws, one from each of Algorithm 1's buckets over the available clients."""
        check_round(available, k, "ClusteredSize")
        clients = available
        if k == 0 or not clients.numel() or int(population.num_samples[clients].sum()) == 0:
            return Selection(clients=[])
        chosen, weights = multiplicity(size_buckets(clients, population.num_samples, k).draw(generator))
        return Selection(clients=chosen, weights=weights)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

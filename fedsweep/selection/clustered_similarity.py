"""Clustered sampling by similarity of the clients' last updates: Algorithm 2 of Fraboni, Vidal,
Kameni, Lorenzi, "Clustered Sampling: Low-Variance and Improved Representativity for Clients
Selection in Federated Learning", ICML 2021 (https://arxiv.org/abs/2105.05883).

Each round: a hierarchical clustering (Ward) of the clients' last updates ("representative
gradients"); the tree is cut into the largest subtrees whose total data share is at most 1/m; the m
heaviest of these clusters each get a bucket of their own, and the other clusters' clients fill the
buckets' free capacity in order, as Algorithm 1 does (fedsweep/selection/buckets.py). One client is
drawn from each bucket and each draw is aggregated with weight 1/m, so Σ_k r_{k,i} = m · p_i holds
(Eq. 5-6) and the aggregate stays unbiased, while similar clients share a bucket and so rarely
take part together.

Where implementations differ, and what we chose (the authors' code: github.com/Accenture/
Labs-Federated-Learning, branch clustered_sampling, `py_func/clustering.py`, `py_func/FedProx.py`):
- **Representation.** They keep each client's whole update (θ_i − θ_global, zeros until it first
  trains) and compare clients by `sim_type`: "cosine" (the arccos of the cosine similarity, the
  paper's experiments), "L2" (squared) or "L1". We keep a D-dimensional count sketch of each update
  (fedsweep/selection/sketch.py, `sketch_dim`, default 128) and compare them by `arccos` (sketches
  scaled to unit length, whose squared Euclidean distance 2 − 2 cos θ grows with the angle) or `l2`.
  L1 has no Ward geometry and is left out.
- **Clustering.** They pass the N × N similarity matrix to scipy's `linkage(·, "ward")`, which reads
  its rows as N-dimensional observations: each client is clustered by its profile of distances to
  all clients, at O(N³) time. We run Ward on the (normalised) sketches themselves
  (fedsweep/selection/ward.py, nearest-neighbour chain).
- **Clients never trained.** Their zero updates make them all alike in the authors' code. Here only
  clients with a sketch are clustered; the others go to the fillers, by decreasing size (Algorithm 1).
  Round 1 (no sketch yet) is Algorithm 1.
- **Fill order.** They shuffle each small cluster's clients with numpy's global state; we keep
  clusters in increasing weight and clients in id order (no draw: the inclusion probabilities are
  the same). Buckets and shares are rebuilt over the clients the faults leave available.

- **Large populations.** Their clustering is O(N³) over all clients. Past `max_clustered` (M,
  default 1,000) available clients with a sketch, we cluster a seeded uniform sample of M of them
  (drawn from the round's generator) and let the others fill the buckets' free capacity as clients
  without a sketch do (by decreasing size, Algorithm 1). Every bucket still holds exactly 1/m of
  the data, so the inclusion probabilities stay m · p_i and the aggregate unbiased (Eq. 5-6); what
  the sample costs is representativity: only the sampled clients are kept apart from their look-
  alikes in that round (a different sample each round). At most M clients with a sketch: nothing is
  drawn, and the buckets are exactly Algorithm 2's.

Cost per round, with n = min(M, available clients with a sketch): O(n² · D) time to compare them and
O(n²) for the tree, with an n × n float64 matrix (8 MB at n = 1,000), plus O(N log N) for the
fillers (measured on one CPU thread of a loaded 2-core machine, m = 10, D = 128: 90 ms a round at
100 clients, 0.9 s at 1,000; Algorithm 1 takes 2 ms at 100 and 13 ms at 10,000; at 10,000 and
1,000,000 clients see benchmarks/selection_cost.py). State: `sketch`, float32
[num_clients, D], the last sketch of each client (zeros until it trains), and `seen`, int64
[num_clients], the round of that sketch (0: never). At D = 128 the sketches take 512 bytes per
client: 51 KB at 100 clients, 5.1 MB at 10,000, 512 MB at 1,000,000 (checkpointed every round; a
smaller `sketch_dim` scales it down).
"""

from typing import Literal

import torch

from fedsweep.selection.base import ClientFeedback, Population, Selection, Selector
from fedsweep.selection.buckets import Buckets, by_size, multiplicity
from fedsweep.selection.draw import at_most, check_round
from fedsweep.selection.ward import cut_by_mass, ward_tree


def similarity_buckets(
    clients: torch.Tensor,
    num_samples: torch.Tensor,
    sketches: torch.Tensor,
    seen: torch.Tensor,
    m: int,
    similarity: str,
    *,
    max_clustered: int | None = None,
    generator: torch.Generator | None = None,
) -> Buckets:
    """Algorithm 2's buckets over `clients`; `sketches[i]` is client i's, used where `seen[i]`.
    Past `max_clustered` clients with a sketch, a sample of that many (drawn from `generator`) is
    clustered and the others fill the buckets as clients without a sketch do."""
    sizes = num_samples.to(torch.int64)
    capacity = int(sizes[clients].sum())
    known = clients[seen[clients]]
    unknown = clients[~seen[clients]]
    if max_clustered is not None and known.numel() > max_clustered:
        assert generator is not None, "max_clustered samples from a generator"
        sampled = torch.zeros(known.numel(), dtype=torch.bool)
        sampled[at_most(torch.arange(known.numel()), max_clustered, generator)] = True
        known, unknown = known[sampled], torch.sort(torch.cat([unknown, known[~sampled]])).values
    unknown = by_size(unknown, sizes)
    x = sketches[known].double()
    if similarity == "arccos":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-30)
    labels = cut_by_mass(ward_tree(x), sizes[known] * m, capacity) if len(known) else known
    groups = [known[labels == label] for label in torch.unique(labels)]  # by smallest member id
    mass = torch.tensor([int(sizes[g].sum()) * m for g in groups], dtype=torch.int64)
    order = torch.argsort(mass, stable=True).tolist()  # increasing weight, ties by smallest member id
    fits = [i for i in order if int(mass[i]) <= capacity]
    kept = fits[len(fits) - min(m, len(fits)) :]
    rest = [i for i in order if i not in kept]
    empty = torch.zeros(0, dtype=torch.int64)
    own = torch.cat([groups[i] for i in kept]) if kept else empty
    filler = torch.cat([*(groups[i] for i in rest), unknown])
    return Buckets(
        capacity=capacity,
        own_clients=own,
        own_masses=sizes[own] * m,
        own_bucket=torch.cat(
            [torch.full((len(groups[i]),), b, dtype=torch.int64) for b, i in enumerate(kept)]
        )
        if kept
        else empty,
        filler_clients=filler,
        filler_masses=sizes[filler] * m,
        m=m,
    )


class ClusteredSimilarity(Selector):
    """Up to k distinct clients from k draws (one per bucket); `Selection.weights` is how many times
    each was drawn (aggregation by 1/m per draw, not by sample count)."""

    def __init__(
        self,
        *,
        sketch_dim: int = 128,
        similarity: Literal["arccos", "l2"] = "arccos",
        max_clustered: int = 1000,
    ) -> None:
        super().__init__()
        if sketch_dim <= 0:
            raise ValueError(f"selection.sketch_dim must be > 0, got {sketch_dim}")
        if isinstance(max_clustered, bool) or not isinstance(max_clustered, int) or max_clustered < 1:
            raise ValueError(f"selection.max_clustered must be an integer >= 1, got {max_clustered!r}")
        self.update_sketch_dim = sketch_dim
        self.similarity = similarity
        self.max_clustered = max_clustered

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
        """k draws, one from each of Algorithm 2's buckets over the available clients."""
        check_round(available, k, "ClusteredSimilarity")
        clients = available
        state = state or self.initial_state(population.num_clients)
        if k == 0 or not clients.numel() or int(population.num_samples[clients].sum()) == 0:
            return Selection(clients=[], state=state)
        buckets = similarity_buckets(
            clients,
            population.num_samples,
            state["sketch"],
            state["seen"] > 0,
            k,
            self.similarity,
            max_clustered=self.max_clustered,
            generator=generator,
        )
        chosen, weights = multiplicity(buckets.draw(generator))
        return Selection(clients=chosen, state=state, weights=weights)

    def initial_state(self, num_clients: int) -> dict[str, torch.Tensor]:
        return {
            "sketch": torch.zeros(num_clients, self.update_sketch_dim, dtype=torch.float32),
            "seen": torch.zeros(num_clients, dtype=torch.int64),
        }

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Keep the sketch of every client that trained this round."""
        return remember_sketches(round, feedback, state)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sketch_dim={self.update_sketch_dim}, similarity={self.similarity!r}, "
            f"max_clustered={self.max_clustered})"
        )


def remember_sketches(
    round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`state` with each trained client's new sketch and the round it came from, written in place:
    only the reporting clients' rows (O(k · D), not a copy of the num_clients × D table)."""
    trained = [f for f in feedback if f.sketch is not None]
    if not trained:
        return state
    ids = torch.tensor([f.client for f in trained], dtype=torch.int64)
    sketches = [f.sketch.to(torch.float32) for f in trained if f.sketch is not None]
    state["sketch"].index_copy_(0, ids, torch.stack(sketches))
    state["seen"].index_fill_(0, ids, round)
    return state

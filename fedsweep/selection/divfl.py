"""DivFL: Balakrishnan, Li, Zhou, Himayat, Smith, Bilmes, "Diverse Client Selection for Federated
Learning via Submodular Maximization", ICLR 2022 (https://openreview.net/forum?id=nwKXyFvaUm).

The selected set S should let its updates stand for everyone's: DivFL minimises the approximation
error G(S) = Σ_{i ∈ V} min_{j ∈ S} ‖∇f_i − ∇f_j‖ (Eq. 4-5), i.e. maximises the facility-location
function Σ_i max_{j ∈ S} (C − ‖∇f_i − ∇f_j‖), which is submodular; the greedy algorithm adds, k
times, the client whose addition lowers G the most, within 1 − 1/e of the optimum (Section 3.2).
Clients are aggregated by sample count (FedAvg's weights, as the authors' `aggregate`), so
`Selection.weights` is None.

Where implementations differ, and what we chose (the authors' code: github.com/melodi-lab/divfl,
`flearn/trainers/fedbase.py::greedy`, `lazy_greedy`, `fedavg.py`):
- **Gradients.** Their server asks every client for a gradient in round 0 (an extra pass over all
  clients' data), then keeps each client's last update, refreshing those of the selected clients
  only, and the full N × N distance matrix. We keep a D-dimensional count sketch of each client's
  last update (fedsweep/selection/sketch.py; L2 distances between sketches estimate the updates'),
  and replace round 0's census by exploration: clients without a sketch are selected first, at
  random from the round's generator, so every available client has one after about N / k rounds.
- **Greedy.** Their experiments use lazy greedy, which returns the plain greedy's set; we run the
  plain greedy, vectorised: each step scores every candidate j by Σ_i min(best_i, d(i, j)). Ties go
  to the lower client id. Candidates are the available clients with a sketch; V (the clients whose
  updates S should represent) is every client with a sketch, available or not, as theirs is all.

- **Large populations.** Their greedy compares all N clients with all N (an N × N matrix). Past
  `max_candidates` (M, default 1,000) we run the same greedy on a seeded random subsample: at most M
  of the available clients with a sketch as candidates, and at most M clients with a sketch as the
  ground set V whose sum G estimates (a uniform sample of V: an unbiased estimate of G(S) for every
  S, up to the constant factor |V| / M). This is the idea of stochastic greedy (Mirzasoleiman,
  Badanidiyuru, Karbasi, Vondrák, Krause, "Lazier Than Lazy Greedy", AAAI 2015,
  https://arxiv.org/abs/1409.7938, Algorithm 1: each step scores a random sample of
  (n / k) · ln(1 / ε) candidates and keeps 1 − 1/e − ε of the optimum in expectation); we draw one
  candidate sample for the round rather than one per step, so that the distances are one M × M
  matrix, and the guarantee holds with respect to the sampled candidates. With at most M candidates
  and M clients with a sketch nothing is drawn and the choice is exactly the plain greedy's.

Per-client state fits the memory rule as clustered sampling's does: `sketch`, float32
[num_clients, D] (512 bytes per client at D = 128: 51 KB at 100 clients, 5.1 MB at 10,000, 512 MB
at 1,000,000) and `seen`, int64 [num_clients], the round of each sketch (0: never). A round costs
O(M² · D) to compare the sampled clients and O(k · M²) for the greedy, with an M × M float32 matrix
(4 MB at M = 1,000), whatever the population; below M it is the exact O(V · A · D) greedy
(measured on one CPU thread of a loaded 2-core machine, k = 10, D = 128, every client with a sketch:
9 ms a round at 100 clients, 0.2 s at 1,000; 80 s at 10,000 before the subsample, see
benchmarks/selection_cost.py for the figures with it).
"""

import torch

from fedsweep.selection.base import ClientFeedback, Population, Selection, Selector
from fedsweep.selection.clustered_similarity import remember_sketches
from fedsweep.selection.draw import at_most, check_round


def l2_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float32 [len(a), len(b)]: Euclidean distances between rows (computed in float64, one matrix
    product)."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
    return squared.clamp_min(0).sqrt().to(torch.float32)


def facility_location_greedy(distances: torch.Tensor, k: int, block: int = 1024) -> list[int]:
    """Columns (candidates) picked greedily to minimise Σ_rows min over picked columns of `distances`;
    candidates are scored `block` columns at a time (float64 sums), so the only large tensor is
    `distances`."""
    rows, cols = distances.shape
    best = torch.full((rows, 1), float("inf"), dtype=distances.dtype)
    picked: list[int] = []
    for _ in range(min(k, cols)):
        cost = torch.cat(
            [
                torch.minimum(best, distances[:, lo : lo + block]).sum(0, dtype=torch.float64)
                for lo in range(0, cols, block)
            ]
        )
        cost[picked] = float("inf")
        j = int(cost.argmin())  # first minimum: the lower candidate on ties
        picked.append(j)
        best = torch.minimum(best, distances[:, j : j + 1])
    return picked


class DivFL(Selector):
    """min(k, len(available)) distinct clients: those without a sketch first (at random), then greedily
    the most representative; aggregated by sample count."""

    def __init__(self, *, sketch_dim: int = 128, max_candidates: int = 1000) -> None:
        super().__init__()
        if sketch_dim <= 0:
            raise ValueError(f"selection.sketch_dim must be > 0, got {sketch_dim}")
        if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 1:
            raise ValueError(f"selection.max_candidates must be an integer >= 1, got {max_candidates!r}")
        self.update_sketch_dim = sketch_dim
        self.max_candidates = max_candidates

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
        """Unseen clients first, then the facility-location greedy over the clients' sketches."""
        check_round(available, k, "DivFL")
        clients = available
        state = state or self.initial_state(population.num_clients)
        seen = state["seen"] > 0
        unseen, candidates = clients[~seen[clients]], clients[seen[clients]]
        take = min(k, len(available))
        chosen = unseen[torch.randperm(len(unseen), generator=generator)[:take]].tolist()
        if len(chosen) < take:
            ground = at_most(torch.nonzero(seen).flatten(), self.max_candidates, generator)
            candidates = at_most(candidates, self.max_candidates, generator)
            distances = l2_distances(state["sketch"][ground], state["sketch"][candidates])
            chosen += candidates[facility_location_greedy(distances, take - len(chosen))].tolist()
        return Selection(clients=sorted(chosen), state=state)

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
            f"{type(self).__name__}(sketch_dim={self.update_sketch_dim}, "
            f"max_candidates={self.max_candidates})"
        )

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

Per-client state fits the memory rule as clustered sampling's does: `sketch`, float32
[num_clients, D] (512 bytes per client at D = 128: 51 KB at 100 clients, 5.1 MB at 10,000, 512 MB
at 1,000,000) and `seen`, int64 [num_clients], the round of each sketch (0: never). The greedy is
not O(N log N): with V clients with a sketch and A available candidates it takes O(V · A · D) to
compare them, O(k · V · A) for the greedy, and a V × A float32 matrix (100 clients: 40 KB; 10,000:
400 MB), so, like the authors' N × N matrix, it is for populations up to about 10^4 clients.
"""

import torch

from fedsweep.selection.base import ClientFeedback, Population, Selection, Selector
from fedsweep.selection.clustered_similarity import remember_sketches


def facility_location_greedy(distances: torch.Tensor, k: int) -> list[int]:
    """Columns (candidates) picked greedily to minimise Σ_rows min over picked columns of `distances`."""
    best = torch.full((distances.shape[0],), float("inf"), dtype=distances.dtype)
    picked: list[int] = []
    free = torch.ones(distances.shape[1], dtype=torch.bool)
    for _ in range(min(k, distances.shape[1])):
        cost = torch.minimum(best[:, None], distances).sum(0)
        cost[~free] = float("inf")
        j = int(cost.argmin())  # first minimum: the lower candidate on ties
        picked.append(j)
        free[j] = False
        best = torch.minimum(best, distances[:, j])
    return picked


class DivFL(Selector):
    """min(k, len(available)) distinct clients: those without a sketch first (at random), then greedily
    the most representative; aggregated by sample count."""

    def __init__(self, *, sketch_dim: int = 128) -> None:
        super().__init__()
        if sketch_dim <= 0:
            raise ValueError(f"selection.sketch_dim must be > 0, got {sketch_dim}")
        self.update_sketch_dim = sketch_dim

    def select(
        self,
        *,
        round: int,
        available: list[int],
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
        population: Population,
        probes: dict[int, float] | None = None,
    ) -> Selection:
        """Unseen clients first, then the facility-location greedy over the clients' sketches."""
        if k < 0:
            raise ValueError(f"DivFL: k must be >= 0, got {k}")
        if len(set(available)) != len(available):
            raise ValueError("DivFL: `available` holds duplicate client ids")
        state = state or self.initial_state(population.num_clients)
        clients = torch.tensor(sorted(available), dtype=torch.int64)
        seen = state["seen"] > 0
        unseen, candidates = clients[~seen[clients]], clients[seen[clients]]
        take = min(k, len(available))
        chosen = unseen[torch.randperm(len(unseen), generator=generator)[:take]].tolist()
        if len(chosen) < take:
            sketches = state["sketch"].to(torch.float64)
            distances = torch.cdist(sketches[seen], sketches[candidates],
                                    compute_mode="donot_use_mm_for_euclid_dist")  # exact, not via a matmul
            chosen += candidates[facility_location_greedy(distances, take - len(chosen))].tolist()
        return Selection(clients=sorted(chosen), state=state)

    def initial_state(self, num_clients: int) -> dict[str, torch.Tensor]:
        return {"sketch": torch.zeros(num_clients, self.update_sketch_dim, dtype=torch.float32),
                "seen": torch.zeros(num_clients, dtype=torch.int64)}

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Keep the sketch of every client that trained this round."""
        return remember_sketches(round, feedback, state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sketch_dim={self.update_sketch_dim})"

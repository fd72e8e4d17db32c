"""Power-of-choice (pow-d): draw d candidates ∝ data size, evaluate each one's loss at the current
global model, train the k (= m) candidates with the largest loss.

Cho, Wang and Joshi 2022, "Towards Understanding Biased Client Selection in Federated Learning",
AISTATS, https://arxiv.org/abs/2010.01243, Algorithm 1 (π_pow-d):

    1. A ← d clients sampled without replacement, client k with probability p_k = n_k / n
    2. the server sends w̄^(t) to A; each candidate returns F_k(w̄^(t)), its local loss on all its samples
    3. S^(t) ← the m clients of A with the largest F_k(w̄^(t))
    4. w̄^(t+1) = (1/m) Σ_{k ∈ S^(t)} w_k^(t+1)   (the paper's update rule: a plain mean)

Choices, where implementations differ:
- **Aggregation weights: 1/m** (Selection.weights all equal), the paper's update rule: the sampling ∝
  p_k already accounts for data size. Flower's baseline aggregates with FedAvg's sample-count weights;
  its partitions give every client the same number of samples, where the two agree.
- **d.** `d` candidates; `null` (the default) means 2·m, the paper's smallest setting (m = 3, d = 6 on
  FMNIST; d ∈ {6, 9, 15} in its Fig. 4). Validation refuses d < clients_per_round and d > num_clients;
  a round with fewer available clients than d probes all of them.
- **The loss** is the mean cross-entropy of the model in eval mode (no dropout, BatchNorm's running
  statistics), computed by the runner's probe task (tasks/probe.py) and cached with the round.
- **Ties** between equal losses go to the smaller client id (the paper does not say; Flower sorts
  stably in arrival order). A NaN loss ranks last.
"""

import math
from collections.abc import Mapping
from typing import Any

import torch

from fedsweep.selection.base import Population, Probe, Selection, Selector
from fedsweep.selection.draw import check_round
from fedsweep.selection.sampling import draw_by_size


class PowD(Selector):
    """Probe d candidates drawn ∝ data size; select the k with the largest loss; equal weights."""

    samples: int | None = None  # probe on all of a candidate's samples (cpow-d sets b)

    def __init__(self, *, d: int | None = None) -> None:
        super().__init__()
        if d is not None and d < 1:
            raise ValueError(f"d must be >= 1 (or null for 2 x clients_per_round), got {d}")
        self.d = d

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """d between clients_per_round and num_clients (a d-candidate set must hold m clients)."""
        d = (config.get(key) or {}).get("d")
        if d is None or not isinstance(d, int):
            return
        m, n = config.get("clients_per_round"), config.get("num_clients")
        if isinstance(m, int) and d < m:
            raise ValueError(
                f"{key}.d must be >= clients_per_round ({m}): power-of-choice selects m of its d "
                f"candidates, got d={d}"
            )
        if isinstance(n, int) and d > n:
            raise ValueError(f"{key}.d must be <= num_clients ({n}), got d={d}")

    def candidates(
        self, *, available: torch.Tensor, k: int, generator: torch.Generator, population: Population
    ) -> list[int]:
        """The candidate set A: d (or 2k) clients drawn without replacement ∝ data size, sorted."""
        check_round(available, k, type(self).__name__)
        d = self.d if self.d is not None else 2 * k
        return sorted(
            draw_by_size(available, population, min(d, len(available)), generator, replacement=False)
        )

    def probe(
        self,
        *,
        round: int,
        available: torch.Tensor,
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
        population: Population,
    ) -> Probe | None:
        """The candidates, to be evaluated at the round's global model."""
        return Probe(
            clients=self.candidates(available=available, k=k, generator=generator, population=population),
            samples=self.samples,
        )

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
        """The k probed candidates with the largest loss, weighted equally."""
        if probes is None:
            raise ValueError(f"{type(self).__name__}: select needs the losses its probe asked for")
        return largest(probes, k, state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d})"


def largest(losses: Mapping[int, float], k: int, state: dict[str, torch.Tensor]) -> Selection:
    """The k clients with the largest loss (ties: smaller id first; NaN last), sorted, weights 1 each."""
    ranked = sorted(losses, key=lambda c: (-losses[c] if not math.isnan(losses[c]) else math.inf, c))
    chosen = sorted(ranked[: max(k, 0)])
    return Selection(clients=chosen, state=state, weights=dict.fromkeys(chosen, 1.0))

"""MD sampling: m clients drawn with replacement, each draw ∝ data size, each draw aggregated with
weight 1/m, so the aggregate is an unbiased estimate of the full-participation FedAvg model.

Li, Huang, Yang, Wang and Zhang 2020, "On the Convergence of FedAvg on Non-IID Data", ICLR,
https://arxiv.org/abs/1907.02189, Section 3.3, Scheme I: S_t drawn as K i.i.d. samples with
P(k) = p_k = n_k / n, and w_{t} = (1/K) Σ_{k ∈ S_t} w_k (a client drawn twice counts twice). Fraboni
et al. 2021, "Clustered Sampling", https://arxiv.org/abs/2105.05883, call it MD (multinomial
distribution) sampling and show it unbiased (their eq. 4 with r_i = p_i).

Choices, where implementations differ:
- A client drawn c times trains once; its aggregation weight is c (relative: c / m after the
  strategy normalises). Fraboni et al.'s code does the same (it sums the weights of repeated draws).
- The selection therefore holds between 1 and m distinct clients (fewer than m when draws repeat),
  unlike the contract's default of exactly min(k, available).
- Draws are over the clients available this round (fedsweep/faults/), ∝ their sizes; a failed client's
  weight is dropped and the others renormalised, as every strategy does with failures.
"""

import torch

from fedsweep.selection.base import Population, Selection, Selector
from fedsweep.selection.draw import check_round
from fedsweep.selection.sampling import draw_by_size


class UniformMD(Selector):
    """k draws with replacement ∝ data size; the distinct clients, sorted, weighted by how often drawn."""

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
        """Weights: each client's multiplicity among the k draws (Selection.weights)."""
        check_round(available, k, "UniformMD")
        draws = draw_by_size(available, population, k, generator, replacement=True)
        counts: dict[int, float] = {}
        for client in draws:
            counts[client] = counts.get(client, 0.0) + 1.0
        return Selection(clients=sorted(counts), weights={c: counts[c] for c in sorted(counts)})

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

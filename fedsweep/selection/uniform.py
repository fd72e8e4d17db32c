"""Uniform client selection: each round, k of the available clients drawn uniformly at random
without replacement (the "random fraction C of clients" of McMahan et al. 2017,
https://arxiv.org/abs/1602.05629, Algorithm 1).
"""

import torch

from fedsweep.selection.base import Population, Selection, Selector
from fedsweep.selection.draw import check_round


class Uniform(Selector):
    """min(k, len(available)) distinct clients, uniformly at random, returned sorted."""

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
        """A uniform sample without replacement drawn from `generator` alone."""
        check_round(available, k, "Uniform")
        # The permutation is drawn even when every client is taken, so the generator always
        # advances the same way for a given number of available clients.
        perm = torch.randperm(len(available), generator=generator)
        chosen = available.index_select(0, perm[: min(k, len(available))])
        return Selection(clients=torch.sort(chosen).values.tolist())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

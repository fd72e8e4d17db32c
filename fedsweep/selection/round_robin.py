"""Round-robin selection (minimise reuse): each round, the k available clients that were selected
least recently, ties broken by a seeded shuffle. With every client available it cycles through the
population: no client is selected a second time before every client has been selected once.

This is the deterministic "cyclic" participation of Wang and Ji 2022, "A Unified Analysis of
Federated Learning with Arbitrary Client Participation", NeurIPS, https://arxiv.org/abs/2205.13648
(cyclic participation), kept well defined when availability varies (our choice, where the paper
assumes a fixed cycle of client groups): the least recently used available clients are taken, and
the groups are therefore formed on the fly from a seeded shuffle. Aggregation weights: by sample
count (the default).

State: `last` (int64 [num_clients]), the round each client was last selected, 0 for never; it
moves at selection (a selected client that fails still counts as used), and is checkpointed with
the round, so a resumed run continues the same cycle.
"""

import torch

from fedsweep.selection.base import Population, Selection, Selector
from fedsweep.selection.draw import check_round


class RoundRobin(Selector):
    """The k least recently selected available clients (seeded tie-break), returned sorted."""

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
        """Sort the available clients by `last` after a seeded shuffle (a stable sort keeps the
        shuffle's order among equals), take the first k, and mark them used in this round."""
        check_round(available, k, "RoundRobin")
        last = (
            state["last"].clone()
            if "last" in state
            else torch.zeros(population.num_clients, dtype=torch.int64)
        )
        ids = available
        shuffled = ids.index_select(0, torch.randperm(len(ids), generator=generator))
        order = torch.sort(last.index_select(0, shuffled), stable=True).indices
        chosen = shuffled.index_select(0, order[: min(k, len(ids))])
        last[chosen] = round
        return Selection(clients=sorted(chosen.tolist()), state={"last": last})

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

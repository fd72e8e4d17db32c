"""FedCS: client selection under a round deadline (Nishio & Yonetani, "Client Selection for Federated
Learning with Heterogeneous Resources in Mobile Edge", ICC 2019, arXiv 1804.08333), Algorithm 2.

The server asks a random fraction C of the available clients for their resources (Protocol 2's
"Resource Request"), then packs greedily: it repeatedly takes the candidate that adds the least to
the round's elapsed time Θ, and keeps it while the round still ends before the deadline
(Algorithm 2: x = argmax 1 / (ΔΘ(x)), Θ' = Θ + ΔΘ(x), admit x while Θ' ≤ T_round).

In the paper uploads share one channel, so each admitted client adds its upload time to Θ. In
fedsweep's system model (conf/systems/) clients run in parallel and a round lasts as long as its
slowest client, so Θ(S) = max_{i∈S} t_i with t_i the client's whole simulated round
(`Population.expected_seconds`), and adding x costs max(0, t_x − Θ): the greedy order is fastest
first, and the admitted set is every candidate with t_i ≤ the deadline, fastest first. We cap it at
clients_per_round (the paper has no cap; set k to the number of clients to allow all that fit), so
a round has between 0 and k clients: **fewer than k** when the candidates that fit are fewer, and
none when none fits (the aggregation policy then decides, as for any short round).

Defaults: C = 0.1, the fraction of clients asked for resources in the paper's experimental setting.
FedCS needs a system model with a deadline: validation refuses it without one (`check_config`).
"""

import math
from collections.abc import Mapping
from typing import Any

import torch

from fedsweep.params import ParamError, positive
from fedsweep.selection.base import Population, Selection, Selector
from fedsweep.selection.draw import ascending, check_round, uniform_sample


def pack_under_deadline(seconds: torch.Tensor, deadline: float, k: int) -> torch.Tensor:
    """Positions of the candidates FedCS's greedy admits: fastest first, while the round's elapsed
    time max(t) stays <= `deadline`, at most k (ties: the earlier position first)."""
    order = ascending(seconds)
    fits = int((seconds[order] <= deadline).sum())
    return order[: min(k, fits)]


class FedCS(Selector):
    """FedCS's greedy packing; aggregation weights: by sample count (the default)."""

    def __init__(self, *, fraction: float = 0.1) -> None:
        super().__init__()
        self.fraction = positive("FedCS", "fraction", fraction)
        if self.fraction > 1.0:
            raise ParamError("FedCS", "fraction", f"must be in (0, 1] (got {fraction!r})")

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """A system model with a round deadline must be configured (systems.deadline_s)."""
        systems = config.get("systems")
        if (
            not isinstance(systems, Mapping)
            or not systems.get("_target_")
            or systems.get("deadline_s") is None
        ):
            raise ValueError(
                "FedCS needs a system model with a round deadline: set systems=<model> and systems.deadline_s"
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
        """Among ⌈C·|available|⌉ random candidates, the fastest that finish by the deadline (≤ k)."""
        check_round(available, k, "FedCS")
        if population.expected_seconds is None or population.deadline_s is None:
            raise ValueError(
                "FedCS needs the system model's expected seconds and deadline (systems=..., "
                "systems.deadline_s)"
            )
        avail = available
        asked = avail[uniform_sample(len(avail), math.ceil(self.fraction * len(avail) - 1e-9), generator)]
        seconds = population.expected_seconds.to(torch.float64)[asked]
        chosen = asked[pack_under_deadline(seconds, float(population.deadline_s), k)]
        return Selection(clients=sorted(int(c) for c in chosen))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fraction={self.fraction})"

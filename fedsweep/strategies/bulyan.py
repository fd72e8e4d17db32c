"""Bulyan: a Krum-based selection followed by a coordinate-wise trimmed mean around the median.

El Mhamdi, Guerraoui and Rouault 2018, "The Hidden Vulnerability of Distributed Learning in
Byzantium", ICML, https://arxiv.org/abs/1802.07927 (Section 4). With n clients and f assumed
Byzantine (n ≥ 4f + 3): θ = n − 2f models are chosen one by one, each the Krum choice among those
left; then, per coordinate, the β = θ − 2f values closest to the median of the θ are averaged.

Choices: f = 0 by default (the paper leaves it to the adversary; Flower's Bulyan defaults to 0,
which makes Bulyan the plain mean). When failures leave n < 4f + 3, f is lowered for the round to
the largest value the round allows (Flower raises instead). Unweighted, as the paper and Flower.
Memory: the K × K distances, then clients-per-round × one tensor at a time.
"""

from collections.abc import Mapping
from typing import Any

from fedsweep.failures import Failure
from fedsweep.params import clients_per_round, count
from fedsweep.strategies.aggregate import keep
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.strategies.robust import (
    bulyan_select,
    closest_to_median_mean,
    float_names,
    pairwise_sq_distances,
    per_tensor,
)
from fedsweep.weights import Params


class Bulyan(Strategy):
    """Bulyan with f assumed Byzantine clients."""

    def __init__(self, *, f: int = 0) -> None:
        super().__init__()
        self.f = count("Bulyan", "f", f, least=0)

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """n ≥ 4f + 3 for the cell's clients per round n."""
        f, n = config[key].get("f", 0), clients_per_round(config)
        if isinstance(f, int) and 4 * f + 3 > n:
            raise ValueError(
                f"{key}.f={f} is too large for clients_per_round={n}: Bulyan needs "
                f"clients_per_round >= 4f + 3, so f <= {max((n - 3) // 4, 0)}"
            )

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """Krum-selected θ clients, then the β-closest-to-median mean per coordinate."""
        n = len(results)
        if not n:
            return Aggregated(params=keep(global_params), server_state=server_state)
        f = min(self.f, max((n - 3) // 4, 0))
        chosen = bulyan_select(pairwise_sq_distances(results, float_names(global_params)), f)
        beta = len(chosen) - 2 * f
        params = per_tensor(
            global_params, results, lambda stacked: closest_to_median_mean(stacked[chosen], beta)
        )
        return Aggregated(params=params, server_state=server_state)

    def __repr__(self) -> str:
        return f"Bulyan(f={self.f})"

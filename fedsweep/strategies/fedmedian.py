"""FedMedian: the coordinate-wise median of the clients' models.

Yin, Chen, Ramchandran and Bartlett 2018, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML, https://arxiv.org/abs/1803.01498 (Option I, coordinate-wise median):
w_{t+1}[j] = med_k w_k[j]. The median is unweighted (sample counts are ignored, as in the paper and
Flower's FedMedian); for an even number of clients it is the mean of the two middle values (numpy's
convention, which Flower uses). Holds clients-per-round × one tensor at a time.
"""

from fedsweep.failures import Failure
from fedsweep.strategies.aggregate import keep
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.strategies.robust import coordinate_median, per_tensor
from fedsweep.weights import Params


class FedMedian(Strategy):
    """Coordinate-wise median of the successful clients' parameters."""

    def __init__(self) -> None:
        super().__init__()

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """The median per coordinate; an empty round keeps the model."""
        if not len(results):
            return Aggregated(params=keep(global_params), server_state=server_state)
        return Aggregated(
            params=per_tensor(global_params, results, coordinate_median), server_state=server_state
        )

    def __repr__(self) -> str:
        return "FedMedian()"

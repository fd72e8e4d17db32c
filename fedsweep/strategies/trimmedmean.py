"""Trimmed mean: per coordinate, drop the largest and smallest β fraction of the clients' values and
average the rest.

Yin, Chen, Ramchandran and Bartlett 2018, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML, https://arxiv.org/abs/1803.01498 (Option II, coordinate-wise trimmed
mean): with n clients, ⌊βn⌋ values are removed from each end (scipy's trim_mean, which Flower's
FedTrimmedAvg follows); unweighted. The paper requires β < 1/2 and leaves its value to the assumed
fraction of Byzantine clients; β = 0.2 is Flower's default.
"""

from fedsweep.failures import Failure
from fedsweep.params import ParamError, non_negative
from fedsweep.strategies.aggregate import keep
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.strategies.robust import per_tensor, trimmed_mean
from fedsweep.weights import Params


def trim_count(beta: float, n: int) -> int:
    """⌊βn⌋: how many values are dropped from each end."""
    return int(beta * n)


class TrimmedMean(Strategy):
    """Coordinate-wise β-trimmed mean of the successful clients' parameters."""

    def __init__(self, *, beta: float = 0.2) -> None:
        super().__init__()
        self.beta = non_negative("TrimmedMean", "beta", beta)
        if not self.beta < 0.5:
            raise ParamError(
                "TrimmedMean", "beta", f"must be < 0.5, or every value is trimmed (got {beta!r})"
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
        """The trimmed mean per coordinate; an empty round keeps the model."""
        if not len(results):
            return Aggregated(params=keep(global_params), server_state=server_state)
        trim = trim_count(self.beta, len(results))
        params = per_tensor(global_params, results, lambda stacked: trimmed_mean(stacked, trim))
        return Aggregated(params=params, server_state=server_state)

    def __repr__(self) -> str:
        return f"TrimmedMean(beta={self.beta})"

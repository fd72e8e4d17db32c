"""Federated Averaging (FedAvg): the new global model is the clients' models averaged with weights
proportional to their number of training samples.

McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized Data",
https://arxiv.org/abs/1602.05629 (Algorithm 1). Local training is plain SGD on the client's loss;
failed clients are simply left out of the average (Flower's FedAvg does the same with `failures`).
The weights are `ClientMeta.weight`: sample counts, or the selector's (fedsweep/selection/base.py).
"""

from fedsweep.failures import Failure
from fedsweep.strategies.aggregate import RunningMean
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.weights import Params


class FedAvg(Strategy):
    """Sample-weighted average of the successful clients' parameters."""

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
        """Σ n_k w_k / Σ n_k over `results` (n_k: each result's `weight`, its sample count unless the
        selector set weights); the global parameters unchanged if no weight was reported."""
        acc = RunningMean()
        for result in results:
            acc.add(result.params, result.weight)
        if acc.total_weight == 0.0:
            # No update (every client failed, or only empty clients reported): keep the model.
            return Aggregated(
                params={k: v.clone() for k, v in global_params.items()}, server_state=server_state
            )
        return Aggregated(params=acc.result(global_params), server_state=server_state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

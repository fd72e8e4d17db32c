"""FedAvgM: FedAvg with server momentum. The server keeps a velocity of the averaged model change
and moves the global model along it.

Hsu, Qi and Brown 2019, "Measuring the Effects of Non-Identical Data Distribution for Federated
Visual Classification", https://arxiv.org/abs/1909.06335 (Section 3):

    Δw_t = w_t − Σ_k n_k w_k / Σ_k n_k      (the negative of FedAvg's change)
    v_t  = β v_{t−1} + Δw_t,   v_0 = 0
    w_{t+1} = w_t − η v_t

With β = 0 and η = 1 it is FedAvg. Defaults β = 0.9, η = 1.0: the paper's experiments use server
momentum 0.9 (sweeping the effective rate η / (1 − β)); Flower's FedAvgM defaults to β = 0, that
is plain FedAvg unless set. Flower initialises v with the first Δw, which equals β·0 + Δw: the same.
Integer buffers get FedAvg's weighted mean (rounded); an empty round keeps the model and v.
"""

import torch

from fedsweep.failures import Failure
from fedsweep.params import decay, positive
from fedsweep.strategies.aggregate import cast_like, keep
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.strategies.fedopt import pseudo_gradient
from fedsweep.weights import Params


def momentum_step(
    w: torch.Tensor, v: torch.Tensor, delta: torch.Tensor, *, beta: float, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(w − η v_t, v_t) with v_t = β v + (−Δ), Δ the pseudo-gradient (mean − w)."""
    v = beta * v - delta
    return w - lr * v, v


class FedAvgM(Strategy):
    """FedAvg's average as a pseudo-gradient, applied with server momentum β and server lr η."""

    def __init__(self, *, server_lr: float = 1.0, momentum: float = 0.9) -> None:
        super().__init__()
        self.server_lr = positive("FedAvgM", "server_lr", server_lr)
        self.momentum = decay("FedAvgM", "momentum", momentum)

    def init_server_state(self, params: Params) -> Params:
        """v = 0 for every floating-point tensor."""
        return {f"v.{k}": torch.zeros_like(x) for k, x in params.items() if x.is_floating_point()}

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """One momentum step; an empty round changes neither the model nor v."""
        delta = pseudo_gradient(global_params, results) if len(results) else None
        if delta is None:
            return Aggregated(params=keep(global_params), server_state=server_state)
        params: Params = {}
        state: Params = {}
        for name, w in global_params.items():
            if not w.is_floating_point():
                params[name] = cast_like(delta[name], w)
                continue
            v = server_state[f"v.{name}"].double()
            new_w, v = momentum_step(w.double(), v, delta[name], beta=self.momentum, lr=self.server_lr)
            params[name], state[f"v.{name}"] = cast_like(new_w, w), cast_like(v, w)
        return Aggregated(params=params, server_state=state)

    def __repr__(self) -> str:
        return f"FedAvgM(server_lr={self.server_lr}, momentum={self.momentum})"

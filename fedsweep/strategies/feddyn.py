"""FedDyn: federated learning with dynamic regularisation. Each client's local objective carries a
linear term from its own gradient memory and a proximal term, so that the clients' stationary
points agree with the global one; the server keeps h, the running mean of the clients' drifts.

Acar et al. 2021, "Federated Learning Based on Dynamic Regularization", ICLR,
https://arxiv.org/abs/2111.04263, Algorithm 1 (P the clients that reported, m the population):

    client i:  θ_i = argmin L_i(θ) − ⟨∇L_i(θ_i^{t−1}), θ⟩ + α/2 ‖θ − θ^{t−1}‖²
               ∇L_i(θ_i^t) = ∇L_i(θ_i^{t−1}) − α (θ_i^t − θ^{t−1})       (client state, zeros at first)
    server:    h^t = h^{t−1} − α (1/m) Σ_{i∈P} (θ_i^t − θ^{t−1})          (server state, zeros at first)
               θ^t = (1/|P|) Σ_{i∈P} θ_i^t − h^t / α

α defaults to 0.01 (the paper tunes α ∈ {0.1, 0.01, 0.001}; 0.01 is its code's default). The local
argmin is the configured local SGD (epochs or `local_steps`). The mean is unweighted, as in the
paper. The penalty covers trainable parameters; the state is kept for every floating tensor (a
buffer's memory only feeds the server's h); integer buffers are averaged.
"""

from collections.abc import Mapping
from typing import cast

import torch

from fedsweep.failures import Failure
from fedsweep.params import positive
from fedsweep.strategies.aggregate import RunningMean
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.strategies.scaffold import zeros_like_floats
from fedsweep.weights import Params


def gradient_memory(*, grad: Params, theta_i: Params, theta: Params, alpha: float) -> Params:
    """∇L_i^t = ∇L_i^{t−1} − α (θ_i^t − θ^{t−1})."""
    return {k: grad[k] - alpha * (theta_i[k] - theta[k]) for k in grad}


def server_step(
    *, mean_theta: Params, h: Params, drift_sum: Params, alpha: float, num_clients: int
) -> tuple[Params, Params]:
    """(θ^t, h^t): h − α Σ(θ_i − θ)/m, then mean(θ_i) − h/α; in float64, cast back."""
    new_h = {k: (h[k].double() - alpha * drift_sum[k] / num_clients).to(h[k].dtype) for k in h}
    theta = {
        k: (v.double() - new_h[k].double() / alpha).to(v.dtype) if k in h else v
        for k, v in mean_theta.items()
    }
    return theta, new_h


class FedDyn(Strategy):
    """FedDyn: linear + proximal local terms from a per-client gradient memory, server state h."""

    def __init__(self, *, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = positive("FedDyn", "alpha", alpha)

    def init_server_state(self, params: Params) -> Params:
        return zeros_like_floats(params)

    def init_client_state(self, params: Params) -> Params:
        return zeros_like_floats(params)

    def local_penalty(
        self,
        *,
        params: Mapping[str, torch.Tensor],
        global_params: Params,
        server_state: Params,
        client_state: Params,
    ) -> torch.Tensor | None:
        """−⟨∇L_i^{t−1}, θ⟩ + α/2 ‖θ − θ^{t−1}‖² over trainable parameters."""
        linear = sum((client_state[k] * w).sum() for k, w in params.items())
        prox = sum(((w - global_params[k]) ** 2).sum() for k, w in params.items())
        return cast(torch.Tensor, 0.5 * self.alpha * prox - linear)

    def finish_client(
        self,
        *,
        params: Params,
        global_params: Params,
        server_state: Params,
        client_state: Params,
        steps: int,
        lr: float,
    ) -> Params:
        return gradient_memory(grad=client_state, theta_i=params, theta=global_params, alpha=self.alpha)

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """θ^t = mean(θ_i) − h^t/α with h^t = h − α Σ(θ_i − θ)/m; unchanged without results."""
        mean = RunningMean()
        drift = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in server_state.items()}
        for result in results:
            mean.add(result.params, 1.0)
            for k in drift:
                drift[k] += result.params[k].double() - global_params[k].double()
        if mean.count == 0:
            return Aggregated(
                params={k: v.clone() for k, v in global_params.items()}, server_state=server_state
            )
        params, h = server_step(
            mean_theta=mean.result(global_params),
            h=server_state,
            drift_sum=drift,
            alpha=self.alpha,
            num_clients=context.num_clients,
        )
        return Aggregated(params=params, server_state=h)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha})"

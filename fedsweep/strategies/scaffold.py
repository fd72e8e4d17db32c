"""SCAFFOLD: stochastic controlled averaging. Control variates c (server) and c_i (client) correct
each local gradient for client drift: g ← g − c_i + c.

Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", ICML,
https://arxiv.org/abs/1910.06378, Algorithm 1 with option II control variates:

    client i (K local steps of lr η_l from x):  y_i ← y_i − η_l (g_i(y_i) − c_i + c)
                                                c_i⁺ = c_i − c + (x − y_i) / (K η_l)
    server (S the clients that reported):       x ← x + η_g · (1/|S|) Σ (y_i − x)
                                                c ← c + (1/N) Σ (c_i⁺ − c_i)     (= |S|/N · mean)

Choices, where implementations differ: the model update is the paper's *unweighted* mean over S
(some, e.g. NIID-Bench, weight by samples); K is the client's true number of steps (a straggler's
partial work, `local_steps`), η_l the round's lr (`lr_schedule`); a failed client keeps its c_i,
so it adds nothing to c, as in the paper's sum. Option II assumes plain SGD: momentum must be 0
(checked at validation). Control variates are kept for every floating tensor of the model (buffers
too, which the correction never touches); integer buffers are averaged.
"""

from collections.abc import Mapping
from typing import Any

import torch

from fedsweep.failures import Failure
from fedsweep.params import positive
from fedsweep.strategies.aggregate import RunningMean
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.weights import Params


def zeros_like_floats(params: Params) -> Params:
    """A zero tensor for every floating tensor of `params` (control variates, gradient memories)."""
    return {k: torch.zeros_like(v) for k, v in params.items() if v.is_floating_point()}


def client_control_variate(*, c_i: Params, c: Params, x: Params, y: Params, steps: int, lr: float) -> Params:
    """Option II: c_i⁺ = c_i − c + (x − y) / (K η_l); unchanged after no step."""
    if steps == 0:
        return c_i
    return {k: c_i[k] - c[k] + (x[k] - y[k]) / (steps * lr) for k in c_i}


def server_step(
    *, x: Params, mean_y: Params, c: Params, delta_c_sum: Params, server_lr: float, num_clients: int
) -> tuple[Params, Params]:
    """(x + η_g (ȳ − x), c + Σ Δc_i / N), in float64, cast back; non-float tensors take ȳ."""
    new_x = {}
    for k, v in x.items():
        if v.is_floating_point():
            step = x[k].double() + server_lr * (mean_y[k].double() - x[k].double())
            new_x[k] = step.to(v.dtype)
        else:
            new_x[k] = mean_y[k].clone()
    new_c = {k: (c[k].double() + delta_c_sum[k] / num_clients).to(c[k].dtype) for k in c}
    return new_x, new_c


class Scaffold(Strategy):
    """SCAFFOLD with option II control variates and a server learning rate η_g."""

    def __init__(self, *, server_lr: float = 1.0) -> None:
        super().__init__()
        self.server_lr = positive("Scaffold", "server_lr", server_lr)

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """Option II's c_i⁺ is the mean gradient only under plain SGD."""
        if config.get("momentum", 0.0) != 0.0:
            raise ValueError(
                f"SCAFFOLD needs momentum = 0 (option II assumes plain SGD), "
                f"got momentum={config['momentum']}"
            )

    def init_server_state(self, params: Params) -> Params:
        return zeros_like_floats(params)

    def broadcast(self, server_state: Params) -> Params:
        return dict(server_state)  # c goes to the clients

    def init_client_state(self, params: Params) -> Params:
        return zeros_like_floats(params)

    def correct_gradients(
        self, *, named_params: dict[str, torch.nn.Parameter], server_state: Params, client_state: Params
    ) -> None:
        """g ← g − c_i + c, at every local step."""
        for name, p in named_params.items():
            if p.grad is not None:
                p.grad.add_(server_state[name] - client_state[name])

    def corrected_gradients(
        self, *, grads: Mapping[str, torch.Tensor], server_state: Params, client_state: Params
    ) -> Mapping[str, torch.Tensor]:
        """g − c_i + c, as `correct_gradients` computes it, for batched clients."""
        return {name: g + (server_state[name] - client_state[name]) for name, g in grads.items()}

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
        return client_control_variate(
            c_i=client_state, c=server_state, x=global_params, y=params, steps=steps, lr=lr
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
        """x ← x + η_g mean(y_i − x), c ← c + Σ(c_i⁺ − c_i)/N; unchanged without results."""
        mean_y = RunningMean()
        delta_c = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in server_state.items()}
        for result in results:
            mean_y.add(result.params, 1.0)
            for k in delta_c:
                delta_c[k] += result.client_state[k].double() - result.previous_client_state[k].double()
        if mean_y.count == 0:
            return Aggregated(
                params={k: v.clone() for k, v in global_params.items()}, server_state=server_state
            )
        params, c = server_step(
            x=global_params,
            mean_y=mean_y.result(global_params),
            c=server_state,
            delta_c_sum=delta_c,
            server_lr=self.server_lr,
            num_clients=context.num_clients,
        )
        return Aggregated(params=params, server_state=c)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_lr={self.server_lr})"

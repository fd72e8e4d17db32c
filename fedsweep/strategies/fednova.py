"""FedNova: normalised averaging. Each client's update is divided by the amount of local work that
produced it before averaging, so clients that ran more steps do not pull the global model towards
their own objective (the objective inconsistency of FedAvg under unequal local work).

Wang et al. 2020, "Tackling the Objective Inconsistency Problem in Heterogeneous Federated
Optimization", NeurIPS, https://arxiv.org/abs/2007.07481 (Section 4, eq. 6–7; their code
github.com/JYWa/FedNova for the momentum form):

    d_i = (x − y_i) / a_i                   a_i = τ_i for plain SGD (τ_i the client's local steps)
    x ← x − τ_eff · Σ p_i d_i               τ_eff = Σ p_i a_i,   p_i = n_i / Σ n_j

(n_i: `ClientMeta.weight`, the sample count unless the selector set weights.)

With local momentum ρ (the buffer restarts each round, as here), a_i = Σ_{k=1..τ_i} (1 − ρ^k)/(1 − ρ)
= [τ_i − ρ(1 − ρ^τ_i)/(1 − ρ)] / (1 − ρ): `local_momentum` is the top-level `momentum` knob (the
yaml interpolates it, and validation checks they agree). Equal τ_i gives FedAvg exactly (up to
rounding). A client that took no step adds nothing; non-float tensors take the sample-weighted
mean. Weight decay is
part of the local gradient and is not normalised separately (as in the authors' code); the server
momentum of their code is not included.
"""

from collections.abc import Mapping
from typing import Any

import torch

from fedsweep.failures import Failure
from fedsweep.params import decay
from fedsweep.strategies.aggregate import RunningMean
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.weights import Params


def normaliser(steps: int, momentum: float = 0.0) -> float:
    """a_i = ‖a_i‖₁: τ for plain SGD; Σ_{k=1..τ} (1 − ρ^k)/(1 − ρ) with momentum ρ."""
    if momentum == 0.0:
        return float(steps)
    rho = momentum
    return (steps - rho * (1.0 - rho**steps) / (1.0 - rho)) / (1.0 - rho)


def normalised_step(*, x: Params, updates: list[tuple[float, float, Params]]) -> Params:
    """x − τ_eff Σ p_i (x − y_i)/a_i over (n_i, a_i, y_i) (a small-case reference, all in memory)."""
    total = sum(n for n, _, _ in updates)
    tau_eff = sum(n / total * a for n, a, _ in updates)
    return {k: x[k] - tau_eff * sum(n / total * (x[k] - y[k]) / a for n, a, y in updates) for k in x}


class FedNova(Strategy):
    """Averaging of the clients' updates normalised by their local work (plain SGD or momentum)."""

    partial_work = True  # heterogeneous local work is what it normalises

    def __init__(self, *, local_momentum: float = 0.0) -> None:
        super().__init__()
        self.local_momentum = decay("FedNova", "local_momentum", local_momentum)

    @classmethod
    def check_config(cls, config: Mapping[str, Any], *, key: str) -> None:
        """The normaliser must use the momentum the clients train with."""
        node, knob = config.get(key) or {}, config.get("momentum", 0.0)
        if node.get("local_momentum", 0.0) != knob:
            raise ValueError(
                f"{key}.local_momentum must equal the top-level momentum ({knob}), "
                f"got {node.get('local_momentum')}"
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
        """x − τ_eff Σ p_i d_i in float64, one client at a time; unchanged without steps or samples."""
        meta = [m for m in results.meta if m.steps > 0 and m.num_samples > 0]
        total = float(sum(m.weight for m in meta))
        if not meta or total == 0.0:
            return Aggregated(
                params={k: v.clone() for k, v in global_params.items()}, server_state=server_state
            )
        a = {m.client: normaliser(m.steps, self.local_momentum) for m in meta}
        tau_eff = sum(m.weight / total * a[m.client] for m in meta)
        floats = {k: v.double() for k, v in global_params.items() if v.is_floating_point()}
        direction = {k: torch.zeros_like(v) for k, v in floats.items()}
        others = RunningMean()
        for result in results:
            if result.client not in a:
                continue
            p = result.weight / total
            for k, x in floats.items():
                direction[k] += (p / a[result.client]) * (x - result.params[k].double())
            others.add({k: v for k, v in result.params.items() if k not in floats}, result.weight)
        rest = (
            others.result({k: v for k, v in global_params.items() if k not in floats}) if others.count else {}
        )
        params = {
            k: (floats[k] - tau_eff * direction[k]).to(v.dtype) if k in floats else rest[k]
            for k, v in global_params.items()
        }
        return Aggregated(params=params, server_state=server_state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(local_momentum={self.local_momentum})"

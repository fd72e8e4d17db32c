"""FedProx: FedAvg whose clients minimise their loss plus a proximal term μ/2 · ‖w − w_global‖²,
which keeps local models near the global one under heterogeneous data and partial work.

Li et al. 2020, "Federated Optimization in Heterogeneous Networks", MLSys,
https://arxiv.org/abs/1812.06127 (Algorithm 2). Aggregation is FedAvg's sample-weighted mean.
"""

from collections.abc import Mapping
from typing import cast

import torch

from fedsweep.strategies.fedavg import FedAvg
from fedsweep.weights import Params


class FedProx(FedAvg):
    """FedAvg plus the proximal term μ/2 · Σ‖w − w_global‖² over trainable parameters."""

    partial_work = True  # the paper aggregates stragglers' partial work (Section 5.2)

    def __init__(self, *, mu: float = 0.01) -> None:
        super().__init__()
        if not float(mu) >= 0.0:
            raise ValueError(f"FedProx: mu must be >= 0, got {mu}")
        self.mu = float(mu)

    def local_penalty(
        self,
        *,
        params: Mapping[str, torch.Tensor],
        global_params: Params,
        server_state: Params,
        client_state: Params,
    ) -> torch.Tensor | None:
        """μ/2 · Σ over `params` (parameters, not buffers) of ‖w − w_global‖²."""
        # Computed even for μ = 0: the term is then exactly zero, as are its gradients, so training
        # is bitwise FedAvg's (a test holds us to it).
        total = sum(((w - global_params[name].to(w.device)) ** 2).sum() for name, w in params.items())
        return cast(torch.Tensor, 0.5 * self.mu * total)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mu={self.mu})"

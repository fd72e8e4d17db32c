"""FedYogi: the server takes a Yogi step (Adam with an additive, sign-controlled second moment).

Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, https://arxiv.org/abs/2003.00295,
Algorithm 2: v_t = v_{t−1} − (1 − β₂) Δ_t² sign(v_{t−1} − Δ_t²), x_{t+1} = x_t + η m_t / (√v_t + τ)
(the rest in fedopt.py). Defaults: β₁ = 0.9, β₂ = 0.99, τ = 10⁻³ (paper's experiments; Flower
agrees); η = 0.01 is Flower's, the paper tunes it per task. No bias correction (neither the paper
nor Flower applies one to Yogi).
"""

import torch

from fedsweep.strategies.fedopt import FedOpt, yogi_v


class FedYogi(FedOpt):
    """Yogi on the server over FedAvg's pseudo-gradient."""

    def __init__(
        self,
        *,
        eta: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        v_init: float = 0.0,
    ) -> None:
        super().__init__(eta=eta, beta1=beta1, beta2=beta2, tau=tau, v_init=v_init)

    def second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return yogi_v(v, delta, self.beta2)

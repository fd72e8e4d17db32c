"""FedAdam: the server takes an Adam step with the clients' averaged change as its gradient.

Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, https://arxiv.org/abs/2003.00295,
Algorithm 2: v_t = β₂ v_{t−1} + (1 − β₂) Δ_t², x_{t+1} = x_t + η m_t / (√v_t + τ) (the rest in
fedopt.py). Defaults: β₁ = 0.9, β₂ = 0.99 and τ = 10⁻³ as in the paper's experiments; the paper tunes
η per task, so η = 0.1 is Flower's default. Flower's τ is 10⁻⁹.

`bias_correction` (off, as in the paper's Algorithm 2) scales η by √(1 − β₂ᵗ) / (1 − β₁ᵗ), t the
server step (1-based), Kingma & Ba's form with τ left unscaled. Flower always applies it, with
t = round + 1; set it on to compare with Flower (up to that offset).
"""

import math

import torch

from fedsweep.strategies.fedopt import FedOpt, adam_v


class FedAdam(FedOpt):
    """Adam on the server over FedAvg's pseudo-gradient; optional bias correction."""

    def __init__(
        self,
        *,
        eta: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        v_init: float = 0.0,
        bias_correction: bool = False,
    ) -> None:
        super().__init__(eta=eta, beta1=beta1, beta2=beta2, tau=tau, v_init=v_init)
        self.bias_correction = bool(bias_correction)

    def second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return adam_v(v, delta, self.beta2)

    def step_size(self, step: int) -> float:
        if not self.bias_correction:
            return self.eta
        return self.eta * math.sqrt(1.0 - self.beta2**step) / (1.0 - self.beta1**step)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, bias_correction={self.bias_correction})"

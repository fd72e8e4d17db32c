"""FedAdagrad: the server takes an Adagrad step, v accumulating the squared pseudo-gradients.

Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, https://arxiv.org/abs/2003.00295,
Algorithm 2: v_t = v_{t−1} + Δ_t², x_{t+1} = x_t + η m_t / (√v_t + τ) (the rest in fedopt.py).
Algorithm 2 keeps the momentum m_t for all three optimisers, so β₁ = 0.9 here as for FedAdam and
FedYogi; Flower's FedAdagrad fixes β₁ = 0 (no momentum) and τ = 10⁻⁹. η = 0.1 is Flower's default
(the paper tunes it); τ = 10⁻³ as in the paper's experiments. β₂ is not used by Adagrad.
"""

import torch

from fedsweep.strategies.fedopt import FedOpt, adagrad_v


class FedAdagrad(FedOpt):
    """Adagrad on the server over FedAvg's pseudo-gradient."""

    def __init__(
        self, *, eta: float = 0.1, beta1: float = 0.9, tau: float = 1e-3, v_init: float = 0.0
    ) -> None:
        super().__init__(eta=eta, beta1=beta1, beta2=0.0, tau=tau, v_init=v_init)

    def second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return adagrad_v(v, delta)

    def __repr__(self) -> str:
        return f"FedAdagrad(eta={self.eta}, beta1={self.beta1}, tau={self.tau}, v_init={self.v_init})"

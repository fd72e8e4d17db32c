"""FedAdam: the server takes an Adam step with the clients' averaged change as its gradient.

Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, https://arxiv.org/abs/2003.00295,
Algorithm 2: v_t = β₂ v_{t−1} + (1 − β₂) Δ_t², x_{t+1} = x_t + η m_t / (√v_t + τ) (the rest in
fedopt.py). Defaults: β₁ = 0.9, β₂ = 0.99 and τ = 10⁻³ as in the paper's experiments; the paper tunes
η per task, so η = 0.1 is Flower's default. Flower's τ is 10⁻⁹.

`bias_correction` (off, as in the paper's Algorithm 2) scales η by √(1 − β₂ᵗ) / (1 − β₁ᵗ), Kingma &
Ba's form with τ left unscaled. `step_count` says what t is: `server` (the default), the server steps
taken, 1 at the first; `flower`, round + 1 (the round 1-based), as Flower's FedAdam counts it
(`flwr.server.strategy.FedAdam.aggregate_fit`: `server_round + 1.0`), so its first step is corrected
as a second and a round without results still advances t. Flower always bias-corrects: its step is
`bias_correction: true, step_count: flower` (with its τ = 10⁻⁹).
"""

import math
from typing import ClassVar

import torch

from fedsweep.params import ParamError
from fedsweep.strategies.fedopt import FedOpt, adam_v

STEP_COUNTS = ("server", "flower")


class FedAdam(FedOpt):
    """Adam on the server over FedAvg's pseudo-gradient; optional bias correction."""

    # Added after cells were keyed: left out of the cell key at this value (fedsweep/config/schema.py).
    KEY_BASELINES: ClassVar[dict[str, str]] = {"step_count": "server"}

    def __init__(
        self,
        *,
        eta: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        v_init: float = 0.0,
        bias_correction: bool = False,
        step_count: str = "server",
    ) -> None:
        super().__init__(eta=eta, beta1=beta1, beta2=beta2, tau=tau, v_init=v_init)
        if step_count not in STEP_COUNTS:
            raise ParamError("FedAdam", "step_count", f"must be server or flower (got {step_count!r})")
        if step_count == "flower" and not bias_correction:
            raise ParamError(
                "FedAdam", "step_count", "must be server unless bias_correction=true (got 'flower')"
            )
        self.bias_correction = bool(bias_correction)
        self.step_count = step_count

    def second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return adam_v(v, delta, self.beta2)

    def step_size(self, step: int, *, round: int) -> float:
        if not self.bias_correction:
            return self.eta
        t = round + 1 if self.step_count == "flower" else step
        return self.eta * math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)

    def __repr__(self) -> str:
        extra = f", bias_correction={self.bias_correction}, step_count={self.step_count!r})"
        return f"{super().__repr__()[:-1]}{extra}"

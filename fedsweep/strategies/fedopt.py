"""Adaptive server optimisers (FedOpt): the server treats the clients' averaged change as a
pseudo-gradient and takes an Adagrad, Adam or Yogi step with it. The shared contract of
fedadagrad.py, fedadam.py and fedyogi.py, and their maths as pure functions over tensors.

Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, https://arxiv.org/abs/2003.00295,
Algorithm 2. With x_t the global model and Δ_t the pseudo-gradient of round t:

    Δ_t = Σ_k n_k (x_k − x_t) / Σ_k n_k            (FedAvg's weights, `ClientMeta.weight`; the paper
                                                     writes a plain mean over the sampled clients)
    m_t = β₁ m_{t−1} + (1 − β₁) Δ_t
    v_t = v_{t−1} + Δ_t²                              FedAdagrad
    v_t = β₂ v_{t−1} + (1 − β₂) Δ_t²                  FedAdam
    v_t = v_{t−1} − (1 − β₂) Δ_t² sign(v_{t−1} − Δ_t²)  FedYogi
    x_{t+1} = x_t + η m_t / (√v_t + τ)

Choices, where implementations disagree:
- **Initial moments.** m and v start at zero (Flower does the same). Algorithm 2 asks v_{−1} ≥ τ²;
  `v_init` sets v_{−1} (0 by default; τ² follows the paper to the letter).
- **Bias correction** (FedAdam only, `bias_correction`, off by default as in the paper): η_t =
  η √(1 − β₂ᵗ) / (1 − β₁ᵗ), with t the number of server steps taken (1 at the first). Flower's
  FedAdam always applies it, with t = round + 1, so its first step is already corrected as a second;
  `step_count: flower` counts t as Flower does (fedadam.py).
- **Which tensors.** Floating-point tensors (parameters and float buffers such as BatchNorm's running
  statistics, which a state_dict cannot tell apart) take the adaptive step; integer buffers
  (`num_batches_tracked`) get FedAvg's weighted mean, rounded. Flower steps every array.
- The moments are server state, stored in each tensor's dtype and never broadcast (`broadcast`
  returns nothing); a step counter `step` is kept with them so a resumed run continues bitwise.
- An empty round (no results, or only clients without samples) keeps the model and the state.
"""

from abc import abstractmethod

import torch

from fedsweep.failures import Failure
from fedsweep.params import decay, non_negative, positive
from fedsweep.strategies.aggregate import RunningMean, cast_like, keep
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.weights import Params


def first_moment(m: torch.Tensor, delta: torch.Tensor, beta1: float) -> torch.Tensor:
    """m_t = β₁ m_{t−1} + (1 − β₁) Δ_t."""
    return beta1 * m + (1.0 - beta1) * delta


def adagrad_v(v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """v_t = v_{t−1} + Δ_t²."""
    return v + delta * delta


def adam_v(v: torch.Tensor, delta: torch.Tensor, beta2: float) -> torch.Tensor:
    """v_t = β₂ v_{t−1} + (1 − β₂) Δ_t²."""
    return beta2 * v + (1.0 - beta2) * delta * delta


def yogi_v(v: torch.Tensor, delta: torch.Tensor, beta2: float) -> torch.Tensor:
    """v_t = v_{t−1} − (1 − β₂) Δ_t² sign(v_{t−1} − Δ_t²)."""
    d2 = delta * delta
    return v - (1.0 - beta2) * d2 * torch.sign(v - d2)


def adaptive_step(
    x: torch.Tensor, m: torch.Tensor, v: torch.Tensor, *, eta: float, tau: float
) -> torch.Tensor:
    """x_{t+1} = x_t + η m_t / (√v_t + τ)."""
    return x + eta * m / (torch.sqrt(v) + tau)


def pseudo_gradient(global_params: Params, results: ClientResults) -> Params | None:
    """Δ = Σ n_k (x_k − x) / Σ n_k (n_k: `weight`) in float64 (one client in memory at a time); None if
    no sample was reported. Non-floating tensors get the weighted mean itself, not a difference."""
    acc = RunningMean()
    for result in results:
        acc.add(result.params, result.weight)
    if acc.total_weight == 0.0:
        return None
    mean = acc.mean64()
    return {k: mean[k] - x.double() if x.is_floating_point() else mean[k] for k, x in global_params.items()}


class FedOpt(Strategy):
    """Base of FedAdagrad, FedAdam and FedYogi: one server step per round from the pseudo-gradient."""

    def __init__(self, *, eta: float, beta1: float, beta2: float, tau: float, v_init: float) -> None:
        super().__init__()
        name = type(self).__name__
        self.eta = positive(name, "eta", eta)
        self.beta1 = decay(name, "beta1", beta1)
        self.beta2 = decay(name, "beta2", beta2)
        self.tau = positive(name, "tau", tau)
        self.v_init = non_negative(name, "v_init", v_init)

    @abstractmethod
    def second_moment(self, v: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """v_t from v_{t−1} and Δ_t (float64)."""

    def step_size(self, step: int, *, round: int) -> float:
        """η for server step `step` (1-based) in round `round` (1-based); FedAdam's bias correction
        overrides it."""
        return self.eta

    def init_server_state(self, params: Params) -> Params:
        """m = 0 and v = v_init for every floating-point tensor, and the step counter at 0."""
        state: Params = {"step": torch.tensor(0, dtype=torch.int64)}
        for name, x in params.items():
            if x.is_floating_point():
                state[f"m.{name}"] = torch.zeros_like(x)
                state[f"v.{name}"] = torch.full_like(x, self.v_init)
        return state

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """One adaptive step from the FedAvg-weighted pseudo-gradient; an empty round changes nothing."""
        delta = pseudo_gradient(global_params, results) if len(results) else None
        if delta is None:
            return Aggregated(params=keep(global_params), server_state=server_state)
        step = int(server_state["step"]) + 1
        eta = self.step_size(step, round=context.round)
        params: Params = {}
        state: Params = {"step": torch.tensor(step, dtype=torch.int64)}
        for name, x in global_params.items():
            if not x.is_floating_point():
                params[name] = cast_like(delta[name], x)
                continue
            m = first_moment(server_state[f"m.{name}"].double(), delta[name], self.beta1)
            v = self.second_moment(server_state[f"v.{name}"].double(), delta[name])
            # The stored (cast) moments are what the next round reads, in a fresh run as after a resume.
            state[f"m.{name}"], state[f"v.{name}"] = cast_like(m, x), cast_like(v, x)
            params[name] = cast_like(adaptive_step(x.double(), m, v, eta=eta, tau=self.tau), x)
        return Aggregated(params=params, server_state=state)

    def __repr__(self) -> str:
        keys = ("eta", "beta1", "beta2", "tau", "v_init")
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)}' for k in keys)})"

"""Malicious clients (model poisoning): the update is scaled by `scale` relative to the global model,
w_g + s·(w − w_g): s ≫ 1 is the model-replacement boost of Bagdasaryan et al. 2020, "How To Backdoor
Federated Learning", https://arxiv.org/abs/1807.00459; s = −1 is the sign-flipping attack of
Byzantine-robustness benchmarks.

The attackers are `clients` plus each client drawn with probability `fraction` from
generator(seed, "fault", "malicious", client): the same identities every round.
"""

from dataclasses import dataclass

from fedsweep.faults.base import (
    ClientRound,
    Fault,
    FaultConfigError,
    bernoulli,
    client_ids,
    probability,
    set_field,
)
from fedsweep.weights import Params


def scale_update(params: Params, global_params: Params, scale: float) -> Params:
    """w_g + scale·(w − w_g) for floating-point tensors (computed in float64); others kept."""
    out: Params = {}
    for k, w in params.items():
        if w.is_floating_point():
            g = global_params[k].to(w.device, dtype=w.dtype).double()
            out[k] = (g + scale * (w.double() - g)).to(w.dtype)
        else:
            out[k] = w
    return out


@dataclass(frozen=True, kw_only=True)
class Malicious(Fault):
    """Attackers send w_g + scale·(w − w_g) instead of their model."""

    scale: float = -1.0
    clients: tuple[int, ...] = ()
    fraction: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "clients", client_ids(self, "clients") or ())
        set_field(self, "fraction", probability(self, "fraction"))
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise FaultConfigError(type(self).__name__, "scale", f"must be a number, got {self.scale!r}")
        set_field(self, "scale", float(self.scale))

    def is_malicious(self, *, seed: int, client: int) -> bool:
        """Whether `client` is an attacker under `seed`."""
        return client in self.clients or bernoulli(self.fraction, seed, "fault", "malicious", client)

    def after_training(self, ctx: ClientRound, params: Params, global_params: Params) -> Params:
        """The scaled update for an attacker, `params` untouched otherwise."""
        if self.is_malicious(seed=ctx.seed, client=ctx.client):
            return scale_update(params, global_params, self.scale)
        return params

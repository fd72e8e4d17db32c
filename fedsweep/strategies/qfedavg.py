"""q-FedAvg: fair aggregation; clients with a higher loss get a larger say (q-FFL, q ≥ 0).

Li, Sanjabi, Beirami and Smith 2020, "Fair Resource Allocation in Federated Learning", ICLR,
https://arxiv.org/abs/1905.10497 (Algorithm 2, q-FedAvg). With w the global model, w̄_k client k's
model after local training, F_k its loss and L the Lipschitz constant estimated as 1 / client lr:

    Δw_k = L (w − w̄_k),   Δ_k = F_k^q Δw_k,   h_k = q F_k^{q−1} ‖Δw_k‖² + L F_k^q
    w ← w − Σ_k n_k Δ_k / Σ_k n_k h_k

Choices, where implementations disagree:
- **Weights n_k.** The paper samples clients with probability ∝ n_k and sums uniformly; our
  selection is uniform, so each client's terms are weighted by its sample count. With q = 0 the
  update is then exactly FedAvg's (tested). Flower's QFedAvg sums unweighted. A selector's
  `Selection.weights` are not used: q-FFL's formula is its own (n_k stays the sample count).
- **Which loss.** The paper uses F_k(w), the client's loss at the global model before training.
  Clients here report their mean training loss over the round (`ClientMeta.loss`), so F_k is that:
  no extra evaluation pass, at the price of a loss measured along the local trajectory (lower than
  F_k(w)). Flower uses the server's centralised evaluation loss, the same for every client.
- F_k + 10⁻¹⁰ in the powers, as Flower, so a zero loss does not divide by zero.
- Defaults: q = 0.2 and client_lr = 0.1 (L = 10) are Flower's (`q_param`, `qffl_learning_rate`); the
  paper tunes q per dataset. conf/strategy/qfedavg.yaml sets client_lr to the cell's `lr`.
- Integer buffers get FedAvg's weighted mean (rounded); an empty round keeps the model.
"""

import torch

from fedsweep.failures import Failure
from fedsweep.params import non_negative, positive
from fedsweep.strategies.aggregate import RunningMean, cast_like, keep
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext, Strategy
from fedsweep.weights import Params

EPS = 1e-10


def qffl_terms(delta_w: Params, loss: float, *, q: float, lipschitz: float) -> tuple[float, float]:
    """(F^q, h) for one client: F^q scales its Δw, h = q F^{q−1} ‖Δw‖² + L F^q."""
    f = loss + EPS
    norm2 = float(sum(float((d * d).sum()) for d in delta_w.values()))
    return f**q, q * f ** (q - 1.0) * norm2 + lipschitz * f**q


class QFedAvg(Strategy):
    """q-FFL's server step, weighted by sample counts (q = 0 is FedAvg)."""

    def __init__(self, *, q: float = 0.2, client_lr: float = 0.1) -> None:
        super().__init__()
        self.q = non_negative("QFedAvg", "q", q)
        self.client_lr = positive("QFedAvg", "client_lr", client_lr)

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """w − Σ n_k Δ_k / Σ n_k h_k in one streaming pass; an empty round keeps the model."""
        lipschitz = 1.0 / self.client_lr
        floats = [k for k, v in global_params.items() if v.is_floating_point()]
        sums = {k: torch.zeros_like(global_params[k], dtype=torch.float64) for k in floats}
        h_total = 0.0
        others = RunningMean()
        for result in results:
            n = float(result.num_samples)
            if n == 0.0:
                continue
            delta_w = {k: lipschitz * (global_params[k].double() - result.params[k].double()) for k in floats}
            scale, h = qffl_terms(delta_w, result.loss, q=self.q, lipschitz=lipschitz)
            for k in floats:
                sums[k] += (n * scale) * delta_w[k]
            h_total += n * h
            others.add({k: v for k, v in result.params.items() if k not in sums}, n)
        if h_total == 0.0:
            return Aggregated(params=keep(global_params), server_state=server_state)
        params: Params = {}
        for name, w in global_params.items():
            if name in sums:
                params[name] = cast_like(w.double() - sums[name] / h_total, w)
            else:
                params[name] = cast_like(others.mean64()[name], w)
        return Aggregated(params=params, server_state=server_state)

    def __repr__(self) -> str:
        return f"QFedAvg(q={self.q}, client_lr={self.client_lr})"

"""Active Federated Learning, loss-based (Goetz, Malik, Bui, Moon, Liu, Kumar, "Active Federated
Learning", arXiv 1909.12641, 2019), Algorithm 1 with its loss valuation (§3).

Each client k carries a valuation v_k, the last one it reported (stale for the others). Each round:

    1. the α1 fraction of the available clients with the smallest valuations get v_k = −∞;
    2. π_k ∝ exp(α2 · v_k) over the available clients (a softmax with inverse temperature α2);
    3. ⌊(1 − α3) · m⌋ clients are drawn from π without replacement;
    4. the other α3 share of the m slots is drawn uniformly from the available clients not yet drawn.

Valuation (§3, loss-based): v_k = ℓ(D_k) / sqrt(n_k), ℓ the sum of the client's per-sample training
losses, i.e. sqrt(n_k) × its mean training loss — larger and worse-fitted clients are worth more,
sub-linearly in size. We take the mean training loss of the client's last local epoch (a whole
round with one local epoch). Plato's implementation (examples/client_selection/afl) divides the
*mean* loss by sqrt(n_k), which favours small clients; we follow the paper's sum. Newer Plato code
evaluates the loss before any local step; the paper only asks for the loss under the current model.

Paper defaults (its experiments; Plato uses the same): α1 = 0.75, α2 = 0.01, α3 = 0.1.

Our choices where the paper is silent: a client never seen is valued at the largest known valuation
(0 before any), so it is kept past step 1 and tried early; ties in step 1 are broken uniformly at
random (Plato sorts by client order); when fewer than ⌊(1 − α3)m⌋ clients survive step 1 the
softmax draws them all and the uniform share takes the rest; a client whose round failed is valued 0
(it reported no loss; with any positive loss elsewhere it is then among the first cut).
"""

import math

import torch

from fedsweep.params import ParamError, non_negative
from fedsweep.selection.base import ClientFeedback, Population, Selection, Selector
from fedsweep.selection.draw import check_round, largest, uniform_sample, weighted_sample


def _share(field: str, value: float) -> float:
    x = non_negative("ActiveFL", field, value)
    if x > 1.0:
        raise ParamError("ActiveFL", field, f"must be in [0, 1] (got {value!r})")
    return x


def loss_valuation(num_samples: torch.Tensor, mean_loss: torch.Tensor) -> torch.Tensor:
    """v_k = Σ per-sample loss / sqrt(n_k) = sqrt(n_k) · mean loss (AFL §3)."""
    return num_samples.to(torch.float64).sqrt() * mean_loss.to(torch.float64)


def sampling_weights(
    values: torch.Tensor, alpha1: float, alpha2: float, generator: torch.Generator
) -> torch.Tensor:
    """Unnormalised π over `values` (no NaN): the ⌊α1·n⌋ smallest (ties at random) get weight 0,
    the others exp(α2 · (v − max v)), the softmax shifted by its maximum for stability."""
    n = values.numel()
    shuffle = torch.randperm(n, generator=generator)
    kept = shuffle[largest(values[shuffle], n - int(alpha1 * n + 1e-9))]
    weights = torch.zeros_like(values)
    weights[kept] = torch.exp(alpha2 * (values[kept] - values.max()))
    return weights


class ActiveFL(Selector):
    """AFL's softmax over loss valuations plus a uniform share; aggregation weights: by sample count."""

    def __init__(self, *, alpha1: float = 0.75, alpha2: float = 0.01, alpha3: float = 0.1) -> None:
        super().__init__()
        self.alpha1 = _share("alpha1", alpha1)
        if self.alpha1 == 1.0:
            raise ParamError("ActiveFL", "alpha1", "must be in [0, 1) (got 1.0): it would cut every client")
        self.alpha2 = non_negative("ActiveFL", "alpha2", alpha2)
        self.alpha3 = _share("alpha3", alpha3)

    def select(
        self,
        *,
        round: int,
        available: torch.Tensor,
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
        population: Population,
        probes: dict[int, float] | None = None,
    ) -> Selection:
        """⌊(1 − α3)k⌋ by the softmax over the kept valuations, the rest uniformly."""
        check_round(available, k, "ActiveFL")
        state = state or {"value": torch.full((population.num_clients,), math.nan, dtype=torch.float64)}
        avail = available
        values = state["value"][avail]
        seen = ~torch.isnan(values)
        best = float(values[seen].max()) if bool(seen.any()) else 0.0
        weights = sampling_weights(torch.where(seen, values, best), self.alpha1, self.alpha2, generator)
        m = min(k, len(avail))
        n_soft = min(math.floor((1.0 - self.alpha3) * m + 1e-9), int((weights > 0).sum()))
        kept = torch.nonzero(weights > 0).flatten()
        soft = kept[weighted_sample(weights[kept], n_soft, generator)]
        rest = torch.ones(len(avail), dtype=torch.bool)
        rest[soft] = False
        others = torch.nonzero(rest).flatten()
        chosen = torch.cat([soft, others[uniform_sample(len(others), m - n_soft, generator)]])
        return Selection(clients=sorted(int(c) for c in avail[chosen]), state=state)

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Each selected client's new valuation (0 for a failed round)."""
        if not feedback:
            return state
        value = state["value"].clone()
        ids = torch.tensor([f.client for f in feedback], dtype=torch.int64)
        samples = torch.tensor([f.num_samples for f in feedback], dtype=torch.int64)
        loss = torch.tensor([f.loss if f.failure is None else 0.0 for f in feedback], dtype=torch.float64)
        value[ids] = torch.nan_to_num(loss_valuation(samples, loss), nan=0.0, posinf=0.0)
        return {"value": value}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha1={self.alpha1}, alpha2={self.alpha2}, alpha3={self.alpha3})"

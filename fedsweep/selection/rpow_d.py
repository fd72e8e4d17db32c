"""Communication- and computation-free power-of-choice (rpow-d): pow-d ranking its d candidates by
the loss each one last reported while training, so no probe is sent.

Cho, Wang and Joshi 2022, "Towards Understanding Biased Client Selection in Federated Learning",
AISTATS, https://arxiv.org/abs/2010.01243, Section 4 (π_rpow-d): the server keeps, for every client,
the averaged local loss of the last round it took part in, and uses it in place of F_k(w̄^(t)); a
client never selected has no such value and is ranked first. Candidates (d ∝ data size, without
replacement), the m largest and weights 1/m are pow-d's (fedsweep/selection/pow_d.py).

Choices: the reported loss is the client's mean training loss over its last local epoch (or chunk of
local steps) of the round (`ClientFeedback.loss`); a client that failed keeps its older value; the
unseen are ranked first by storing +inf (Flower's baseline starts every client at a large value).
State: `loss` (float64 [num_clients]), checkpointed with the round.
"""

import math

import torch

from fedsweep.selection.base import ClientFeedback, Population, Probe, Selection
from fedsweep.selection.pow_d import PowD, largest


class RPowD(PowD):
    """pow-d over the last reported losses (unseen clients first); no probe."""

    def probe(
        self,
        *,
        round: int,
        available: torch.Tensor,
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
        population: Population,
    ) -> Probe | None:
        return None

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
        """The k candidates with the largest stored loss, weighted equally."""
        if "loss" not in state:
            state = {"loss": torch.full((population.num_clients,), math.inf, dtype=torch.float64)}
        candidates = self.candidates(available=available, k=k, generator=generator, population=population)
        stored = state["loss"].index_select(0, torch.as_tensor(candidates, dtype=torch.int64)).tolist()
        return largest(dict(zip(candidates, stored, strict=True)), k, state)

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Each client that trained: its reported loss replaces the stored one."""
        loss = state["loss"].clone()
        for item in feedback:
            if item.failure is None and math.isfinite(item.loss):
                loss[item.client] = item.loss
        return {"loss": loss}

"""The selection contract.

A selector picks the clients of a round. It is pure: its choice depends only on its arguments,
and all randomness comes from the `generator` the loop passes in (seeded by seed and round), so a
resumed run selects exactly the same clients. The returned ids are sorted, distinct, drawn from
`available`, and there are min(k, len(available)) of them.

State: a selector keeps what it knows in a `dict[str, Tensor]` that the runner checkpoints with the
round and hands back. Each round the runner calls `select` (which may update the state), and after
the round is aggregated `observe` with one `ClientFeedback` per selected client, in client-id order
(samples, loss and local steps of those that trained; the failure kind of those that did not), so a
selector that learns from the clients' losses or speeds (power-of-choice, Oort) learns only through
its checkpointed state and a resumed run selects exactly what an uninterrupted one would.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Selection:
    clients: list[int]
    state: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ClientFeedback:
    """What a selected client's round told the server (`failure` is None when it trained)."""

    client: int
    num_samples: int = 0
    loss: float = float("nan")
    steps: int = 0
    failure: str | None = None


class Selector(ABC):
    """Base class for client selection methods (`conf/selection/*.yaml`)."""

    @abstractmethod
    def select(
        self,
        *,
        round: int,
        available: list[int],
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
    ) -> Selection:
        """The clients to train this round."""

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The state after seeing the round's outcome; default: learn nothing."""
        return state

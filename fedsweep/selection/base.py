"""The selection contract.

A selector picks the clients of a round. It is pure: its choice depends only on its arguments,
and all randomness comes from the `generator` the loop passes in (seeded by seed and round), so a
resumed run selects exactly the same clients. A stateful selector keeps its state in the returned
`Selection.state` (tensors only, checkpointed by the runner) and receives it back next round.
The returned ids are sorted, distinct, drawn from `available`, and there are
min(k, len(available)) of them.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Selection:
    clients: list[int]
    state: dict[str, torch.Tensor] = field(default_factory=dict)


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

"""The selection contract.

A selector picks the clients of a round. It is pure: its choice depends only on its arguments,
and all randomness comes from the `generator` the loop passes in (seeded by seed and round), so a
resumed run selects exactly the same clients. The returned ids are sorted, distinct, drawn from
`available`, and there are at most k of them (exactly min(k, len(available)) unless the selector's
docstring says otherwise, e.g. FedCS packs fewer under a deadline).

**`available`** is a 1-D int64 tensor of the ids selection may pick this round, in increasing order
(hence distinct), made once per round by the runner from the round's availability mask
(`torch.nonzero`, fedsweep/cell/fleet.py), never a Python list: at a million clients a list costs ~36
bytes and a conversion each way per client. Ids rather than a bool mask because every selector
works on the available clients as a sequence (positions drawn by `randperm` or `multinomial`,
per-client tables read with `index_select`), so a mask would be turned into ids by each of them.
Selectors call `check_round` (fedsweep/selection/draw.py) first: the one place that refuses k < 0
and an `available` that is not such a tensor, with one vectorised comparison.

What the server knows of every client comes in a `Population`: each client's number of training
samples and, when a system model is on (`conf/systems/`), the simulated seconds each client would
take for this round and the round's simulated deadline. Tensors are indexed by client id, so a
selector must work on `available` and these tensors with vectorised operations: its cost per round
is at most O(clients · log clients), never O(clients²) (benchmarks/selection_cost.py).

A round runs in up to two steps, both in fedsweep/rounds/plan.py (`plan_round`):

1. `probe` (optional): a selector that needs the clients' loss at the current global model before
   choosing (power-of-choice) returns a `Probe` naming candidates. The runner evaluates each
   candidate's training loss at the round's global model (on all its samples, or on `samples` of
   them drawn from a seeded generator), as a cached task of its own, counts that work and the model
   bytes it sends in the round's cost, and passes the losses to `select` as `probes`.
2. `select` returns the clients to train and, optionally, their aggregation weights.

`probe` and `select` of one round receive the same generator object (probe first), so a selector may
draw its candidates in `probe` and continue the same stream in `select`.

**Aggregation weights.** By default clients are aggregated in proportion to their sample counts
(FedAvg's n_k / n). A selector whose unbiasedness needs other weights (sampling with replacement
∝ data size, clustered sampling: each draw counts 1/m) returns `Selection.weights`: a positive
relative weight per selected client (e.g. how many times it was drawn), which replace the sample
counts as the aggregation weight of the strategies that weight clients (FedAvg, FedProx, FedAvgM,
FedOpt, FedNova); strategies that do not weight (median, Krum, ...) ignore them. A selector's
class docstring says which of the two it uses.

State: a selector keeps what it knows in a `dict[str, Tensor]` that the runner checkpoints with the
round and hands back. Each round the runner calls `select` (which may update the state), and after
the round is aggregated `observe` with one `ClientFeedback` per selected client, in client-id order
(samples, loss, local steps and simulated seconds of those that trained; the failure kind of those
that did not), so a selector that learns from the clients' losses or speeds (Oort, rpow-d) learns
only through its checkpointed state and a resumed run selects exactly what an uninterrupted one
would. `select` must not modify the tensors of the `state` it is given (the previous round's
checkpoint may still be being written from them in the background): it returns new ones for what it
changes. `observe` may update its `state` in place and return it, so that a round costs O(clients
that reported), not a copy of every per-client table: the runner waits for the previous round's
commit before calling it, and passes a copy instead if that bounded wait ran out (fedsweep/rounds/report.py
`after_round`). Per-client state is a few scalars per client (tensors of length num_clients), so that a
million clients cost megabytes, not gigabytes. The exception is a selector that compares clients by
their updates: it sets `update_sketch_dim = D`, receives a D-float sketch of each trained client's
update (fedsweep/selection/sketch.py) and keeps the last one per client, num_clients × D floats
(its docstring states what that costs).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, kw_only=True)
class Population:
    """What the server knows of every client before round `round` (tensors indexed by client id)."""

    num_samples: torch.Tensor  # int64 [num_clients]: training samples of each client
    # float64 [num_clients]: simulated seconds of a whole round (download, local work, upload) for
    # each client in this round; None when no system model is configured.
    expected_seconds: torch.Tensor | None = None
    deadline_s: float | None = None  # the round's simulated deadline (systems.deadline_s), if any

    @property
    def num_clients(self) -> int:
        return int(self.num_samples.numel())


@dataclass(frozen=True, kw_only=True)
class Probe:
    """Candidates whose loss at the current global model `select` needs (power-of-choice)."""

    clients: list[int]
    samples: int | None = None  # evaluate on this many of each candidate's samples (None: all)


@dataclass(frozen=True)
class Selection:
    clients: list[int]
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    # Relative aggregation weight per selected client; None: by sample count (module docstring).
    weights: dict[int, float] | None = None


@dataclass(frozen=True, kw_only=True)
class ClientFeedback:
    """What a selected client's round told the server (`failure` is None when it trained)."""

    client: int
    num_samples: int = 0
    loss: float = float("nan")  # mean training loss of its last local epoch (or chunk of local_steps)
    loss_sq: float = float("nan")  # mean squared per-sample training loss, same samples (Oort)
    steps: int = 0
    seconds: float = float("nan")  # simulated duration of its round (nan without a system model)
    failure: str | None = None
    # float32 [D]: a count sketch of its update θ_client − θ_global (fedsweep/selection/sketch.py), when
    # the selector's `update_sketch_dim` is D > 0 and the client trained; None otherwise.
    sketch: torch.Tensor | None = None


class Selector(ABC):
    """Base class for client selection methods (`conf/selection/*.yaml`)."""

    # D > 0: each client that trains also returns a D-dimensional sketch of its update, passed to
    # `observe` in `ClientFeedback.sketch` (clustered sampling by similarity, DivFL); 0: none.
    update_sketch_dim: int = 0

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
        """Candidates to evaluate before `select`; default: none."""
        return None

    @abstractmethod
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
        """The clients to train this round (`probes`: candidate -> loss, when `probe` asked)."""

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The state after seeing the round's outcome; default: learn nothing."""
        return state

"""The strategy contract (after Flower's `Strategy`: failures are data passed to `aggregate`).

A strategy is the server's method and the part of the client's local objective it owns. The round
(flows/round.py) reaches it only through the round library, which calls each method in one place:
`init_server_state` before round 1 (fedsweep/rounds/state.py, `resume`), `init_client_state` when
a client is first selected (fedsweep/rounds/plan.py), `broadcast` when a round's start is written
(fedsweep/rounds/blobs.py), `local_penalty` and `correct_gradients` at every local step
(fedsweep/train.py, `train_epoch`), `finish_client` after a client's last task of the round
(fedsweep/rounds/work.py) and `aggregate` once per round (fedsweep/rounds/aggregate.py). It never
calls back.

Rules:

- **Pure.** Every method is a function of its arguments; a strategy object holds only its
  hyper-parameters (set by keyword-only constructor arguments from `conf/strategy/*.yaml`). Anything
  that changes across rounds is *state*, returned and passed back in, so it can be checkpointed and
  a resumed run continues bitwise.
- **Server state** (a server optimiser's moments, SCAFFOLD's global control variate) is created by
  `init_server_state` and returned updated by `aggregate`. It stays on the server: clients receive
  only `broadcast(server_state)` (default: nothing), beside the global parameters; SCAFFOLD
  broadcasts c, an adaptive optimiser broadcasts nothing.
- **Client state** (SCAFFOLD's c_i, FedDyn's gradient memory) is per client. The runner calls
  `init_client_state` once, when a client is first selected; before each of the client's local
  epochs the state it started the round with is handed to `local_penalty` / `correct_gradients`
  (moved to the model's device); after its last epoch of the round `finish_client` runs once, with
  the total number of local steps, and returns the new state. The runner keeps every client's state
  in a store versioned by round and commits it with the round's checkpoint: after any kill the model,
  the server state and every client's state belong to the same round, and a client that rejoins
  after an outage gets its own state back. A client that fails keeps the state it had.
- **Aggregation** receives the round's global parameters, the `ClientResults` of the clients that
  trained (in client-id order), the `Failure` records (fedsweep/failures.py), the server state and
  the `RoundContext`. Each
  result carries its new parameters, the client's state before and after (so a server update that
  needs the change of a client's state, SCAFFOLD's c ← c + |S|/N · mean(c_i⁺ − c_i), needs no
  hidden memory), its sample count, loss and number of local steps. It returns the new global
  parameters and server state. When `results` is empty it must return the parameters unchanged.
- **Weights.** Each result carries a relative aggregation `weight`: its sample count unless the
  selector returned `Selection.weights` (fedsweep/selection/base.py, e.g. how many times sampling
  with replacement drew the client). Strategies that weight clients (FedAvg, FedProx, FedAvgM, the
  FedOpt family, FedNova) weight by it; rules that do not weight (median, Krum, ...) ignore it, and
  q-FedAvg keeps its own formula over sample counts.
- **Memory.** `ClientResults` reads results lazily: iterating holds one client's tensors at a time
  (keep a running sum, never a list of models); iterating again reads them again. Rules that need
  every client's value of one coordinate (median, Krum) call `results.stack(name)`, which holds
  clients-per-round × that tensor (plus one client's tensors while reading): memory bounded by
  clients-per-round × the largest tensor, never clients-per-round × the model.
- **Experiment-wide sizes** a method needs come in the `RoundContext` (`num_clients`, `selected`).
- **Batched clients** (`runner.batch_clients`, fedsweep/batched/): many clients train together, one
  `torch.func.vmap` over the functional loss of one client. The local hooks are then called for one
  client at a time *under vmap*: `local_penalty` receives that client's parameters as plain tensors
  (not Parameters) and its client state; `correct_gradients`, which edits `.grad` in place, is not
  called: its functional form `corrected_gradients(grads=...)` is, and returns new gradients. So the
  hooks must be pure tensor functions: no in-place edits of their inputs, no `.item()` or
  `float(tensor)`, no Python branch on a tensor's value. A strategy that overrides
  `correct_gradients` must also override `corrected_gradients` with the same maths (SCAFFOLD does),
  or its cells cannot batch (refused under `batch_clients=N`, one by one under `auto`). The one-by-one
  path never calls `corrected_gradients`, so its results do not change.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch

from fedsweep.failures import Failure
from fedsweep.weights import Params


@dataclass(frozen=True, kw_only=True)
class RoundContext:
    """Where aggregation happens: the round (1-based), the clients selected, the population size."""

    round: int
    selected: tuple[int, ...]
    num_clients: int


@dataclass(frozen=True, kw_only=True)
class ClientMeta:
    """What is known of a client's round without reading its tensors."""

    client: int
    num_samples: int
    loss: float
    steps: int
    epochs_done: int
    epochs_planned: int
    # The relative aggregation weight; left out, float(num_samples) (set at init).
    weight: float = cast(float, None)

    def __post_init__(self) -> None:
        if self.weight is None:
            object.__setattr__(self, "weight", float(self.num_samples))


@dataclass(frozen=True, kw_only=True)
class ClientResult(ClientMeta):
    """A client's successful local training in one round, with its tensors."""

    params: Params
    client_state: Params = field(default_factory=dict)
    previous_client_state: Params = field(default_factory=dict)


class ClientResults(ABC):
    """The round's successful clients, in client-id order, read lazily (see the module docstring)."""

    @property
    @abstractmethod
    def meta(self) -> Sequence[ClientMeta]:
        """Every result's metadata, in iteration order, without reading tensors."""

    @abstractmethod
    def __iter__(self) -> Iterator[ClientResult]:
        """One `ClientResult` at a time; each iteration reads the results again."""

    def __len__(self) -> int:
        return len(self.meta)

    def stack(self, name: str) -> torch.Tensor:
        """Tensor `name` of every result, stacked along a new first dimension (clients × shape)."""
        values = [result.params[name] for result in self]
        if not values:
            raise ValueError("ClientResults.stack: no results")
        return torch.stack(values)


class ListResults(ClientResults):
    """Results already in memory (tests, small cases): the same contract over a list."""

    def __init__(self, results: list[ClientResult]) -> None:
        self._results = sorted(results, key=lambda r: r.client)

    @property
    def meta(self) -> Sequence[ClientMeta]:
        return self._results  # a ClientResult is a ClientMeta

    def __iter__(self) -> Iterator[ClientResult]:
        return iter(self._results)


@dataclass(frozen=True)
class Aggregated:
    """What `aggregate` returns."""

    params: Params
    server_state: Params


class Strategy(ABC):
    """Base class; subclasses override what their method changes."""

    # Whether the method, in its paper, aggregates the partial work of clients that ran fewer local
    # epochs than asked (FedProx, FedNova); `aggregation.stragglers: strategy` follows it.
    partial_work: bool = False

    def init_server_state(self, params: Params) -> Params:
        """Server state before round 1."""
        return {}

    def broadcast(self, server_state: Params) -> Params:
        """The part of the server state that clients receive with the global parameters."""
        return {}

    def init_client_state(self, params: Params) -> Params:
        """A client's state before its first participation (`params`: that round's global model)."""
        return {}

    def local_penalty(
        self,
        *,
        params: Mapping[str, torch.Tensor],
        global_params: Params,
        server_state: Params,
        client_state: Params,
    ) -> torch.Tensor | None:
        """A term added to the local loss (params are the live, differentiable ones; `server_state`
        is what `broadcast` sent)."""
        return None

    def correct_gradients(
        self, *, named_params: dict[str, torch.nn.Parameter], server_state: Params, client_state: Params
    ) -> None:
        """Edit `.grad` in place after backward(); default: leave gradients alone."""

    def corrected_gradients(
        self, *, grads: Mapping[str, torch.Tensor], server_state: Params, client_state: Params
    ) -> Mapping[str, torch.Tensor]:
        """`correct_gradients` as a function, for batched clients (called under vmap, one client's
        gradients by parameter name): the corrected gradients, inputs untouched; default: `grads`."""
        return grads

    def finish_client(
        self,
        *,
        params: Params,
        global_params: Params,
        server_state: Params,
        client_state: Params,
        steps: int,
        lr: float,
    ) -> Params:
        """The client's new state after its local training of the round (`steps` in all)."""
        return client_state

    def batch_refusal(self) -> str | None:
        """Why this strategy's clients cannot train batched (None: they can): an in-place
        `correct_gradients` without its functional form `corrected_gradients`."""
        cls = type(self)
        in_place = cls.correct_gradients is not Strategy.correct_gradients
        if in_place and cls.corrected_gradients is Strategy.corrected_gradients:
            return (
                f"{cls.__name__} edits gradients in place (correct_gradients) and has no functional "
                "form (corrected_gradients) to batch clients with"
            )
        return None

    @abstractmethod
    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        """New global parameters (and server state) from the successful clients."""
